#include "bench/accuracy.h"

#include <algorithm>
#include <fstream>
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

// The whole of `text` as a number; NaN when it is not one (or has anything after it).
double whole_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    return used == text.size() ? v : std::nan("");
  } catch (const std::exception&) {
    return std::nan("");
  }
}

double parse_percent(const std::string& spec, std::string pct) {
  if (!pct.empty() && pct.back() == '%') {
    pct.pop_back();
  }
  const double v = whole_number(pct);
  if (!(v > 0 && v <= 100)) {
    throw ConfigError("--runs " + spec +
                      ": the pool after '@' must be a share of N in (0, 100]%, "
                      "e.g. ffc@10%");
  }
  return v;
}

double parse_multiple(const std::string& spec, const std::string& text) {
  const double v = whole_number(text);
  if (!(v >= 1 && v <= 1e6)) {
    throw ConfigError("--runs " + spec +
                      ": the pool after '@' ending in x is a multiple of the global gallery batch "
                      "(at least 1), e.g. ffc@50x");
  }
  return v;
}

// The identities of a packed dataset: the first figure of its `property` file (insightface's
// "classes,height,width").
int64_t dataset_classes(const std::string& rec) {
  std::ifstream in(rec + "/property");
  long long classes = 0;
  if (!(in >> classes) || classes < 1) {
    throw ConfigError(rec + "/property: cannot read the number of identities (is " + rec +
                      " a packed dataset? ffc pack writes one); a pool given as a share of N "
                      "needs it");
  }
  return classes;
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

double first_accuracy(const Run& r) {
  return r.evals.front().accuracy();
}
double rare_top1_last(const Run& r) {
  return r.last().bucket("1", "top1");
}
double rare_top1_first(const Run& r) {
  return r.evals.front().bucket("1", "top1");
}
double rare_accuracy_last(const Run& r) {
  return r.last().bucket("1", "accuracy");
}
double rare_accuracy_first(const Run& r) {
  return r.evals.front().bucket("1", "accuracy");
}

// Whether every seed's difference lies on the side of their mean (and none is 0).
const char* sides(const Paired& p) {
  int above = 0;
  int below = 0;
  for (const auto& [seed, d] : p.by_seed) {
    above += d > 0 ? 1 : 0;
    below += d < 0 ? 1 : 0;
  }
  const int n = static_cast<int>(p.by_seed.size());
  return n > 1 && (above == n || below == n) ? "every seed on the same side"
         : n > 1                             ? "the seeds disagree in sign"
                                             : "one seed";
}

// Each configuration (ablations aside) against fc, seed by seed (the seeds both finished): the
// difference at the end and at the first evaluation.
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
    const Paired end = paired(it->second, fc->second, final_accuracy);
    const Paired first = paired(it->second, fc->second, first_accuracy);
    md << "- " << kind.label << " against fc, seed by seed: " << paired_text(end)
       << " points at the end: "
       << (std::abs(end.diff.mean) <= 0.01 ? "within 1 point" : "not within 1 point")
       << "; the seeds' differences span " << fmt_num(100 * end.diff.range(), 2) << " points ("
       << sides(end) << "); at the first evaluation: " << paired_text(first) << ".\n";
  }
}

// The dual loader against one loader alone, on the identities with one training image, over the
// seeds both ran (the ablation's).
void md_ablations(std::ostream& md, const std::vector<RunKind>& kinds, const ByConfig& by_kind) {
  for (const RunKind& kind : kinds) {
    if (!kind.ablation()) {
      continue;
    }
    const std::string both_label = kind.pool_percent > 0 || kind.pool_multiple > 0
                                       ? kind.label.substr(0, kind.label.find(':'))
                                       : kind.method;
    const auto both = by_kind.find(both_label);
    const auto alone = by_kind.find(kind.label);
    if (both == by_kind.end() || alone == by_kind.end()) {
      continue;
    }
    md << "- " << both_label << " (both loaders) against " << kind.label
       << ", identities with one training image, seed by seed: top-1 "
       << paired_text(paired(both->second, alone->second, rare_top1_last)) << " points at the end, "
       << paired_text(paired(both->second, alone->second, rare_top1_first))
       << " at the first evaluation; verification "
       << paired_text(paired(both->second, alone->second, rare_accuracy_last)) << " at the end, "
       << paired_text(paired(both->second, alone->second, rare_accuracy_first))
       << " at the first evaluation.\n";
  }
}

