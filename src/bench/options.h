#pragma once
// What the benchmark commands take (`ffc bench scaling | accuracy`, docs/benchmarks.md): plain
// structs that main.cpp fills from the command line and the pieces of src/bench read.

#include <cstdint>
#include <string>
#include <vector>

#include "common/methods.h"

namespace ffc::bench {

// What every benchmark run shares.
struct Common {
  std::string network = "tiny";
  int64_t image_size = 32;
  int64_t embedding = 128;
  int64_t batch = 64;  // per rank
  double sample_rate = 0.1;
  std::string launcher = "mpiexec --bind-to none -n {ranks}";
  std::string config;             // optional base configuration file
  std::vector<std::string> sets;  // extra KEY=VALUE for every run
  std::string out = "bench-results";
};

struct ScalingOptions {
  Common common;
  std::vector<std::string> methods = method_names(false);
  std::vector<int64_t> classes = {10000, 100000, 1000000, 10000000, 100000000};
  std::vector<int> ranks = {1, 2};
  int64_t window = 4;
  int64_t repeats = 3;
  double memory_fraction = 0.6;
  int64_t pool = 0;  // FFC's Q; 0: 1% of N, at least the global gallery batch
};

struct AccuracyOptions {
  Common common;
  // METHOD[@POOL%][:LOADER]: FFC's pool as a share of N, its loaders (both, instance, identity;
  // one alone is the ablation, run with ablation_seeds).
  std::vector<std::string> runs = {
      "fc", "pfc", "vfc", "ffc@1%", "ffc@10%", "ffc@10%:instance", "ffc@10%:identity"};
  int64_t classes = 10000;
  double difficulty = 1.0;  // synthetic_difficulty
  int ranks = 2;
  int64_t epochs = 8;
  int64_t warmup_epochs = 1;
  double lr = 0.1;
  std::vector<int64_t> seeds = {2048, 2049};
  std::vector<int64_t> ablation_seeds = {2048};
  double converged = 0.005;  // held-out accuracy moved less over the last two evaluations
  int64_t val_pairs = 6000;
  int64_t val_identities = 300;
  // The data: "synthetic" (procedural identities, classes and difficulty above, held-out pairs
  // and long-tail buckets drawn from them) or a packed dataset (ffc pack; its identities, with
  // val_targets: set files of held-out pairs and long-tail buckets, e.g. the glyph set's).
  std::string rec = "synthetic";
  std::vector<std::string> val_targets;
  // Equal cost (budget_s > 0): every run gets budget_s seconds of training; its schedule is
  // fitted to the steps it makes in them, measured by a probe run of probe_steps steps first,
  // and it is evaluated `evals` times along it. 0: every run trains `epochs` epochs.
  double budget_s = 0;
  int64_t evals = 8;
  int64_t probe_steps = 30;
  // A learning-rate sweep per configuration before the main runs (at sweep_budget_s seconds, or
  // the main schedule without a budget; the first seed): the best final held-out accuracy wins.
  std::vector<double> lrs;
  double sweep_budget_s = 0;
};

}  // namespace ffc::bench
