// `ffc bench scaling` (docs/benchmarks.md): drive `ffc train` on procedural identities over a
// grid of methods, class counts and rank counts, through the MPI launcher, and collect
// throughput and memory from the runs' metrics.jsonl.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "apps/bench_common.h"
#include "apps/commands.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/version.h"
#include "train/plan.h"

namespace ffc::app {
namespace {

// A point whose windows' images/s spread more than this share of their median was disturbed.
constexpr double kDisturbedSpread = 0.25;

struct Row {
  std::string name;    // method
  std::string status;  // ok, does not fit, failed (...)
  int64_t classes = 0;
  int ranks = 0;
  std::map<std::string, double> num;
  double get(const std::string& k) const {
    const auto it = num.find(k);
    return it == num.end() ? std::nan("") : it->second;
  }
};

}  // namespace

int run_bench_scaling(const BenchScalingCommand& cmd) {
  const BenchCommon& c = cmd.common;
  std::filesystem::create_directories(c.out + "/runs");
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  std::map<int, double> peak;  // threads per rank -> GFLOP/s
  for (int r : cmd.ranks) {
    const int t = std::max(1, cores / r);
    if (!peak.count(t)) {
      peak[t] = matmul_peak_gflops(t);
      spdlog::info("bench: matmul peak at {} thread(s): {:.1f} GFLOP/s", t, peak[t]);
    }
  }
  const int64_t steps = cmd.window * (1 + cmd.repeats);
  std::ostringstream csv;
  csv << "method,classes,ranks,status,images_per_s,probe_images_per_s,step_ms,head_ms,head_share,"
         "head_gflops_per_rank,matmul_peak_gflops_per_rank,head_peak_fraction,peak_rss_mib,"
         "plan_mib,pool,images_per_s_min,images_per_s_max,load_before,load_after,tries\n";
  std::vector<Row> rows;
  for (int64_t n : cmd.classes) {
    for (const std::string& m : cmd.methods) {
      for (int r : cmd.ranks) {
        train::PlanInput in;
        in.method = m;
        in.num_classes = n;
        in.embedding = c.embedding;
        in.batch = c.batch;
        in.ranks = r;
        in.sample_rate = c.sample_rate;
        in.network = c.network;
        in.image_size = c.image_size;
        in.vfc_rows = 1000;
        in.pool = cmd.pool;
        in.memory_bytes = cmd.memory_fraction * train::machine_memory_bytes() / r;
        const train::Plan plan = train::make_plan(in);
        Row row;
        row.name = m;
        row.classes = n;
        row.ranks = r;
        row.num["plan_mib"] = plan.total_bytes / (1 << 20);
        const int threads = std::max(1, cores / r);
        row.num["matmul_peak_gflops_per_rank"] = peak[threads];
        if (!plan.fits) {
          row.status = "does not fit";
          spdlog::info(
              "bench: {} N={} P={}: plan {:.0f} MiB per rank, over the budget of {:.0f} "
              "MiB: does not fit, not run",
              m, n, r, plan.total_bytes / (1 << 20), plan.memory_bytes / (1 << 20));
        } else {
          RunSpec run;
          run.id = m + "-" + std::to_string(n) + "-p" + std::to_string(r);
          run.ranks = r;
          run.sets = common_sets(c);
          run.sets.push_back("method=" + m);
          run.sets.push_back("num_classes=" + std::to_string(n));
          run.sets.push_back("max_steps=" + std::to_string(steps));
          run.sets.push_back("num_epoch=1000");
          run.sets.push_back("frequent=" + std::to_string(cmd.window));
          run.sets.push_back("val_pairs=0");
          run.sets.push_back("val_identities=0");
          if (m == "ffc") {
            // Every slot takes part from the first step (the authors' random initialisation), so
            // a short run costs what a full pool costs.
            run.sets.push_back("pool_random_init=true");
            run.sets.push_back("pool_size=" + std::to_string(plan.pool));
          }
          // One launch: the windows after the warm-up one.
          struct Measured {
            int rc = 0;
            std::vector<double> all, probe, step_ms, head_ms;
            double rss = 0;
            double spread() const {  // (max - min) / median of the windows' images/s
              return all.empty() ? 0.0
                                 : (*std::max_element(all.begin(), all.end()) -
                                    *std::min_element(all.begin(), all.end())) /
                                       std::max(median(all), 1e-9);
            }
          };
          auto measure = [&] {
            Measured out;
            std::filesystem::remove_all(c.out + "/runs/" + run.id);
            out.rc = launch(c, run, c.out + "/runs");
            int window = 0;
            for (const auto& rec : read_metrics(c.out + "/runs/" + run.id + "/metrics.jsonl")) {
              if (!rec.contains("loss")) {
                continue;
              }
              out.rss = std::max(out.rss, rec.value("peak_rss_mib", 0.0));
              if (window++ == 0) {
                continue;  // the first window warms up
              }
              out.all.push_back(rec.value("images_per_s", 0.0));
              out.probe.push_back(rec.value("probe_images_per_s", 0.0));
              double total = 0;
              double head = 0;
              for (const auto& [k, v] : rec["phase_ms"].items()) {
                total += v.get<double>();
                if (k == "head") {
                  head = v.get<double>();
                }
              }
              out.step_ms.push_back(total);
              out.head_ms.push_back(head);
            }
            return out;
          };
          row.num["load_before"] = load_average();
          Measured best = measure();
          int tries = 1;
          if (best.rc == 0 && best.spread() > kDisturbedSpread) {
            // Disturbed (another job, a page-cache flush): once more, keeping the calmer run.
            spdlog::warn("bench: {} N={} P={}: windows spread {:.0f}% of their median; again", m, n,
                         r, 100 * best.spread());
            Measured again = measure();
            ++tries;
            if (again.rc == 0 && !again.all.empty() && again.spread() < best.spread()) {
              best = std::move(again);
            }
          }
          row.num["load_after"] = load_average();
          row.num["tries"] = tries;
          if (best.rc != 0 || best.all.empty()) {
            row.status = "failed (exit " + std::to_string(best.rc) + ", " + run.id + ".log)";
          } else {
            row.status = "ok";
            row.num["images_per_s"] = median(best.all);
            row.num["images_per_s_min"] = *std::min_element(best.all.begin(), best.all.end());
            row.num["images_per_s_max"] = *std::max_element(best.all.begin(), best.all.end());
            row.num["probe_images_per_s"] = median(best.probe);
            row.num["step_ms"] = median(best.step_ms);
            row.num["head_ms"] = median(best.head_ms);
            row.num["head_share"] = median(best.head_ms) / median(best.step_ms);
            const double gf = plan.head_flops_per_step / (median(best.head_ms) / 1000) / 1e9;
            row.num["head_gflops_per_rank"] = gf;
            row.num["head_peak_fraction"] = gf / peak[threads];
            row.num["peak_rss_mib"] = best.rss;
          }
          spdlog::info("bench: {} N={} P={}: {}, {:.0f} img/s, peak RSS {:.0f} MiB", m, n, r,
                       row.status, row.get("images_per_s"), row.get("peak_rss_mib"));
        }
        csv << m << "," << n << "," << r << "," << row.status << ","
            << fmt_num(row.get("images_per_s"), 1) << ","
            << fmt_num(row.get("probe_images_per_s"), 1) << "," << fmt_num(row.get("step_ms"), 2)
            << "," << fmt_num(row.get("head_ms"), 2) << "," << fmt_num(row.get("head_share"), 3)
            << "," << fmt_num(row.get("head_gflops_per_rank"), 2) << ","
            << fmt_num(row.get("matmul_peak_gflops_per_rank"), 2) << ","
            << fmt_num(row.get("head_peak_fraction"), 3) << ","
            << fmt_num(row.get("peak_rss_mib"), 0) << "," << fmt_num(row.get("plan_mib"), 0) << ","
            << plan.pool << "," << fmt_num(row.get("images_per_s_min"), 1) << ","
            << fmt_num(row.get("images_per_s_max"), 1) << "," << fmt_num(row.get("load_before"), 2)
            << "," << fmt_num(row.get("load_after"), 2) << "," << fmt_num(row.get("tries"), 0)
            << "\n";
        rows.push_back(row);
        write_text(c.out + "/scaling.csv", csv.str());  // as it goes: a long grid can be watched
      }
    }
  }
  // Markdown table.
  std::ostringstream md;
  md << "Machine: " << machine_text() << ". ffc " << project_version() << " (git " << git_revision()
     << ").\n\n"
     << "Network " << c.network << " at " << c.image_size << "x" << c.image_size
     << ", D = " << c.embedding << ", batch " << c.batch << " per rank, procedural identities; "
     << cmd.window << "-step windows, the first one warm-up, median of the next " << cmd.repeats
     << "; images/s: median (range) of the windows; a point whose windows spread more than "
     << static_cast<int>(100 * kDisturbedSpread)
     << "% of their median ran again and the calmer run is kept (tries); load: the 1-minute "
        "load average before the launch.\n\n"
     << "| method | N | ranks | images/s | probe images/s | head share | head GFLOP/s per rank "
        "(of peak) | peak RSS per rank | plan | load | tries |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : rows) {
    const bool ok = row.status == "ok";
    md << "| " << row.name << " | " << row.classes << " | " << row.ranks << " | "
       << (ok ? fmt_num(row.get("images_per_s"), 0) + " (" +
                    fmt_num(row.get("images_per_s_min"), 0) + "–" +
                    fmt_num(row.get("images_per_s_max"), 0) + ")"
              : row.status)
       << " | " << (ok ? fmt_num(row.get("probe_images_per_s"), 0) : "") << " | "
       << (ok ? fmt_num(row.get("head_share"), 2) : "") << " | "
       << (ok ? fmt_num(row.get("head_gflops_per_rank"), 1) + " (" +
                    fmt_num(row.get("head_peak_fraction"), 2) + ")"
              : "")
       << " | " << (ok ? fmt_num(row.get("peak_rss_mib"), 0) + " MiB" : "") << " | "
       << fmt_num(row.get("plan_mib"), 0) << " MiB | "
       << (row.num.count("load_before") ? fmt_num(row.get("load_before"), 2) : "") << " | "
       << (row.num.count("tries") ? fmt_num(row.get("tries"), 0) : "") << " |\n";
  }
  write_text(c.out + "/scaling.md", md.str());
  std::cout << md.str() << "\nwrote " << c.out << "/scaling.csv and " << c.out
            << "/scaling.md; charts: tools/ffc_plot.py scaling " << c.out << "/scaling.csv\n";
  return 0;
}

}  // namespace ffc::app