// The setup of an equal-cost report: the budget, how schedules were fitted, the data.
void md_budget_setup(std::ostream& md, const AccuracyOptions& o, const std::string& machine,
                     const std::string& version, const std::string& git) {
  const Common& c = o.common;
  md << "Machine: " << machine << ". ffc " << version << " (git " << git << ").\n\n"
     << (o.rec == "synthetic" ? std::to_string(o.classes) + " procedural identities (difficulty " +
                                    fmt_num(o.difficulty, 2) + ")"
                              : "the identities of " + o.rec)
     << ", network " << c.network << " at " << c.image_size << "x" << c.image_size
     << ", D = " << c.embedding << ", batch " << c.batch << " per rank x " << o.ranks
     << " ranks. Equal cost: every run trains for " << fmt_num(o.budget_s, 0)
     << " s; its schedule (SGD, momentum 0.9, weight decay 5e-4, linear warm-up over "
     << o.warmup_epochs << "/" << o.epochs
     << " of it, then poly decay to 0) is fitted to the steps it makes in that time, measured "
        "first by a probe run of "
     << o.probe_steps << " steps, so that every run ends its schedule. Evaluated " << o.evals
     << " times along it (minutes of training: evaluations left out)";
  if (!o.lrs.empty()) {
    md << "; learning rate: the best of";
    for (double lr : o.lrs) {
      md << " " << fmt_num(lr, 3);
    }
    md << " for each configuration, by final held-out accuracy at "
       << fmt_num(o.sweep_budget_s > 0 ? o.sweep_budget_s : o.budget_s, 0) << " s and seed "
       << (o.seeds.empty() ? 0 : o.seeds.front());
  } else {
    md << "; learning rate " << fmt_num(o.lr, 3) << " for every run";
  }
  md << ". Main runs: seeds";
  for (int64_t s : o.seeds) {
    md << " " << s;
  }
  md << ", mean (range); every comparison is seed by seed.";
  for (const std::string& set : c.sets) {
    if (set.rfind("loss_type=", 0) == 0 || set.rfind("scale=", 0) == 0 ||
        set.rfind("margin", 0) == 0) {
      md << " " << set << " for every run.";
    }
  }
  md << "\n\n";
}

