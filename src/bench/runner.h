#pragma once
// Helpers of the `ffc bench` commands: each run is an `ffc train` launched through the MPI
// launcher, its figures read back from its metrics.jsonl.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "apps/commands.h"

namespace ffc::app {

using Json = nlohmann::ordered_json;

struct RunSpec {
  std::string id;
  int ranks = 1;
  std::vector<std::string> sets;  // KEY=VALUE
};

// Runs `ffc train` through the launcher; returns its exit status. Output in <dir>/<id>.log, the
// run's folder <dir>/<id>.
int launch(const BenchCommon& c, const RunSpec& run, const std::string& dir);
// The records of a metrics.jsonl (none if it does not exist).
std::vector<Json> read_metrics(const std::string& path);
// The --set values every benchmark run shares (procedural identities, the network, the batch).
std::vector<std::string> common_sets(const BenchCommon& c, int64_t seed = 2048);

double median(std::vector<double> v);
// Best GFLOP/s of a square float32 matmul at `threads` threads, measured in this process.
double matmul_peak_gflops(int threads, int64_t n = 1024);
// CPU, cores, memory and BLAS of this machine, for a report's first line.
std::string machine_text();
// The 1-minute load average (NaN where /proc/loadavg cannot be read).
double load_average();
void write_text(const std::string& path, const std::string& text);
// `v` with `digits` decimals; "-" for NaN.
std::string fmt_num(double v, int digits = 3);

}  // namespace ffc::app
