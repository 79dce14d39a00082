#pragma once
// The pieces of `ffc bench accuracy` (docs/benchmarks.md), each testable alone: the run specs
// (--runs entries, the settings of one run), the collection of a run's figures from its
// metrics.jsonl records, and the report (CSV rows, JSON, the Markdown tables and the figures for
// the questions). apps/cmd_bench_accuracy.cpp launches the runs and writes the files.

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/options.h"
#include "bench/stats.h"

namespace ffc::bench {

using Json = nlohmann::ordered_json;

// One entry of --runs: METHOD[@POOL%|@POOLx][:LOADER].
struct RunKind {
  std::string label;  // as given
  std::string method;
  std::string loader = "both";
  double pool_percent = 0;   // FFC: the pool as a share of N, in percent
  double pool_multiple = 0;  // FFC: the pool as a multiple of the global gallery batch
  bool ablation() const { return loader != "both"; }
};

// FFC's gallery rows of one step over all ranks: batch + batch/2 per rank (the dual loader's).
int64_t global_gallery_rows(int64_t batch_per_rank, int ranks);
// The pool a RunKind asks for (0: FFC's default); classes: N of the data.
int64_t pool_size(const RunKind& k, int64_t classes, int64_t batch_per_rank, int ranks);

// Throws ConfigError naming the entry and what is wrong.
RunKind parse_run(const std::string& spec);
// "ffc@10%:instance" -> "ffc-10pct-instance" (a folder name).
std::string run_folder(const RunKind& k);
// The --set values of one run: the shared ones, the method, one schedule for every run (in steps:
// an epoch is one pass over the images at the batch), the evaluation after every epoch.
std::vector<std::string> run_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed);
// "SGD, momentum 0.9, ..., then decayed linearly (poly, power 1) to 0 at epoch 8".
std::string schedule_text(const AccuracyOptions& o);

// Equal cost. A probe run's speed: steps per second of training, from its progress records (the
// windows after the first, evaluations left out); NaN without two windows.
double steps_per_second(const std::vector<Json>& records);
// The head's share of a step in the same windows (median of head / all phases); NaN without.
double head_share(const std::vector<Json>& records);
// The steps a run makes in `budget_s` at `rate`, at least `min_steps`.
int64_t fit_steps(double budget_s, double rate, int64_t min_steps = 10);
// The settings of a probe run (probe_steps steps, no evaluation) and of a budget run: the
// schedule fitted to `steps` (schedule_steps), `evals` evaluations at equal shares of it.
std::vector<std::string> probe_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed,
                                    double lr);
std::vector<std::string> budget_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed,
                                     double lr, int64_t steps);

// One evaluation of one run: the held-out pairs and the long-tail buckets after `step`.
struct Eval {
  int64_t step = 0;
  double epoch = 0;
  double train_s = 0;
  Json heldout;   // the record (accuracy, tar@far=..)
  Json longtail;  // the record (buckets)
  double accuracy() const;
  // A long-tail bucket's figure ("1", "unseen", "trained"; "accuracy" or "top1"); NaN if none.
  double bucket(const std::string& name, const std::string& key) const;
};

struct Run {
  RunKind kind;
  int64_t seed = 0;
  double lr = std::nan("");          // the run's learning rate
  int64_t schedule_steps = 0;        // budget runs: the steps fitted to the budget
  double probe_rate = std::nan("");  // budget runs: the probe's steps per second
  double head_share = std::nan("");  // budget runs: the head's share of the probe's step
  std::string id;
  std::string status;
  double seconds = 0;  // wall time of the launch
  std::vector<Eval> evals;
  double images_per_s = std::nan("");
  double probe_images_per_s = std::nan("");
  double peak_rss_mib = std::nan("");
  double final_lr = std::nan("");
  bool converged = false;
  double moved = std::nan("");  // |last - previous| held-out accuracy
  double epoch_99 = std::nan("");
  double train_s_99 = std::nan("");
  bool ok() const { return status == "ok" && !evals.empty(); }
  const Eval& last() const { return evals.back(); }
};

// The run's figures from the records of its metrics.jsonl: evaluations by step (held-out and
// long-tail records of the same step together), throughput (median of the windows after the
// first), peak RSS, the last lr, convergence (the last two evaluations within `threshold`) and
// the first evaluation at 99% of the final accuracy.
void collect(Run& run, const std::vector<Json>& records, double threshold);

// The CSV: one row per evaluation of a run.
std::string accuracy_csv_header();
std::string csv_rows(const Run& run);
// The JSON of a run (config, seed, status, figures, evaluations).
Json run_json(const Run& run);
Json setup_json(const AccuracyOptions& o, const std::string& machine, const std::string& version,
                const std::string& git);

// Seed-by-seed differences f(a) - f(b) over the seeds both configurations finished.
struct Paired {
  std::vector<std::pair<int64_t, double>> by_seed;
  Stat diff;  // mean and range of the differences
};
Paired paired(const std::vector<const Run*>& a, const std::vector<const Run*>& b,
              double (*f)(const Run&));
// "-0.50 (seeds 1: -1.00, 2: +0.00)": points, the mean and each seed's.
std::string paired_text(const Paired& p);

// The learning rate whose run ended with the best held-out accuracy (the lower one of a tie);
// NaN when none finished.
double best_lr(const std::vector<const Run*>& sweep);

// The Markdown report of the runs (in the order of `kinds`; configurations without a finished
// run are marked failed): the setup, the main table, the long-tail buckets, the accuracy after
// each epoch, and the figures for the questions.
std::string markdown_report(const AccuracyOptions& o, const std::vector<RunKind>& kinds,
                            const std::vector<Run>& runs, const std::string& machine,
                            const std::string& version, const std::string& git);

}  // namespace ffc::bench
