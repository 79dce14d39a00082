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

namespace ffc::bench {

using Json = nlohmann::ordered_json;

// One entry of --runs: METHOD[@POOL%][:LOADER].
struct RunKind {
  std::string label;  // as given
  std::string method;
  std::string loader = "both";
  double pool_percent = 0;  // FFC: the pool as a share of N, in percent
  bool ablation() const { return loader != "both"; }
};

// Throws ConfigError naming the entry and what is wrong.
RunKind parse_run(const std::string& spec);
// "ffc@10%:instance" -> "ffc-10pct-instance" (a folder name).
std::string run_folder(const RunKind& k);
// The --set values of one run: the shared ones, the method, one schedule for every run (in steps:
// an epoch is one pass over the images at the batch), the evaluation after every epoch.
std::vector<std::string> run_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed);
// "SGD, momentum 0.9, ..., then decayed linearly (poly, power 1) to 0 at epoch 8".
std::string schedule_text(const AccuracyOptions& o);

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

// The Markdown report of the runs (in the order of `kinds`; configurations without a finished
// run are marked failed): the setup, the main table, the long-tail buckets, the accuracy after
// each epoch, and the figures for the questions.
std::string markdown_report(const AccuracyOptions& o, const std::vector<RunKind>& kinds,
                            const std::vector<Run>& runs, const std::string& machine,
                            const std::string& version, const std::string& git);

}  // namespace ffc::bench
