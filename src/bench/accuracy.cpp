#include "bench/accuracy.h"

#include <algorithm>
#include <map>
#include <ostream>
#include <sstream>

#include "bench/runner.h"
#include "bench/stats.h"
#include "common/error.h"
#include "common/json_get.h"
#include "common/methods.h"
#include "common/metrics_record.h"

namespace ffc::bench {
namespace {

double num(const Json& j, const std::string& key) {
  return json_number(j, key, std::nan(""));
}

double parse_percent(const std::string& spec, std::string pct) {
  if (!pct.empty() && pct.back() == '%') {
    pct.pop_back();
  }
  double v = -1;
  try {
    size_t used = 0;
    v = std::stod(pct, &used);
    if (used != pct.size()) {
      v = -1;
    }
  } catch (const std::exception&) {
    v = -1;
  }
  if (!(v > 0 && v <= 100)) {
    throw ConfigError("--runs " + spec +
                      ": the pool after '@' must be a share of N in (0, 100]%, "
                      "e.g. ffc@10%");
  }
  return v;
}

using ByConfig = std::map<std::string, std::vector<const Run*>>;

// The finished runs of each configuration.
ByConfig by_config(const std::vector<Run>& runs) {
  ByConfig out;
  for (const auto& r : runs) {
    if (r.ok()) {
      out[r.kind.label].push_back(&r);
    }
  }
  return out;
}

double final_accuracy(const Run& r) {
  return r.last().accuracy();
}

// The held-out accuracy after epoch `e` (NaN if the run has no such evaluation).
auto at_epoch(int64_t e) {
  return [e](const Run& r) {
    for (const auto& ev : r.evals) {
      if (std::llround(ev.epoch) == e) {
        return ev.accuracy();
      }
    }
    return std::nan("");
  };
}

// A Markdown table of the configurations that finished: "run", then `columns`; the cell of
// column i of a configuration is cell(its runs, i).
template <typename Cell>
void md_table(std::ostream& md, const std::vector<std::string>& columns,
              const std::vector<RunKind>& kinds, const ByConfig& by_kind, Cell cell) {
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

void md_setup(std::ostream& md, const AccuracyOptions& o, const std::string& machine,
              const std::string& version, const std::string& git) {
  const Common& c = o.common;
  md << "Machine: " << machine << ". ffc " << version << " (git " << git << ").\n\n"
     << o.classes << " procedural identities (difficulty " << fmt_num(o.difficulty, 2)
     << "), network " << c.network << " at " << c.image_size << "x" << c.image_size
     << ", D = " << c.embedding << ", batch " << c.batch << " per rank x " << o.ranks
     << " ranks. Schedule of every run: " << o.epochs << " epochs (an epoch: one pass over the "
     << "images at that batch, the same steps for every method), " << schedule_text(o)
     << ". Evaluated after every epoch: held-out verification on " << o.val_pairs
     << " pairs of identities never trained (10-fold accuracy with flip, TAR@FAR), and "
     << o.val_identities << " identities per long-tail bucket (verification accuracy / "
     << "identification top-1). Main runs: seeds";
  for (int64_t s : o.seeds) {
    md << " " << s;
  }
  md << ", mean (range); loader ablation: seed";
  for (int64_t s : o.ablation_seeds) {
    md << " " << s;
  }
  md << ". Converged: the held-out accuracy of the last two evaluations differs by less than "
     << fmt_num(o.converged, 3) << ". Epoch / minutes to 99%: the first evaluation at 99% of "
     << "the run's own final accuracy, in epochs and minutes of training (evaluations left "
     << "out). TAR@FAR=1e-4 needs 10^4 impostor pairs; this set has " << o.val_pairs / 2 << ".\n\n";
}

void md_main_row(std::ostream& md, const std::string& label, const std::vector<const Run*>& rs) {
  int conv = 0;
  const Stat move = over(rs, [](const Run& r) { return r.moved; });
  for (const Run* r : rs) {
    conv += r->converged ? 1 : 0;
  }
  md << "| " << label << " | " << over(rs, final_accuracy).text(4) << " | "
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

void md_main_table(std::ostream& md, const std::vector<RunKind>& kinds, const ByConfig& by_kind) {
  md << "| run | held-out accuracy | epoch 1 | TAR@FAR=1e-3 | trained | unseen | converged (last "
        "move) | epoch to 99% | minutes to 99% | minutes | images/s (probe) | peak RSS per rank "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunKind& kind : kinds) {
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      md << "| " << kind.label << " | failed | | | | | | | | | | |\n";
    } else {
      md_main_row(md, kind.label, it->second);
    }
  }
}

// The long-tail bucket names of the finished runs' last evaluations, in first-seen order.
std::vector<std::string> bucket_names(const std::vector<Run>& runs) {
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
  return buckets;
}

// Each configuration (ablations aside) against fc: the gap at the end and after epoch 1.
void md_against_fc(std::ostream& md, const std::vector<RunKind>& kinds, const ByConfig& by_kind) {
  const auto fc = by_kind.find("fc");
  for (const RunKind& kind : kinds) {
    if (kind.method == "fc" || kind.ablation() || fc == by_kind.end()) {
      continue;
    }
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      continue;
    }
    const Stat a = over(it->second, final_accuracy);
    const Stat f = over(fc->second, final_accuracy);
    const double gap = a.mean - f.mean;
    const double spread = std::max(a.range(), f.range());
    md << "- " << kind.label << " against fc: " << points(gap) << " points at the end (spread "
       << fmt_num(100 * spread, 2)
       << " points): " << (std::abs(gap) <= 0.01 ? "within 1 point" : "not within 1 point") << ", "
       << (std::abs(gap) > spread ? "larger than the seeds' spread" : "within the seeds' spread")
       << "; after epoch 1: "
       << points(over(it->second, at_epoch(1)).mean - over(fc->second, at_epoch(1)).mean) << ".\n";
  }
}

// The dual loader against one loader alone, on the identities with one training image.
void md_ablations(std::ostream& md, const std::vector<RunKind>& kinds, const ByConfig& by_kind) {
  for (const RunKind& kind : kinds) {
    if (!kind.ablation()) {
      continue;
    }
    const std::string both_label =
        kind.pool_percent > 0 ? kind.label.substr(0, kind.label.find(':')) : kind.method;
    const auto both = by_kind.find(both_label);
    const auto alone = by_kind.find(kind.label);
    if (both == by_kind.end() || alone == by_kind.end()) {
      continue;
    }
    auto diff = [&](const std::string& key, bool first) {
      auto rare = [key, first](const Run& r) {
        return (first ? r.evals.front() : r.last()).bucket("1", key);
      };
      return points(over(both->second, rare).mean - over(alone->second, rare).mean);
    };
    md << "- " << both_label << " (both loaders) against " << kind.label
       << ", identities with one training image: top-1 " << diff("top1", false)
       << " points at the end, " << diff("top1", true) << " after epoch 1; verification "
       << diff("accuracy", false) << " at the end, " << diff("accuracy", true)
       << " after epoch 1.\n";
  }
}

}  // namespace

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
    k.pool_percent = parse_percent(spec, rest.substr(at + 1));
  }
  const MethodInfo* method = find_method(k.method);
  if (method == nullptr || !method->has_head) {
    throw ConfigError("--runs " + spec + ": unknown method '" + k.method + "' (" +
                      method_list(false) + "[@P%][:instance|identity])");
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

std::string schedule_text(const AccuracyOptions& o) {
  return "SGD, momentum 0.9, weight decay 5e-4, lr " + fmt_num(o.lr, 3) +
         " warmed up linearly over " + std::to_string(o.warmup_epochs) +
         " epoch(s), then decayed linearly (poly, power 1) to 0 at "
         "epoch " +
         std::to_string(o.epochs);
}

std::vector<std::string> run_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed) {
  std::vector<std::string> sets = common_sets(o.common, seed);
  sets.push_back("method=" + kind.method);
  sets.push_back("loader_mode=" + kind.loader);
  sets.push_back("num_classes=" + std::to_string(o.classes));
  sets.push_back("synthetic_difficulty=" + fmt_num(o.difficulty, 3));
  // One schedule for every run, in steps: an epoch is one pass over the images at the batch.
  sets.push_back("epoch_basis=images");
  sets.push_back("num_epoch=" + std::to_string(o.epochs));
  sets.push_back("warmup_epoch=" + std::to_string(o.warmup_epochs));
  sets.push_back("lr_schedule=poly");
  sets.push_back("lr=" + fmt_num(o.lr, 6));
  sets.push_back("momentum=0.9");
  sets.push_back("weight_decay=5e-4");
  sets.push_back("max_steps=0");
  sets.push_back("val_pairs=" + std::to_string(o.val_pairs));
  sets.push_back("val_identities=" + std::to_string(o.val_identities));
  if (kind.pool_percent > 0) {
    sets.push_back("pool_size=" + std::to_string(static_cast<int64_t>(
                                      std::llround(kind.pool_percent / 100.0 * o.classes))));
  }
  // Evaluated at the end of every epoch, and only then.
  sets.push_back("eval_every_epoch=true");
  sets.push_back("verbose=1000000000");
  sets.push_back("frequent=50");
  return sets;
}

