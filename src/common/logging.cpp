#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <cstdio>

#include "common/error.h"

namespace ffc {

void init_logging(int rank, int size, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off || lvl == spdlog::level::critical) {
    throw ConfigError("log level '" + level + "' is not one of trace, debug, info, warn, error");
  }
  const bool everyone = lvl <= spdlog::level::debug;
  if (rank != 0 && !everyone) {
    lvl = std::max(lvl, spdlog::level::warn);
  }
  // Log lines go to stderr so that stdout carries only command output (YAML, JSON, tables).
  // Colours only when stderr is a terminal.
  auto logger = spdlog::get("ffc");
  if (!logger) {
    logger = spdlog::stderr_color_mt("ffc", spdlog::color_mode::automatic);
  }
  const std::string prefix =
      size > 1 ? "[r" + std::to_string(rank) + "/" + std::to_string(size) + "] " : std::string();
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] " + prefix + "%v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void add_log_file(const std::string& path, bool append) {
  auto logger = spdlog::default_logger();
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, !append);
    sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    logger->sinks().push_back(sink);
  } catch (const spdlog::spdlog_ex& e) {
    throw IoError(path + ": cannot open the log file (" + e.what() + ")");
  }
}

void flush_logs() {
  if (auto logger = spdlog::default_logger()) {
    logger->flush();
  }
  std::fflush(stdout);
  std::fflush(stderr);
}

}  // namespace ffc
