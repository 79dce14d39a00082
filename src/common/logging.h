#pragma once
// Logging through spdlog. Rank 0 logs at the configured level; other ranks log warnings and errors
// only, unless the level is debug or trace, when every rank logs. With more than one rank every
// line carries an "[r<rank>/<size>]" prefix. Lines go to stderr; stdout is for command output.

#include <spdlog/spdlog.h>

#include <string>

namespace ffc {

// (Re)configures the default logger for this process. `level` is one of trace, debug, info, warn,
// error (Config::log_level).
void init_logging(int rank, int size, const std::string& level);
// Flushes every sink; call before exiting or aborting.
void flush_logs();

}  // namespace ffc
