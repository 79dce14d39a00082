// `ffc bench scaling` and `ffc bench accuracy` (docs/benchmarks.md): drive `ffc train` on
// procedural identities over a grid of methods, class counts and rank counts, through the MPI
// launcher, and collect throughput, memory and accuracy from the runs' metrics.jsonl.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "apps/commands.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/version.h"
#include "train/plan.h"

namespace ffc::app {
namespace {

using Json = nlohmann::ordered_json;

std::string self_exe() {
  std::vector<char> buf(4096, 0);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) {
    throw IoError("/proc/self/exe: cannot find the ffc executable to launch");
  }
  std::string path(buf.data(), static_cast<size_t>(n));
  // Rebuilt while the benchmark runs: launch the new file at the same path.
  const std::string deleted = " (deleted)";
  if (path.size() > deleted.size() &&
      path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0) {
    path.resize(path.size() - deleted.size());
  }
  return path;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) {
    s.replace(i, from.size(), to);
  }
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) {
    return std::nan("");
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Best GFLOP/s of a square float32 matmul at `threads` threads (the machine's matmul peak as the
// head sees it), measured in this process.
double matmul_peak_gflops(int threads, int64_t n = 1024) {
  const int saved = at::get_num_threads();
  at::set_num_threads(threads);
  const at::Tensor a = at::randn({n, n});
  const at::Tensor b = at::randn({n, n});
  at::Tensor c = at::empty({n, n});
  double best = 0;
  for (int i = 0; i < 12; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 2) {
      best = std::max(best, 2.0 * n * n * n / s / 1e9);
    }
  }
  at::set_num_threads(saved);
  return best;
}

std::string machine_text() {
  std::string cpu = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  // LibTorch's build summary names its BLAS (BLAS_INFO=...).
  std::string blas = "unknown";
  const std::string config = at::show_config();
  const size_t at_blas = config.find("BLAS_INFO=");
  if (at_blas != std::string::npos) {
    blas = config.substr(at_blas + 10, config.find_first_of(", \n", at_blas) - at_blas - 10);
  }
  std::ostringstream o;
  o << cpu << ", " << std::thread::hardware_concurrency() << " cores, "
    << static_cast<int64_t>(train::machine_memory_bytes() / (1 << 30)) << " GiB, BLAS " << blas;
  return o.str();
}

struct RunSpec {
  std::string id;
  int ranks = 1;
  std::vector<std::string> sets;  // KEY=VALUE
};

// Runs `ffc train` through the launcher; returns its exit status. Output in <dir>/<id>.log.
int launch(const BenchCommon& c, const RunSpec& run, const std::string& dir) {
  std::string cmd = replace_all(c.launcher, "{ranks}", std::to_string(run.ranks));
  cmd += " " + shell_quote(self_exe()) + " train";
  if (!c.config.empty()) {
    cmd += " --config " + shell_quote(c.config);
  }
  for (const auto& s : run.sets) {
    cmd += " --set " + shell_quote(s);
  }
  for (const auto& s : c.sets) {
    cmd += " --set " + shell_quote(s);
  }
  cmd += " --set " + shell_quote("output=" + dir + "/" + run.id);
  const std::string log = dir + "/" + run.id + ".log";
  spdlog::info("bench: {}", cmd);
  const int rc = std::system((cmd + " >" + shell_quote(log) + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::vector<Json> read_metrics(const std::string& path) {
  std::vector<Json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) {
      out.push_back(Json::parse(line));
    }
  }
  return out;
}

std::vector<std::string> common_sets(const BenchCommon& c) {
  return {"rec=synthetic",
          "network=" + c.network,
          "image_size=" + std::to_string(c.image_size),
          "embedding_size=" + std::to_string(c.embedding),
          "batch_size=" + std::to_string(c.batch),
          "sample_rate=" + std::to_string(c.sample_rate),
          "images_per_identity=4",
          "num_workers=1",
          "save_every=0",
          "save_last=false",
          "seed=2048"};
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) {
    throw IoError(path + ": cannot write");
  }
}

std::string fmt_num(double v, int digits = 3) {
  if (std::isnan(v)) {
    return "-";
  }
  std::ostringstream o;
  o.precision(digits);
  o << std::fixed << v;
  return o.str();
}

// A point whose windows' images/s spread more than this share of their median was disturbed.
constexpr double kDisturbedSpread = 0.25;

// The 1-minute load average (NaN where /proc/loadavg cannot be read).
double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = std::nan("");
  in >> load;
  return load;
}

