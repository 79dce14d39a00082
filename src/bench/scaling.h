#pragma once
// The pieces of `ffc bench scaling` (docs/benchmarks.md), each testable alone: the plan and the
// settings of one point (method, classes, ranks), the windows measured from a run's metrics.jsonl
// records, the row's figures, and the report (CSV, Markdown). apps/cmd_bench.cpp launches the
// runs and writes the files.

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/options.h"
#include "plan/plan.h"

namespace ffc::bench {

// A point whose windows' images/s spread more than this share of their median was disturbed.
constexpr double kDisturbedSpread = 0.25;

// The plan of a point, with the memory budget of one rank (memory_fraction of the machine's).
plan::PlanInput plan_input(const ScalingOptions& o, const std::string& method, int64_t classes,
                           int ranks);
// The --set values of a point's run: window x (1 + repeats) steps, windows of `window` steps, no
// evaluation; FFC with every slot taking part from the first step.
std::vector<std::string> point_sets(const ScalingOptions& o, const std::string& method,
                                    int64_t classes, int64_t pool);

// The windows of one launch, after the first (the warm-up).
struct Windows {
  int rc = 0;
  std::vector<double> all, probe, step_ms, head_ms;
  double rss = 0;  // the largest peak RSS of any window
  // (max - min) / median of the windows' images/s; 0 without windows.
  double spread() const;
};
Windows windows_from(const std::vector<nlohmann::ordered_json>& records, int rc);

struct Row {
  std::string name;    // method
  std::string status;  // ok, does not fit, failed (...)
  int64_t classes = 0;
  int ranks = 0;
  int64_t pool = 0;
  std::map<std::string, double> num;
  double get(const std::string& k) const {
    const auto it = num.find(k);
    return it == num.end() ? std::nan("") : it->second;
  }
};

// The row's figures from its best windows: images/s (median, range), phases, the head's share
// and its GFLOP/s from the plan's FLOPs against `peak_gflops` (the matmul rate measured at the
// rank's threads), peak RSS. A launch that failed or made no window marks the row failed.
void fill_row(Row& row, const Windows& best, const plan::Plan& plan, double peak_gflops,
              const std::string& run_id);

std::string scaling_csv_header();
std::string csv_row(const Row& row);
std::string markdown_report(const ScalingOptions& o, const std::vector<Row>& rows,
                            const std::string& machine, const std::string& version,
                            const std::string& git);

}  // namespace ffc::bench