// The fitted schedules, and held-out accuracy against training time.
void md_budget_tables(std::ostream& md, const AccuracyOptions& o, const std::vector<RunKind>& kinds,
                      const ByConfig& by_kind) {
  md << "\nSchedules fitted to the budget (per configuration; the probe's speed):\n\n"
        "| run | lr | steps | probe steps/s | head share of a step | minutes of training (mean) "
        "|\n|---|---|---|---|---|---|\n";
  for (const RunKind& kind : kinds) {
    const auto it = by_kind.find(kind.label);
    if (it == by_kind.end()) {
      continue;
    }
    const Run& r = *it->second.front();
    md << "| " << kind.label << " | " << fmt_num(r.lr, 3) << " | " << r.schedule_steps << " | "
       << fmt_num(r.probe_rate, 2) << " | " << fmt_num(r.head_share, 2) << " | "
       << over(it->second, [](const Run& x) { return x.last().train_s / 60; }).text(1) << " |\n";
  }
  md << "\nHeld-out accuracy against training time (mean over seeds, at each evaluation: "
        "accuracy @ minutes):\n\n";
  std::vector<std::string> columns;
  for (int64_t k = 1; k <= o.evals; ++k) {
    columns.push_back(std::to_string(k) + "/" + std::to_string(o.evals));
  }
  md_table(md, columns, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
    auto acc = [i](const Run& r) { return i < r.evals.size() ? r.evals[i].accuracy() : NAN; };
    auto min = [i](const Run& r) { return i < r.evals.size() ? r.evals[i].train_s / 60 : NAN; };
    return fmt_num(over(rs, acc).mean, 4) + " @ " + fmt_num(over(rs, min).mean, 1);
  });
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
  if (at != std::string::npos && !rest.empty() && rest.back() == 'x') {
    k.pool_multiple = parse_multiple(spec, rest.substr(at + 1, rest.size() - at - 2));
  } else if (at != std::string::npos) {
    k.pool_percent = parse_percent(spec, rest.substr(at + 1));
  }
  const MethodInfo* method = find_method(k.method);
  if (method == nullptr || !method->has_head) {
    throw ConfigError("--runs " + spec + ": unknown method '" + k.method + "' (" +
                      method_list(false) + "[@P%|@Kx][:instance|identity])");
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

int64_t global_gallery_rows(int64_t batch_per_rank, int ranks) {
  return (batch_per_rank + batch_per_rank / 2) * ranks;
}

int64_t pool_size(const RunKind& k, int64_t classes, int64_t batch_per_rank, int ranks) {
  if (k.pool_multiple > 0) {
    return static_cast<int64_t>(std::llround(
        k.pool_multiple * static_cast<double>(global_gallery_rows(batch_per_rank, ranks))));
  }
  if (k.pool_percent > 0) {
    return static_cast<int64_t>(
        std::llround(k.pool_percent / 100.0 * static_cast<double>(classes)));
  }
  return 0;
}

std::string run_folder(const RunKind& k) {
  std::string id = k.method;
  if (k.pool_percent > 0) {
    std::ostringstream o;
    o << k.pool_percent;
    id += "-" + o.str() + "pct";
  }
  if (k.pool_multiple > 0) {
    std::ostringstream o;
    o << k.pool_multiple;
    id += "-" + o.str() + "x";
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
  if (o.rec == "synthetic") {
    sets.push_back("num_classes=" + std::to_string(o.classes));
    sets.push_back("synthetic_difficulty=" + fmt_num(o.difficulty, 3));
  } else {
    // A packed dataset: its identities (num_classes 0), its held-out set files, no flips where
    // its dataset.json forbids them (the glyph set's: --set flip=false).
    sets.push_back("rec=" + o.rec);
    sets.push_back("num_classes=0");
    std::string targets;
    for (const std::string& t : o.val_targets) {
      targets += (targets.empty() ? "" : ",") + t;
    }
    sets.push_back("val_targets=[" + targets + "]");
  }
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
  if (kind.pool_percent > 0 || kind.pool_multiple > 0) {
    const int64_t classes = o.rec == "synthetic" ? o.classes : dataset_classes(o.rec);
    sets.push_back("pool_size=" +
                   std::to_string(pool_size(kind, classes, o.common.batch, o.ranks)));
  }
  // Evaluated at the end of every epoch, and only then.
  sets.push_back("eval_every_epoch=true");
  sets.push_back("verbose=1000000000");
  sets.push_back("frequent=50");
  return sets;
}

double steps_per_second(const std::vector<Json>& records) {
  std::vector<metrics::Progress> windows;
  for (const auto& rec : records) {
    if (metrics::is_progress(rec)) {
      windows.push_back(metrics::progress_from_json(rec));
    }
  }
  if (windows.size() < 3) {
    return std::nan("");
  }
  // From the end of the first window (warm-up, first touch of memory) to the last.
  const metrics::Progress& a = windows.front();
  const metrics::Progress& b = windows.back();
  const double seconds = b.elapsed_s - a.elapsed_s;
  return seconds > 0 ? static_cast<double>(b.step - a.step) / seconds : std::nan("");
}

double head_share(const std::vector<Json>& records) {
  std::vector<double> shares;
  int windows = 0;
  for (const auto& rec : records) {
    if (metrics::is_progress(rec) && windows++ > 0) {
      const metrics::Progress p = metrics::progress_from_json(rec);
      if (p.step_ms() > 0) {
        shares.push_back(p.phase("head") / p.step_ms());
      }
    }
  }
  return median(shares);
}

int64_t fit_steps(double budget_s, double rate, int64_t min_steps) {
  if (!(rate > 0) || !(budget_s > 0)) {
    return min_steps;
  }
  return std::max<int64_t>(min_steps, static_cast<int64_t>(std::floor(budget_s * rate)));
}

std::vector<std::string> probe_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed,
                                    double lr) {
  std::vector<std::string> sets = run_sets(o, kind, seed);
  sets.push_back("lr=" + fmt_num(lr, 6));
  sets.push_back("max_steps=" + std::to_string(o.probe_steps));
  sets.push_back("frequent=" + std::to_string(std::max<int64_t>(1, o.probe_steps / 6)));
  sets.push_back("eval_every_epoch=false");
  sets.push_back("val_pairs=0");
  sets.push_back("val_identities=0");
  sets.push_back("val_targets=[]");
  return sets;
}

std::vector<std::string> budget_sets(const AccuracyOptions& o, const RunKind& kind, int64_t seed,
                                     double lr, int64_t steps) {
  std::vector<std::string> sets = run_sets(o, kind, seed);
  const int64_t every = std::max<int64_t>(1, (steps + o.evals - 1) / std::max<int64_t>(o.evals, 1));
  sets.push_back("lr=" + fmt_num(lr, 6));
  sets.push_back("schedule_steps=" + std::to_string(steps));
  sets.push_back("eval_every_epoch=false");
  sets.push_back("verbose=" + std::to_string(every));
  sets.push_back("frequent=" + std::to_string(std::min<int64_t>(50, every)));
  return sets;
}

Paired paired(const std::vector<const Run*>& a, const std::vector<const Run*>& b,
              double (*f)(const Run&)) {
  Paired p;
  for (const Run* ra : a) {
    for (const Run* rb : b) {
      if (ra->seed == rb->seed) {
        const double d = f(*ra) - f(*rb);
        p.by_seed.emplace_back(ra->seed, d);
        p.diff.add(d);
      }
    }
  }
  return p;
}

std::string paired_text(const Paired& p) {
  if (p.by_seed.empty()) {
    return "- (no seed in common)";
  }
  std::string s = points(p.diff.mean) + " (seed";
  for (size_t i = 0; i < p.by_seed.size(); ++i) {
    s += (i == 0 ? " " : ", ") + std::to_string(p.by_seed[i].first) + ": " +
         points(p.by_seed[i].second);
  }
  return s + ")";
}

double best_lr(const std::vector<const Run*>& sweep) {
  double best = std::nan("");
  double best_acc = -1;
  for (const Run* r : sweep) {
    if (!r->ok()) {
      continue;
    }
    const double acc = r->last().accuracy();
    if (acc > best_acc || (acc == best_acc && r->lr < best)) {
      best_acc = acc;
      best = r->lr;
    }
  }
  return best;
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
      // The long-tail breakdown (procedural, or a long-tail set file) has buckets; the held-out
      // pairs are the procedural ones where there are, else the first verification set file.
      if (rec.contains("buckets")) {
        e.longtail = rec;
      } else if (json_string(rec, "target") == "heldout" || !e.heldout.is_object()) {
        e.heldout = rec;
      }
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
  j["lr"] = run.lr;
  j["schedule_steps"] = run.schedule_steps;
  j["probe_steps_per_s"] = run.probe_rate;
  j["probe_head_share"] = run.head_share;
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
  setup["rec"] = o.rec;
  setup["val_targets"] = o.val_targets;
  setup["budget_s"] = o.budget_s;
  setup["evals"] = o.evals;
  setup["probe_steps"] = o.probe_steps;
  setup["lrs"] = o.lrs;
  setup["sweep_budget_s"] = o.sweep_budget_s;
  setup["sets"] = c.sets;
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
  if (o.budget_s > 0) {
    md_budget_setup(md, o, machine, version, git);
  } else {
    md_setup(md, o, machine, version, git);
  }
  md_main_table(md, kinds, by_kind);
  md << "\nLong-tail buckets at the end (identities by training-image count; verification "
        "accuracy / identification top-1, mean over seeds):\n\n";
  md_table(md, buckets, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
    const std::string& b = buckets[i];
    return fmt_num(over(rs, [&](const Run& r) { return r.last().bucket(b, "accuracy"); }).mean, 3) +
           " / " +
           fmt_num(over(rs, [&](const Run& r) { return r.last().bucket(b, "top1"); }).mean, 3);
  });
  if (o.budget_s > 0) {
    md_budget_tables(md, o, kinds, by_kind);
  } else {
    md << "\nHeld-out accuracy after each epoch (mean over seeds):\n\n";
    std::vector<std::string> epochs;
    for (int64_t e = 1; e <= o.epochs; ++e) {
      epochs.push_back(std::to_string(e));
    }
    md_table(md, epochs, kinds, by_kind, [&](const std::vector<const Run*>& rs, size_t i) {
      return fmt_num(over(rs, at_epoch(static_cast<int64_t>(i) + 1)).mean, 4);
    });
  }
  // The figures the questions need, computed: each configuration against FC and the dual
  // loader's rarest bucket, seed by seed.
  md << "\nFigures for the questions (points of held-out accuracy, differences over the seeds "
        "both sides ran):\n\n";
  md_against_fc(md, kinds, by_kind);
  md_ablations(md, kinds, by_kind);
  return md.str();
}

}  // namespace ffc::bench
