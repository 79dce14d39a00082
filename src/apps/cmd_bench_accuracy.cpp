// `ffc bench accuracy` (docs/benchmarks.md): every method trained to the end of one schedule
// (the same epochs, steps and learning rates), evaluated every epoch on held-out and trained
// identities; several seeds per main run; a report of where each run ends, whether it converged
// and what reaching 99% of its final accuracy cost.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "apps/bench_common.h"
#include "apps/commands.h"
#include "common/error.h"
#include "common/json_get.h"
#include "common/logging.h"
#include "common/version.h"

namespace ffc::app {
namespace {

// One entry of --runs: METHOD[@POOL%][:LOADER].
struct RunKind {
  std::string label;  // as given
  std::string method;
  std::string loader = "both";
  double pool_percent = 0;  // FFC: the pool as a share of N, in percent
  bool ablation() const { return loader != "both"; }
};

RunKind parse_run(const std::string& spec) {
  RunKind k;
  k.label = spec;
  std::string rest = spec;
  const size_t colon = rest.find(':');
  if (colon != std::string::npos) {
    k.loader = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  const size_t at = rest.find('@');
  k.method = rest.substr(0, at);
  if (at != std::string::npos) {
    std::string pct = rest.substr(at + 1);
    if (!pct.empty() && pct.back() == '%') {
      pct.pop_back();
    }
    try {
      size_t used = 0;
      k.pool_percent = std::stod(pct, &used);
      if (used != pct.size()) {
        throw std::invalid_argument(pct);
      }
    } catch (const std::exception&) {
      k.pool_percent = -1;
    }
    if (!(k.pool_percent > 0 && k.pool_percent <= 100)) {
      throw ConfigError("--runs " + spec +
                        ": the pool after '@' must be a share of N in (0, 100]%, "
                        "e.g. ffc@10%");
    }
  }
  const bool known =
      k.method == "fc" || k.method == "pfc" || k.method == "vfc" || k.method == "ffc";
  if (!known) {
    throw ConfigError("--runs " + spec + ": unknown method '" + k.method +
                      "' (fc, pfc, vfc or ffc[@P%][:instance|identity])");
  }
  if ((k.method != "ffc") && (at != std::string::npos || colon != std::string::npos)) {
    throw ConfigError("--runs " + spec + ": a pool share and a loader exist for ffc only");
  }
  if (k.loader != "both" && k.loader != "instance" && k.loader != "identity") {
    throw ConfigError("--runs " + spec + ": loader '" + k.loader +
                      "' is not one of both, instance, identity");
  }
  return k;
}

// "ffc@10%:instance" -> "ffc-10pct-instance" (a folder name).
std::string run_folder(const RunKind& k) {
  std::string id = k.method;
  if (k.pool_percent > 0) {
    std::ostringstream o;
    o << k.pool_percent;
    id += "-" + o.str() + "pct";
  }
  if (k.loader != "both") {
    id += "-" + k.loader;
  }
  return id;
}

double num(const Json& j, const std::string& key) {
  return json_number(j, key, std::nan(""));
}

// One evaluation of one run: the held-out pairs and the long-tail buckets after `step`.
struct Eval {
  int64_t step = 0;
  double epoch = 0;
  double train_s = 0;
  Json heldout;   // the record (accuracy, tar@far=..)
  Json longtail;  // the record (buckets)
  double accuracy() const { return num(heldout, "accuracy"); }
  double bucket(const std::string& name, const std::string& key) const {
    if (longtail.contains("buckets")) {
      for (const auto& b : longtail["buckets"]) {
        if (json_string(b, "bucket") == name) {
          return num(b, key);
        }
      }
    }
    return std::nan("");
  }
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

void collect(Run& run, const std::string& metrics_path, double threshold) {
  std::vector<double> rates;
  std::vector<double> probe_rates;
  std::map<int64_t, Eval> by_step;
  int windows = 0;
  for (const auto& rec : read_metrics(metrics_path)) {
    if (json_string(rec, "event") == "eval") {
      Eval& e = by_step[static_cast<int64_t>(num(rec, "step"))];
      e.step = static_cast<int64_t>(num(rec, "step"));
      e.epoch = num(rec, "epoch");
      e.train_s = num(rec, "train_s");
      (json_string(rec, "target") == "longtail" ? e.longtail : e.heldout) = rec;
      continue;
    }
    if (rec.contains("images_per_s")) {
      run.peak_rss_mib =
          std::max(std::isnan(run.peak_rss_mib) ? 0.0 : run.peak_rss_mib, num(rec, "peak_rss_mib"));
      run.final_lr = num(rec, "lr");
      if (windows++ > 0) {  // the first window warms up
        rates.push_back(num(rec, "images_per_s"));
        probe_rates.push_back(num(rec, "probe_images_per_s"));
      }
    }
  }
  for (auto& [step, e] : by_step) {
    if (e.heldout.is_object()) {
      run.evals.push_back(e);
    }
  }
  run.images_per_s = median(rates);
  run.probe_images_per_s = median(probe_rates);
  if (run.evals.empty()) {
    return;
  }
  const double final_acc = run.last().accuracy();
  if (run.evals.size() >= 2) {
    run.moved = std::abs(final_acc - run.evals[run.evals.size() - 2].accuracy());
    run.converged = run.moved < threshold;
  }
  for (const auto& e : run.evals) {
    if (e.accuracy() >= 0.99 * final_acc) {
      run.epoch_99 = e.epoch;
      run.train_s_99 = e.train_s;
      break;
    }
  }
}

// Mean and range over a configuration's seeds.
struct Stat {
  double mean = std::nan("");
  double lo = std::nan("");
  double hi = std::nan("");
  int n = 0;
  void add(double v) {
    if (std::isnan(v)) {
      return;
    }
    mean = n == 0 ? v : (mean * n + v) / (n + 1);
    lo = n == 0 ? v : std::min(lo, v);
    hi = n == 0 ? v : std::max(hi, v);
    ++n;
  }
  double range() const { return n > 0 ? hi - lo : std::nan(""); }
  // "0.9512 (0.9498–0.9526)", or the value alone for one seed.
  std::string text(int digits) const {
    if (n == 0) {
      return "-";
    }
    if (n == 1) {
      return fmt_num(mean, digits);
    }
    return fmt_num(mean, digits) + " (" + fmt_num(lo, digits) + "–" + fmt_num(hi, digits) + ")";
  }
};

template <typename F>
Stat over(const std::vector<const Run*>& runs, F f) {
  Stat s;
  for (const Run* r : runs) {
    s.add(f(*r));
  }
  return s;
}

// A Markdown table of the configurations that finished: "run", then `columns`; the cell of
// column i of a configuration is cell(its runs, i).
template <typename Cell>
void md_table(std::ostream& md, const std::vector<std::string>& columns,
              const std::vector<RunKind>& kinds,
              const std::map<std::string, std::vector<const Run*>>& by_kind, Cell cell) {
  md << "| run |";
  for (const auto& column : columns) {
    md << " " << column << " |";
  }
  md << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) {
    md << "---|";
  }
  md << "\n";
  for (const RunKind& kind : kinds) {
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      continue;
    }
    md << "| " << kind.label << " |";
    for (size_t i = 0; i < columns.size(); ++i) {
      md << " " << cell(it->second, i) << " |";
    }
    md << "\n";
  }
}

Json eval_json(const Eval& e) {
  Json j;
  j["step"] = e.step;
  j["epoch"] = e.epoch;
  j["train_s"] = e.train_s;
  j["heldout"] = e.heldout;
  j["longtail"] = e.longtail;
  return j;
}

std::string points(double v) {  // a difference of accuracies in points
  std::ostringstream o;
  o.precision(2);
  o << std::fixed << (v >= 0 ? "+" : "") << 100 * v;
  return o.str();
}

}  // namespace

int run_bench_accuracy(const BenchAccuracyCommand& cmd) {
  const BenchCommon& c = cmd.common;
  if (cmd.epochs < 2 || cmd.warmup_epochs >= cmd.epochs) {
    throw ConfigError(
        "--epochs must be at least 2 (convergence compares the last two "
        "evaluations) and larger than --warmup-epochs");
  }
  if (cmd.seeds.empty()) {
    throw ConfigError("--seeds: at least one seed");
  }
  std::vector<RunKind> kinds;
  for (const auto& spec : cmd.runs) {
    kinds.push_back(parse_run(spec));
  }
  std::filesystem::create_directories(c.out + "/runs");
  const std::string schedule = "SGD, momentum 0.9, weight decay 5e-4, lr " + fmt_num(cmd.lr, 3) +
                               " warmed up linearly over " + std::to_string(cmd.warmup_epochs) +
                               " epoch(s), then decayed linearly (poly, power 1) to 0 at "
                               "epoch " +
                               std::to_string(cmd.epochs);
  std::vector<Run> runs;
  Json json_runs = Json::array();
  std::ostringstream csv;
  csv << "config,seed,run,epoch,step,train_s,heldout_accuracy,heldout_accuracy_std,tar_far_1e-3,"
         "tar_far_1e-4,trained_accuracy,unseen_accuracy,rarest_accuracy,rarest_top1\n";
  for (const RunKind& kind : kinds) {
    const std::vector<int64_t>& seeds = kind.ablation() ? cmd.ablation_seeds : cmd.seeds;
    for (int64_t seed : seeds) {
      Run run;
      run.kind = kind;
      run.seed = seed;
      run.id = run_folder(kind) + "-s" + std::to_string(seed);
      RunSpec spec;
      spec.id = run.id;
      spec.ranks = cmd.ranks;
      spec.sets = common_sets(c, seed);
      spec.sets.push_back("method=" + kind.method);
      spec.sets.push_back("loader_mode=" + kind.loader);
      spec.sets.push_back("num_classes=" + std::to_string(cmd.classes));
      spec.sets.push_back("synthetic_difficulty=" + fmt_num(cmd.difficulty, 3));
      // One schedule for every run, in steps: an epoch is one pass over the images at the batch.
      spec.sets.push_back("epoch_basis=images");
      spec.sets.push_back("num_epoch=" + std::to_string(cmd.epochs));
      spec.sets.push_back("warmup_epoch=" + std::to_string(cmd.warmup_epochs));
      spec.sets.push_back("lr_schedule=poly");
      spec.sets.push_back("lr=" + fmt_num(cmd.lr, 6));
      spec.sets.push_back("momentum=0.9");
      spec.sets.push_back("weight_decay=5e-4");
      spec.sets.push_back("max_steps=0");
      spec.sets.push_back("val_pairs=" + std::to_string(cmd.val_pairs));
      spec.sets.push_back("val_identities=" + std::to_string(cmd.val_identities));
      if (kind.pool_percent > 0) {
        spec.sets.push_back("pool_size=" + std::to_string(static_cast<int64_t>(std::llround(
                                               kind.pool_percent / 100.0 * cmd.classes))));
      }
      // Evaluated at the end of every epoch, and only then.
      spec.sets.push_back("eval_every_epoch=true");
      spec.sets.push_back("verbose=1000000000");
      spec.sets.push_back("frequent=50");
      std::filesystem::remove_all(c.out + "/runs/" + run.id);
      const auto t0 = std::chrono::steady_clock::now();
      const int rc = launch(c, spec, c.out + "/runs");
      run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      run.status = rc == 0 ? "ok" : "failed (exit " + std::to_string(rc) + ", " + run.id + ".log)";
      collect(run, c.out + "/runs/" + run.id + "/metrics.jsonl", cmd.converged);
      if (run.status == "ok" && run.evals.size() < static_cast<size_t>(cmd.epochs)) {
        run.status = "failed (" + std::to_string(run.evals.size()) + " evaluations of " +
                     std::to_string(cmd.epochs) + ")";
      }
      spdlog::info(
          "bench accuracy: {} seed {}: {}, {} evaluations, final held-out accuracy {:.4f}"
          ", {}converged",
          kind.label, seed, run.status, run.evals.size(),
          run.evals.empty() ? std::nan("") : run.last().accuracy(), run.converged ? "" : "not ");
      for (const auto& e : run.evals) {
        csv << kind.label << "," << seed << "," << run.id << "," << fmt_num(e.epoch, 3) << ","
            << e.step << "," << fmt_num(e.train_s, 1) << "," << fmt_num(e.accuracy(), 5) << ","
            << fmt_num(num(e.heldout, "accuracy_std"), 5) << ","
            << fmt_num(num(e.heldout, "tar@far=1e-03"), 5) << ","
            << fmt_num(num(e.heldout, "tar@far=1e-04"), 5) << ","
            << fmt_num(e.bucket("trained", "accuracy"), 5) << ","
            << fmt_num(e.bucket("unseen", "accuracy"), 5) << ","
            << fmt_num(e.bucket("1", "accuracy"), 5) << "," << fmt_num(e.bucket("1", "top1"), 5)
            << "\n";
      }
      Json j;
      j["config"] = kind.label;
      j["seed"] = seed;
      j["run"] = run.id;
      j["status"] = run.status;
      j["seconds"] = run.seconds;
      j["images_per_s"] = run.images_per_s;
      j["probe_images_per_s"] = run.probe_images_per_s;
      j["peak_rss_mib"] = run.peak_rss_mib;
      j["final_lr"] = run.final_lr;
      j["converged"] = run.converged;
      j["last_move"] = run.moved;
      j["epoch_99"] = run.epoch_99;
      j["train_s_99"] = run.train_s_99;
      Json evals = Json::array();
      for (const auto& e : run.evals) {
        evals.push_back(eval_json(e));
      }
      j["evals"] = evals;
      json_runs.push_back(j);
      runs.push_back(run);
      // As it goes: a long benchmark can be watched.
      write_text(c.out + "/accuracy.csv", csv.str());
      write_text(c.out + "/accuracy.json", Json{{"runs", json_runs}}.dump(2) + "\n");
    }
  }

  // Per configuration, over its seeds (the runs that finished).
  std::map<std::string, std::vector<const Run*>> by_kind;
  for (const auto& r : runs) {
    if (r.ok()) {
      by_kind[r.kind.label].push_back(&r);
    }
  }
  auto final_acc = [](const Run& r) { return r.last().accuracy(); };
  auto at_epoch = [](int64_t e) {
    return [e](const Run& r) {
      for (const auto& ev : r.evals) {
        if (std::llround(ev.epoch) == e) {
          return ev.accuracy();
        }
      }
      return std::nan("");
    };
  };
  std::vector<std::string> buckets;
  for (const auto& r : runs) {
    if (r.ok() && r.last().longtail.contains("buckets")) {
      for (const auto& b : r.last().longtail["buckets"]) {
        const std::string name = json_string(b, "bucket");
        if (std::find(buckets.begin(), buckets.end(), name) == buckets.end()) {
          buckets.push_back(name);
        }
      }
    }
  }
  const int64_t impostors = cmd.val_pairs / 2;
  std::ostringstream md;
  md << "Machine: " << machine_text() << ". ffc " << project_version() << " (git " << git_revision()
     << ").\n\n"
     << cmd.classes << " procedural identities (difficulty " << fmt_num(cmd.difficulty, 2)
     << "), network " << c.network << " at " << c.image_size << "x" << c.image_size
     << ", D = " << c.embedding << ", batch " << c.batch << " per rank x " << cmd.ranks
     << " ranks. Schedule of every run: " << cmd.epochs << " epochs (an epoch: one pass over the "
     << "images at that batch, the same steps for every method), " << schedule
     << ". Evaluated after every epoch: held-out verification on " << cmd.val_pairs
     << " pairs of identities never trained (10-fold accuracy with flip, TAR@FAR), and "
     << cmd.val_identities << " identities per long-tail bucket (verification accuracy / "
     << "identification top-1). Main runs: seeds";
  for (int64_t s : cmd.seeds) {
    md << " " << s;
  }
  md << ", mean (range); loader ablation: seed";
  for (int64_t s : cmd.ablation_seeds) {
    md << " " << s;
  }
  md << ". Converged: the held-out accuracy of the last two evaluations differs by less than "
     << fmt_num(cmd.converged, 3) << ". Epoch / minutes to 99%: the first evaluation at 99% of "
     << "the run's own final accuracy, in epochs and minutes of training (evaluations left "
     << "out). TAR@FAR=1e-4 needs 10^4 impostor pairs; this set has " << impostors << ".\n\n";
  md << "| run | held-out accuracy | epoch 1 | TAR@FAR=1e-3 | trained | unseen | converged (last "
        "move) | epoch to 99% | minutes to 99% | minutes | images/s (probe) | peak RSS per rank "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunKind& kind : kinds) {
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      md << "| " << kind.label << " | failed | | | | | | | | | | |\n";
      continue;
    }
    const auto& rs = it->second;
    int conv = 0;
    Stat move = over(rs, [](const Run& r) { return r.moved; });
    for (const Run* r : rs) {
      conv += r->converged ? 1 : 0;
    }
    md << "| " << kind.label << " | " << over(rs, final_acc).text(4) << " | "
       << over(rs, at_epoch(1)).text(4) << " | "
       << over(rs, [](const Run& r) { return num(r.last().heldout, "tar@far=1e-03"); }).text(3)
       << " | "
       << over(rs, [](const Run& r) { return r.last().bucket("trained", "accuracy"); }).text(3)
       << " | "
       << over(rs, [](const Run& r) { return r.last().bucket("unseen", "accuracy"); }).text(3)
       << " | "
       << (conv == static_cast<int>(rs.size()) ? "yes"
           : conv == 0                         ? "no"
                                               : "partly")
       << " (" << fmt_num(move.hi, 4) << ") | "
       << over(rs, [](const Run& r) { return r.epoch_99; }).text(1) << " | "
       << over(rs, [](const Run& r) { return r.train_s_99 / 60; }).text(1) << " | "
       << over(rs, [](const Run& r) { return r.seconds / 60; }).text(1) << " | "
       << fmt_num(over(rs, [](const Run& r) { return r.images_per_s; }).mean, 0) << " ("
       << fmt_num(over(rs, [](const Run& r) { return r.probe_images_per_s; }).mean, 0) << ") | "
       << fmt_num(over(rs, [](const Run& r) { return r.peak_rss_mib; }).hi, 0) << " MiB |\n";
  }
  md << "\nLong-tail buckets at the end (identities by training-image count; verification "
        "accuracy / identification top-1, mean over seeds):\n\n";
  md_table(md, buckets, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
    const std::string& b = buckets[i];
    return fmt_num(over(rs, [&](const Run& r) { return r.last().bucket(b, "accuracy"); }).mean, 3) +
           " / " +
           fmt_num(over(rs, [&](const Run& r) { return r.last().bucket(b, "top1"); }).mean, 3);
  });
  md << "\nHeld-out accuracy after each epoch (mean over seeds):\n\n";
  std::vector<std::string> epochs;
  for (int64_t e = 1; e <= cmd.epochs; ++e) {
    epochs.push_back(std::to_string(e));
  }
  md_table(md, epochs, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
    return fmt_num(over(rs, at_epoch(static_cast<int64_t>(i) + 1)).mean, 4);
  });
  // The figures the questions need, computed: FFC against FC, and the dual loader's rarest bucket.
  md << "\nFigures for the questions (points of held-out accuracy; spread: the larger of the two "
        "configurations' seed ranges):\n\n";
  const auto fc = by_kind.find("fc");
  for (const RunKind& kind : kinds) {
    if (kind.method == "fc" || kind.ablation() || fc == by_kind.end()) {
      continue;
    }
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      continue;
    }
    const Stat a = over(it->second, final_acc);
    const Stat f = over(fc->second, final_acc);
    const double gap = a.mean - f.mean;
    const double spread = std::max(a.range(), f.range());
    md << "- " << kind.label << " against fc: " << points(gap) << " points at the end (spread "
       << fmt_num(100 * spread, 2)
       << " points): " << (std::abs(gap) <= 0.01 ? "within 1 point" : "not within 1 point") << ", "
       << (std::abs(gap) > spread ? "larger than the seeds' spread" : "within the seeds' spread")
       << "; after epoch 1: "
       << points(over(it->second, at_epoch(1)).mean - over(fc->second, at_epoch(1)).mean) << ".\n";
  }
  for (const RunKind& kind : kinds) {
    if (!kind.ablation()) {
      continue;
    }
    std::string both_label = kind.method;
    if (kind.pool_percent > 0) {
      both_label = kind.label.substr(0, kind.label.find(':'));
    }
    const auto both = by_kind.find(both_label);
    const auto alone = by_kind.find(kind.label);
    if (both == by_kind.end() || alone == by_kind.end()) {
      continue;
    }
    auto rare = [](const std::string& key, bool first) {
      return [key, first](const Run& r) {
        return (first ? r.evals.front() : r.last()).bucket("1", key);
      };
    };
    md << "- " << both_label << " (both loaders) against " << kind.label
       << ", identities with one training image: top-1 "
       << points(over(both->second, rare("top1", false)).mean -
                 over(alone->second, rare("top1", false)).mean)
       << " points at the end, "
       << points(over(both->second, rare("top1", true)).mean -
                 over(alone->second, rare("top1", true)).mean)
       << " after epoch 1; verification "
       << points(over(both->second, rare("accuracy", false)).mean -
                 over(alone->second, rare("accuracy", false)).mean)
       << " at the end, "
       << points(over(both->second, rare("accuracy", true)).mean -
                 over(alone->second, rare("accuracy", true)).mean)
       << " after epoch 1.\n";
  }
  Json setup;
  setup["classes"] = cmd.classes;
  setup["difficulty"] = cmd.difficulty;
  setup["ranks"] = cmd.ranks;
  setup["batch_per_rank"] = c.batch;
  setup["network"] = c.network;
  setup["image_size"] = c.image_size;
  setup["embedding"] = c.embedding;
  setup["epochs"] = cmd.epochs;
  setup["warmup_epochs"] = cmd.warmup_epochs;
  setup["lr"] = cmd.lr;
  setup["schedule"] = schedule;
  setup["seeds"] = cmd.seeds;
  setup["ablation_seeds"] = cmd.ablation_seeds;
  setup["converged_threshold"] = cmd.converged;
  setup["val_pairs"] = cmd.val_pairs;
  setup["val_identities"] = cmd.val_identities;
  setup["machine"] = machine_text();
  setup["version"] = project_version();
  setup["git"] = git_revision();
  write_text(c.out + "/accuracy.json", Json{{"setup", setup}, {"runs", json_runs}}.dump(2) + "\n");
  write_text(c.out + "/accuracy.md", md.str());
  std::cout << md.str() << "\nwrote " << c.out << "/accuracy.md, accuracy.json and accuracy.csv; "
            << "curves: tools/ffc_plot.py accuracy " << c.out << "/accuracy.csv\n";
  int failed = 0;
  for (const auto& r : runs) {
    failed += r.ok() && r.status == "ok" ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace ffc::app
