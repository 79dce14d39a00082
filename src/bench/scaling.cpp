#include "bench/scaling.h"

#include <algorithm>
#include <sstream>

#include "bench/runner.h"
#include "bench/stats.h"
#include "common/metrics_record.h"

namespace ffc::bench {

plan::PlanInput plan_input(const ScalingOptions& o, const std::string& method, int64_t classes,
                           int ranks) {
  const Common& c = o.common;
  plan::PlanInput in;
  in.method = method;
  in.num_classes = classes;
  in.embedding = c.embedding;
  in.batch = c.batch;
  in.ranks = ranks;
  in.sample_rate = c.sample_rate;
  in.network = c.network;
  in.image_size = c.image_size;
  in.vfc_rows = 1000;
  in.pool = o.pool;
  in.memory_bytes = o.memory_fraction * plan::machine_memory_bytes() / ranks;
  return in;
}

std::vector<std::string> point_sets(const ScalingOptions& o, const std::string& method,
                                    int64_t classes, int64_t pool) {
  std::vector<std::string> sets = common_sets(o.common);
  sets.push_back("method=" + method);
  sets.push_back("num_classes=" + std::to_string(classes));
  sets.push_back("max_steps=" + std::to_string(o.window * (1 + o.repeats)));
  sets.push_back("num_epoch=1000");
  sets.push_back("frequent=" + std::to_string(o.window));
  sets.push_back("val_pairs=0");
  sets.push_back("val_identities=0");
  if (method == "ffc") {
    // Every slot takes part from the first step (the authors' random initialisation), so a short
    // run costs what a full pool costs.
    sets.push_back("pool_random_init=true");
    sets.push_back("pool_size=" + std::to_string(pool));
  }
  return sets;
}

double Windows::spread() const {
  return all.empty() ? 0.0
                     : (*std::max_element(all.begin(), all.end()) -
                        *std::min_element(all.begin(), all.end())) /
                           std::max(median(all), 1e-9);
}

Windows windows_from(const std::vector<nlohmann::ordered_json>& records, int rc) {
  Windows out;
  out.rc = rc;
  int window = 0;
  for (const auto& rec : records) {
    if (!metrics::is_progress(rec)) {
      continue;
    }
    const metrics::Progress p = metrics::progress_from_json(rec);
    out.rss = std::max(out.rss, p.peak_rss_mib);
    if (window++ == 0) {
      continue;  // the first window warms up
    }
    out.all.push_back(p.images_per_s);
    out.probe.push_back(p.probe_images_per_s);
    out.step_ms.push_back(p.step_ms());
    out.head_ms.push_back(p.phase("head"));
  }
  return out;
}

void fill_row(Row& row, const Windows& best, const plan::Plan& plan, double peak_gflops,
              const std::string& run_id) {
  if (best.rc != 0 || best.all.empty()) {
    row.status = "failed (exit " + std::to_string(best.rc) + ", " + run_id + ".log)";
    return;
  }
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
  row.num["head_peak_fraction"] = gf / peak_gflops;
  row.num["peak_rss_mib"] = best.rss;
}

std::string scaling_csv_header() {
  return "method,classes,ranks,status,images_per_s,probe_images_per_s,step_ms,head_ms,head_share,"
         "head_gflops_per_rank,matmul_peak_gflops_per_rank,head_peak_fraction,peak_rss_mib,"
         "plan_mib,pool,images_per_s_min,images_per_s_max,load_before,load_after,tries\n";
}

std::string csv_row(const Row& row) {
  std::ostringstream csv;
  csv << row.name << "," << row.classes << "," << row.ranks << "," << row.status << ","
      << fmt_num(row.get("images_per_s"), 1) << "," << fmt_num(row.get("probe_images_per_s"), 1)
      << "," << fmt_num(row.get("step_ms"), 2) << "," << fmt_num(row.get("head_ms"), 2) << ","
      << fmt_num(row.get("head_share"), 3) << "," << fmt_num(row.get("head_gflops_per_rank"), 2)
      << "," << fmt_num(row.get("matmul_peak_gflops_per_rank"), 2) << ","
      << fmt_num(row.get("head_peak_fraction"), 3) << "," << fmt_num(row.get("peak_rss_mib"), 0)
      << "," << fmt_num(row.get("plan_mib"), 0) << "," << row.pool << ","
      << fmt_num(row.get("images_per_s_min"), 1) << "," << fmt_num(row.get("images_per_s_max"), 1)
      << "," << fmt_num(row.get("load_before"), 2) << "," << fmt_num(row.get("load_after"), 2)
      << "," << fmt_num(row.get("tries"), 0) << "\n";
  return csv.str();
}

namespace {

void md_row(std::ostream& md, const Row& row) {
  const bool ok = row.status == "ok";
  md << "| " << row.name << " | " << row.classes << " | " << row.ranks << " | "
     << (ok ? fmt_num(row.get("images_per_s"), 0) + " (" + fmt_num(row.get("images_per_s_min"), 0) +
                  "–" + fmt_num(row.get("images_per_s_max"), 0) + ")"
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

}  // namespace

std::string markdown_report(const ScalingOptions& o, const std::vector<Row>& rows,
                            const std::string& machine, const std::string& version,
                            const std::string& git) {
  const Common& c = o.common;
  std::ostringstream md;
  md << "Machine: " << machine << ". ffc " << version << " (git " << git << ").\n\n"
     << "Network " << c.network << " at " << c.image_size << "x" << c.image_size
     << ", D = " << c.embedding << ", batch " << c.batch << " per rank, procedural identities; "
     << o.window << "-step windows, the first one warm-up, median of the next " << o.repeats
     << "; images/s: median (range) of the windows; a point whose windows spread more than "
     << static_cast<int>(100 * kDisturbedSpread)
     << "% of their median ran again and the calmer run is kept (tries); load: the 1-minute "
        "load average before the launch.\n\n"
     << "| method | N | ranks | images/s | probe images/s | head share | head GFLOP/s per rank "
        "(of peak) | peak RSS per rank | plan | load | tries |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : rows) {
    md_row(md, row);
  }
  return md.str();
}

}  // namespace ffc::bench
