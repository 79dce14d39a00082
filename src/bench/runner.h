#pragma once
// How the benchmarks run: each run is an `ffc train` of this executable launched through the MPI
// launcher (its figures are read back from its metrics.jsonl, common/metrics_record.h), and the
// machine's facts a report names.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/options.h"

namespace ffc::bench {

using Json = nlohmann::ordered_json;

struct RunSpec {
  std::string id;
  int ranks = 1;
  std::vector<std::string> sets;  // KEY=VALUE
};

// Runs `ffc train` through the launcher; returns its exit status. Output in <dir>/<id>.log, the
// run's folder <dir>/<id>.
int launch(const Common& c, const RunSpec& run, const std::string& dir);
// The --set values every benchmark run shares (procedural identities, the network, the batch).
std::vector<std::string> common_sets(const Common& c, int64_t seed = 2048);

// Best GFLOP/s of a square float32 matmul at `threads` threads, measured in this process.
double matmul_peak_gflops(int threads, int64_t n = 1024);
// CPU, cores, memory and BLAS of this machine, for a report's first line.
std::string machine_text();
// The 1-minute load average (NaN where /proc/loadavg cannot be read).
double load_average();
// `text` into `path`, whole: written to a temporary and renamed (common/atomic_file.h), so a
// report being watched is never half a file.
void write_text(const std::string& path, const std::string& text);

}  // namespace ffc::bench