struct Row {
  std::string name;    // method, or the run of the accuracy benchmark
  std::string status;  // ok, does not fit, failed (...)
  int64_t classes = 0;
  int ranks = 0;
  std::map<std::string, double> num;
  std::map<std::string, std::map<std::string, double>> buckets;  // accuracy: per long-tail bucket
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

int run_bench_accuracy(const BenchAccuracyCommand& cmd) {
  const BenchCommon& c = cmd.common;
  std::filesystem::create_directories(c.out + "/runs");
  std::vector<Row> rows;
  Json all = Json::array();
  for (const std::string& spec : cmd.runs) {
    // method[:loader_mode]
    const size_t colon = spec.find(':');
    const std::string method = spec.substr(0, colon);
    const std::string loader = colon == std::string::npos ? "both" : spec.substr(colon + 1);
    RunSpec run;
    run.id = method + (colon == std::string::npos ? "" : "-" + loader);
    run.ranks = cmd.ranks;
    run.sets = common_sets(c);
    run.sets.push_back("method=" + method);
    run.sets.push_back("loader_mode=" + loader);
    run.sets.push_back("num_classes=" + std::to_string(cmd.classes));
    run.sets.push_back("max_steps=" + std::to_string(cmd.steps));
    run.sets.push_back("num_epoch=" + std::to_string(cmd.epochs));
    run.sets.push_back("frequent=" + std::to_string(std::max<int64_t>(1, cmd.steps / 10)));
    run.sets.push_back("verbose=" + std::to_string(cmd.steps));
    run.sets.push_back("val_pairs=" + std::to_string(cmd.val_pairs));
    run.sets.push_back("val_identities=" + std::to_string(cmd.val_identities));
    std::filesystem::remove_all(c.out + "/runs/" + run.id);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = launch(c, run, c.out + "/runs");
    Row row;
    row.name = run.id;
    row.num["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row.status = rc == 0 ? "ok" : "failed (exit " + std::to_string(rc) + ")";
    Json out;
    out["run"] = run.id;
    out["status"] = row.status;
    for (const auto& rec : read_metrics(c.out + "/runs/" + run.id + "/metrics.jsonl")) {
      const std::string event = rec.value("event", "");
      const std::string target = rec.value("target", "");
      if (event != "eval") {
        if (rec.contains("probe_images_per_s")) {
          row.num["probe_images_per_s"] = rec.value("probe_images_per_s", 0.0);
        }
        continue;
      }
      out[target] = rec;
      if (target == "heldout") {
        row.num["accuracy"] = rec.value("accuracy", std::nan(""));
        row.num["tar_far_1e-3"] = rec.value("tar@far=1e-03", std::nan(""));
      } else if (target == "longtail" && rec.contains("buckets")) {
        for (const auto& b : rec["buckets"]) {
          auto& cell = row.buckets[b.value("bucket", "?")];
          cell["accuracy"] = b.value("accuracy", std::nan(""));
          cell["top1"] = b.value("top1", std::nan(""));
        }
      }
    }
    spdlog::info("bench accuracy: {}: {}, accuracy {:.4f}, TAR@FAR=1e-3 {:.4f}", run.id, row.status,
                 row.get("accuracy"), row.get("tar_far_1e-3"));
    rows.push_back(row);
    all.push_back(out);
    write_text(c.out + "/accuracy.json", all.dump(2) + "\n");
  }
  std::vector<std::string> buckets;
  for (const auto& row : rows) {
    for (const auto& [k, v] : row.buckets) {
      if (std::find(buckets.begin(), buckets.end(), k) == buckets.end()) {
        buckets.push_back(k);
      }
    }
  }
  std::ostringstream md;
  md << "Machine: " << machine_text() << ". ffc " << project_version() << " (git " << git_revision()
     << ").\n\n"
     << cmd.classes << " procedural identities, network " << c.network << " at " << c.image_size
     << "x" << c.image_size << ", D = " << c.embedding << ", batch " << c.batch << " per rank x "
     << cmd.ranks << " ranks, " << cmd.steps << " steps for every run; held-out verification on "
     << cmd.val_pairs << " pairs of unseen identities (10-fold accuracy, TAR@FAR=1e-3); long-tail "
     << "buckets: verification accuracy / identification top-1 of " << cmd.val_identities
     << " identities per bucket.\n\n| run | accuracy | TAR@FAR=1e-3 |";
  for (const auto& b : buckets) {
    md << " " << b << " |";
  }
  md << " probe images/s | minutes |\n|---|---|---|";
  for (size_t i = 0; i < buckets.size() + 2; ++i) {
    md << "---|";
  }
  md << "\n";
  for (const auto& row : rows) {
    md << "| " << row.name << (row.status == "ok" ? "" : " (" + row.status + ")") << " | "
       << fmt_num(row.get("accuracy"), 4) << " | " << fmt_num(row.get("tar_far_1e-3"), 4) << " |";
    for (const auto& b : buckets) {
      const auto it = row.buckets.find(b);
      if (it == row.buckets.end()) {
        md << " - |";
      } else {
        md << " " << fmt_num(it->second.at("accuracy"), 3) << " / "
           << fmt_num(it->second.at("top1"), 3) << " |";
      }
    }
    md << " " << fmt_num(row.get("probe_images_per_s"), 0) << " | "
       << fmt_num(row.get("seconds") / 60, 1) << " |\n";
  }
  write_text(c.out + "/accuracy.md", md.str());
  std::cout << md.str() << "\nwrote " << c.out << "/accuracy.json and " << c.out
            << "/accuracy.md\n";
  return 0;
}

}  // namespace ffc::app