double Eval::accuracy() const {
  return num(heldout, "accuracy");
}

double Eval::bucket(const std::string& name, const std::string& key) const {
  if (longtail.contains("buckets")) {
    for (const auto& b : longtail["buckets"]) {
      if (json_string(b, "bucket") == name) {
        return num(b, key);
      }
    }
  }
  return std::nan("");
}

void collect(Run& run, const std::vector<Json>& records, double threshold) {
  std::vector<double> rates;
  std::vector<double> probe_rates;
  std::map<int64_t, Eval> by_step;
  int windows = 0;
  for (const auto& rec : records) {
    if (metrics::is_eval(rec)) {
      Eval& e = by_step[static_cast<int64_t>(num(rec, "step"))];
      e.step = static_cast<int64_t>(num(rec, "step"));
      e.epoch = num(rec, "epoch");
      e.train_s = num(rec, "train_s");
      (json_string(rec, "target") == "longtail" ? e.longtail : e.heldout) = rec;
      continue;
    }
    if (metrics::is_progress(rec)) {
      const metrics::Progress p = metrics::progress_from_json(rec);
      run.peak_rss_mib =
          std::max(std::isnan(run.peak_rss_mib) ? 0.0 : run.peak_rss_mib, p.peak_rss_mib);
      run.final_lr = p.lr;
      if (windows++ > 0) {  // the first window warms up
        rates.push_back(p.images_per_s);
        probe_rates.push_back(p.probe_images_per_s);
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

std::string accuracy_csv_header() {
  return "config,seed,run,epoch,step,train_s,heldout_accuracy,heldout_accuracy_std,tar_far_1e-3,"
         "tar_far_1e-4,trained_accuracy,unseen_accuracy,rarest_accuracy,rarest_top1\n";
}

std::string csv_rows(const Run& run) {
  std::ostringstream csv;
  for (const auto& e : run.evals) {
    csv << run.kind.label << "," << run.seed << "," << run.id << "," << fmt_num(e.epoch, 3) << ","
        << e.step << "," << fmt_num(e.train_s, 1) << "," << fmt_num(e.accuracy(), 5) << ","
        << fmt_num(num(e.heldout, "accuracy_std"), 5) << ","
        << fmt_num(num(e.heldout, "tar@far=1e-03"), 5) << ","
        << fmt_num(num(e.heldout, "tar@far=1e-04"), 5) << ","
        << fmt_num(e.bucket("trained", "accuracy"), 5) << ","
        << fmt_num(e.bucket("unseen", "accuracy"), 5) << ","
        << fmt_num(e.bucket("1", "accuracy"), 5) << "," << fmt_num(e.bucket("1", "top1"), 5)
        << "\n";
  }
  return csv.str();
}

Json run_json(const Run& run) {
  Json j;
  j["config"] = run.kind.label;
  j["seed"] = run.seed;
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
    Json ej;
    ej["step"] = e.step;
    ej["epoch"] = e.epoch;
    ej["train_s"] = e.train_s;
    ej["heldout"] = e.heldout;
    ej["longtail"] = e.longtail;
    evals.push_back(ej);
  }
  j["evals"] = evals;
  return j;
}

Json setup_json(const AccuracyOptions& o, const std::string& machine, const std::string& version,
                const std::string& git) {
  const Common& c = o.common;
  Json setup;
  setup["classes"] = o.classes;
  setup["difficulty"] = o.difficulty;
  setup["ranks"] = o.ranks;
  setup["batch_per_rank"] = c.batch;
  setup["network"] = c.network;
  setup["image_size"] = c.image_size;
  setup["embedding"] = c.embedding;
  setup["epochs"] = o.epochs;
  setup["warmup_epochs"] = o.warmup_epochs;
  setup["lr"] = o.lr;
  setup["schedule"] = schedule_text(o);
  setup["seeds"] = o.seeds;
  setup["ablation_seeds"] = o.ablation_seeds;
  setup["converged_threshold"] = o.converged;
  setup["val_pairs"] = o.val_pairs;
  setup["val_identities"] = o.val_identities;
  setup["machine"] = machine;
  setup["version"] = version;
  setup["git"] = git;
  return setup;
}

std::string markdown_report(const AccuracyOptions& o, const std::vector<RunKind>& kinds,
                            const std::vector<Run>& runs, const std::string& machine,
                            const std::string& version, const std::string& git) {
  const ByConfig by_kind = by_config(runs);
  const std::vector<std::string> buckets = bucket_names(runs);
  std::ostringstream md;
  md_setup(md, o, machine, version, git);
  md_main_table(md, kinds, by_kind);
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
  for (int64_t e = 1; e <= o.epochs; ++e) {
    epochs.push_back(std::to_string(e));
  }
  md_table(md, epochs, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
    return fmt_num(over(rs, at_epoch(static_cast<int64_t>(i) + 1)).mean, 4);
  });
  // The figures the questions need, computed: FFC against FC, and the dual loader's rarest bucket.
  md << "\nFigures for the questions (points of held-out accuracy; spread: the larger of the two "
        "configurations' seed ranges):\n\n";
  md_against_fc(md, kinds, by_kind);
  md_ablations(md, kinds, by_kind);
  return md.str();
}

}  // namespace ffc::bench
