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
// Also writes every line of this process's logger to `path`, e.g. <output>/train.log (appended
// to when `append`, else started afresh).
void add_log_file(const std::string& path, bool append);
// Flushes every sink; call before exiting or aborting.
void flush_logs();

}  // namespace ffc
