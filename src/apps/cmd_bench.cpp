// `ffc bench scaling` (docs/benchmarks.md): drive `ffc train` on procedural identities over a
// grid of methods, class counts and rank counts, through the MPI launcher, and collect
// throughput and memory from the runs' metrics.jsonl. The pieces (plans, settings, windows, the
// report) are src/bench/scaling.h; this file launches the runs and writes the files.

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include "apps/commands.h"
#include "bench/runner.h"
#include "bench/scaling.h"
#include "common/logging.h"
#include "common/metrics_record.h"
#include "common/version.h"
#include "plan/plan.h"

namespace ffc::app {
namespace {

// Threads per rank at `ranks` ranks on this machine.
int threads_at(int ranks) {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks);
}

// One launch of a point: its windows after the warm-up one.
bench::Windows measure(const BenchCommon& c, const bench::RunSpec& run) {
  std::filesystem::remove_all(c.out + "/runs/" + run.id);
  const int rc = bench::launch(c, run, c.out + "/runs");
  return bench::windows_from(metrics::read_file(c.out + "/runs/" + run.id + "/metrics.jsonl"), rc);
}

// Runs a point that fits: once, and once more when its windows were disturbed (another job, a
// page-cache flush), keeping the calmer run.
void run_point(const BenchScalingCommand& cmd, const plan::Plan& plan, double peak,
               bench::Row& row) {
  const BenchCommon& c = cmd.common;
  bench::RunSpec run;
  run.id = row.name + "-" + std::to_string(row.classes) + "-p" + std::to_string(row.ranks);
  run.ranks = row.ranks;
  run.sets = bench::point_sets(cmd, row.name, row.classes, plan.pool);
  row.num["load_before"] = bench::load_average();
  bench::Windows best = measure(c, run);
  int tries = 1;
  if (best.rc == 0 && best.spread() > bench::kDisturbedSpread) {
    spdlog::warn("bench: {} N={} P={}: windows spread {:.0f}% of their median; again", row.name,
                 row.classes, row.ranks, 100 * best.spread());
    bench::Windows again = measure(c, run);
    ++tries;
    if (again.rc == 0 && !again.all.empty() && again.spread() < best.spread()) {
      best = std::move(again);
    }
  }
  row.num["load_after"] = bench::load_average();
  row.num["tries"] = tries;
  bench::fill_row(row, best, plan, peak, run.id);
  spdlog::info("bench: {} N={} P={}: {}, {:.0f} img/s, peak RSS {:.0f} MiB", row.name, row.classes,
               row.ranks, row.status, row.get("images_per_s"), row.get("peak_rss_mib"));
}

}  // namespace

int run_bench_scaling(const BenchScalingCommand& cmd) {
  const BenchCommon& c = cmd.common;
  std::filesystem::create_directories(c.out + "/runs");
  std::map<int, double> peak;  // threads per rank -> GFLOP/s
  for (int r : cmd.ranks) {
    const int t = threads_at(r);
    if (!peak.count(t)) {
      peak[t] = bench::matmul_peak_gflops(t);
      spdlog::info("bench: matmul peak at {} thread(s): {:.1f} GFLOP/s", t, peak[t]);
    }
  }
  std::string csv = bench::scaling_csv_header();
  std::vector<bench::Row> rows;
  for (int64_t n : cmd.classes) {
    for (const std::string& m : cmd.methods) {
      for (int r : cmd.ranks) {
        const plan::Plan plan = plan::make_plan(bench::plan_input(cmd, m, n, r));
        bench::Row row;
        row.name = m;
        row.classes = n;
        row.ranks = r;
        row.pool = plan.pool;
        row.num["plan_mib"] = plan.total_bytes / (1 << 20);
        row.num["matmul_peak_gflops_per_rank"] = peak[threads_at(r)];
        if (plan.fits) {
          run_point(cmd, plan, peak[threads_at(r)], row);
        } else {
          row.status = "does not fit";
          spdlog::info(
              "bench: {} N={} P={}: plan {:.0f} MiB per rank, over the budget of {:.0f} "
              "MiB: does not fit, not run",
              m, n, r, plan.total_bytes / (1 << 20), plan.memory_bytes / (1 << 20));
        }
        csv += bench::csv_row(row);
        rows.push_back(row);
        bench::write_text(c.out + "/scaling.csv", csv);  // as it goes: a long grid can be watched
      }
    }
  }
  const std::string md =
      bench::markdown_report(cmd, rows, bench::machine_text(), project_version(), git_revision());
  bench::write_text(c.out + "/scaling.md", md);
  std::cout << md << "\nwrote " << c.out << "/scaling.csv and " << c.out
            << "/scaling.md; charts: tools/ffc_plot.py scaling " << c.out << "/scaling.csv\n";
  return 0;
}

}  // namespace ffc::app
