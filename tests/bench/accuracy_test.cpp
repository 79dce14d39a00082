// `ffc bench accuracy`'s pieces on hand-made records: what a run is told, what is collected from
// its metrics.jsonl, the statistics over seeds, and the report's tables and figures.

#include "bench/accuracy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench/stats.h"
#include "common/error.h"
#include "common/metrics_record.h"

namespace ffc::bench {
namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(BenchAccuracy, ParsesRunEntries) {
  const RunKind k = parse_run("ffc@10%:instance");
  EXPECT_EQ(k.method, "ffc");
  EXPECT_EQ(k.loader, "instance");
  EXPECT_DOUBLE_EQ(k.pool_percent, 10);
  EXPECT_TRUE(k.ablation());
  EXPECT_EQ(run_folder(k), "ffc-10pct-instance");
  EXPECT_EQ(run_folder(parse_run("ffc@2.5%")), "ffc-2.5pct");
  EXPECT_EQ(run_folder(parse_run("pfc")), "pfc");
  EXPECT_FALSE(parse_run("fc").ablation());
}

TEST(BenchAccuracy, RefusesBadEntriesByName) {
  auto message = [](const std::string& spec) {
    try {
      parse_run(spec);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("xfc").find("unknown method 'xfc' (fc, pfc, vfc or ffc"), std::string::npos);
  EXPECT_NE(message("backbone").find("unknown method 'backbone'"), std::string::npos);
  EXPECT_NE(message("ffc@0%").find("share of N in (0, 100]%"), std::string::npos);
  EXPECT_NE(message("ffc@ten%").find("share of N"), std::string::npos);
  EXPECT_NE(message("ffc@150%").find("share of N"), std::string::npos);
  EXPECT_NE(message("fc@10%").find("for ffc only"), std::string::npos);
  EXPECT_NE(message("ffc:both2").find("loader 'both2'"), std::string::npos);
}

TEST(BenchAccuracy, OneScheduleForEveryRunAndThePoolFromItsShare) {
  AccuracyOptions o;
  o.classes = 600;
  o.epochs = 3;
  o.warmup_epochs = 1;
  o.lr = 0.05;
  const auto ffc = run_sets(o, parse_run("ffc@40%"), 7);
  const auto fc = run_sets(o, parse_run("fc"), 7);
  for (const auto* sets : {&ffc, &fc}) {
    EXPECT_TRUE(has(*sets, "seed=7"));
    EXPECT_TRUE(has(*sets, "num_epoch=3"));
    EXPECT_TRUE(has(*sets, "warmup_epoch=1"));
    EXPECT_TRUE(has(*sets, "epoch_basis=images"));
    EXPECT_TRUE(has(*sets, "lr=0.050000"));
    EXPECT_TRUE(has(*sets, "eval_every_epoch=true"));
  }
  EXPECT_TRUE(has(ffc, "pool_size=240"));
  EXPECT_TRUE(has(ffc, "method=ffc"));
  EXPECT_FALSE(std::any_of(fc.begin(), fc.end(),
                           [](const std::string& s) { return s.rfind("pool_size=", 0) == 0; }));
  EXPECT_EQ(schedule_text(o),
            "SGD, momentum 0.9, weight decay 5e-4, lr 0.050 warmed up linearly over 1 epoch(s), "
            "then decayed linearly (poly, power 1) to 0 at epoch 3");
}

// The records a run of `accuracies` (one evaluation per epoch) writes: progress windows with
// rates and memory, and per epoch a held-out and a long-tail record.
std::vector<Json> records(const std::vector<double>& accuracies, double rare_top1) {
  std::vector<Json> out;
  for (size_t e = 0; e < accuracies.size(); ++e) {
    metrics::Progress p;
    p.step = static_cast<int64_t>(10 * (e + 1));
    p.images_per_s = 100.0 * static_cast<double>(e + 1);  // the first window is left out
    p.probe_images_per_s = 50.0 * static_cast<double>(e + 1);
    p.peak_rss_mib = 300.0 + static_cast<double>(e);
    p.lr = 0.1 / static_cast<double>(e + 1);
    p.phase_ms = {{"fwd", 1.0}, {"head", 2.0}};
    out.push_back(metrics::to_json(p));
    Json held = metrics::eval_record(p.step, {{"target", "heldout"}, {"accuracy", accuracies[e]}});
    metrics::add_eval_context(held, "probe", static_cast<double>(e + 1), 60.0 * (e + 1));
    out.push_back(held);
    Json buckets = Json::array();
    buckets.push_back({{"bucket", "1"}, {"accuracy", 0.7}, {"top1", rare_top1}});
    buckets.push_back({{"bucket", "unseen"}, {"accuracy", 0.8}});
    Json tail = metrics::eval_record(p.step, {{"target", "longtail"}, {"buckets", buckets}});
    metrics::add_eval_context(tail, "probe", static_cast<double>(e + 1), 60.0 * (e + 1));
    out.push_back(tail);
  }
  return out;
}

Run collected(const std::string& spec, int64_t seed, const std::vector<double>& acc,
              double rare_top1 = 0.5) {
  Run r;
  r.kind = parse_run(spec);
  r.seed = seed;
  r.id = run_folder(r.kind) + "-s" + std::to_string(seed);
  r.status = "ok";
  collect(r, records(acc, rare_top1), 0.005);
  return r;
}

TEST(BenchAccuracy, CollectsEvaluationsRatesAndConvergence) {
  const bench::Run r = collected("fc", 1, {0.80, 0.90, 0.903});
  ASSERT_EQ(r.evals.size(), 3u);
  EXPECT_DOUBLE_EQ(r.last().accuracy(), 0.903);
  EXPECT_DOUBLE_EQ(r.last().bucket("1", "top1"), 0.5);
  EXPECT_TRUE(std::isnan(r.last().bucket("2-5", "top1")));
  EXPECT_DOUBLE_EQ(r.images_per_s, 250);  // median of 200 and 300: the first window warms up
  EXPECT_DOUBLE_EQ(r.probe_images_per_s, 125);
  EXPECT_DOUBLE_EQ(r.peak_rss_mib, 302);
  EXPECT_NEAR(r.final_lr, 0.1 / 3, 1e-12);
  EXPECT_TRUE(r.converged);  // moved 0.003 < 0.005
  EXPECT_NEAR(r.moved, 0.003, 1e-12);
  EXPECT_DOUBLE_EQ(r.epoch_99, 2);  // 0.90 >= 0.99 x 0.903
  EXPECT_DOUBLE_EQ(r.train_s_99, 120);
  const bench::Run slow = collected("fc", 2, {0.5, 0.7, 0.8});
  EXPECT_FALSE(slow.converged);
  EXPECT_DOUBLE_EQ(slow.epoch_99, 3);
}

TEST(BenchAccuracy, StatisticsOverSeeds) {
  Stat s;
  EXPECT_EQ(s.text(2), "-");
  s.add(0.5);
  s.add(std::nan(""));  // left out
  EXPECT_EQ(s.text(2), "0.50");
  s.add(0.7);
  EXPECT_EQ(s.n, 2);
  EXPECT_DOUBLE_EQ(s.mean, 0.6);
  EXPECT_NEAR(s.range(), 0.2, 1e-12);
  EXPECT_EQ(s.text(2), "0.60 (0.50–0.70)");
  EXPECT_EQ(points(0.0125), "+1.25");
  EXPECT_EQ(points(-0.02), "-2.00");
  EXPECT_DOUBLE_EQ(median({3, 1, 2, 10}), 2.5);
  EXPECT_TRUE(std::isnan(median({})));
}

TEST(BenchAccuracy, CsvRowsAndJson) {
  const bench::Run r = collected("ffc@10%", 2048, {0.8, 0.9});
  const std::string rows = csv_rows(r);
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 2);
  EXPECT_EQ(rows.substr(0, rows.find('\n')),
            "ffc@10%,2048,ffc-10pct-s2048,1.000,10,60.0,0.80000,-,-,-,-,0.80000,0.70000,0.50000");
  const std::string header = accuracy_csv_header();
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), 13);
  const Json j = run_json(r);
  EXPECT_EQ(j["config"], "ffc@10%");
  EXPECT_EQ(j["evals"].size(), 2u);
  EXPECT_EQ(j["evals"][1]["heldout"]["accuracy"], 0.9);
}

TEST(BenchAccuracy, ReportTablesAndFigures) {
  AccuracyOptions o;
  o.epochs = 2;
  o.seeds = {1, 2};
  o.ablation_seeds = {1};
  std::vector<RunKind> kinds = {parse_run("fc"), parse_run("ffc@10%"),
                                parse_run("ffc@10%:instance"), parse_run("pfc")};
  std::vector<bench::Run> runs = {
      collected("fc", 1, {0.80, 0.90}), collected("fc", 2, {0.82, 0.92}),
      collected("ffc@10%", 1, {0.85, 0.90}, 0.6), collected("ffc@10%", 2, {0.85, 0.91}, 0.6),
      collected("ffc@10%:instance", 1, {0.84, 0.90}, 0.4)};
  bench::Run failed = collected("pfc", 1, {0.5, 0.6});
  failed.status = "failed (exit 1, pfc-s1.log)";
  runs.push_back(failed);
  const std::string md = markdown_report(o, kinds, runs, "a machine", "0.1.0", "abc");
  EXPECT_NE(md.find("Machine: a machine. ffc 0.1.0 (git abc)."), std::string::npos);
  EXPECT_NE(md.find("| fc | 0.9100 (0.9000–0.9200) | 0.8100 (0.8000–0.8200) |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| pfc | failed |"), std::string::npos);
  // FFC against FC seed by seed: 0.90 - 0.90 and 0.91 - 0.92; at the first evaluation 0.85 -
  // 0.80 and 0.85 - 0.82.
  EXPECT_NE(md.find("- ffc@10% against fc, seed by seed: -0.50 (seed 1: +0.00, 2: -1.00) points "
                    "at the end: within 1 point; the seeds' differences span 1.00 points (the "
                    "seeds disagree in sign); at the first evaluation: +4.00 (seed 1: +5.00, 2: "
                    "+3.00)."),
            std::string::npos)
      << md;
  // The dual loader against the identity-less one, over the ablation's seed only (seed 1; the
  // dual loader's seed 2 is not compared): rarest top-1 0.6 - 0.4.
  EXPECT_NE(
      md.find("- ffc@10% (both loaders) against ffc@10%:instance, identities with one "
              "training image, seed by seed: top-1 +20.00 (seed 1: +20.00) points at the end"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("| run | 1 | unseen |"), std::string::npos) << md;
  EXPECT_NE(md.find("| run | 1 | 2 |"), std::string::npos) << md;
}

TEST(BenchAccuracy, PoolsAsMultiplesOfTheGalleryBatch) {
  const RunKind k = parse_run("ffc@50x");
  EXPECT_DOUBLE_EQ(k.pool_multiple, 50);
  EXPECT_EQ(run_folder(k), "ffc-50x");
  EXPECT_EQ(global_gallery_rows(32, 2), 96);  // 32 + 16 per rank
  EXPECT_EQ(pool_size(k, 20000, 32, 2), 4800);
  EXPECT_EQ(pool_size(parse_run("ffc@10%"), 20000, 32, 2), 2000);
  EXPECT_EQ(pool_size(parse_run("ffc"), 20000, 32, 2), 0);
  EXPECT_THROW(parse_run("ffc@0.5x"), ConfigError);
  EXPECT_THROW(parse_run("ffc@manyx"), ConfigError);
}

TEST(BenchAccuracy, SchedulesFittedToTheBudget) {
  // Probe windows every 5 steps, the first ending at 1.0 s (warm-up), then 2 steps per second.
  std::vector<Json> probe;
  for (int i = 1; i <= 4; ++i) {
    metrics::Progress p;
    p.step = 5 * i;
    p.elapsed_s = i == 1 ? 1.0 : 1.0 + 2.5 * (i - 1);
    p.images_per_s = 1;
    probe.push_back(metrics::to_json(p));
  }
  EXPECT_DOUBLE_EQ(steps_per_second(probe), 2.0);
  EXPECT_TRUE(std::isnan(head_share(probe)));  // no phases
  metrics::Progress timed;
  timed.images_per_s = 1;
  timed.phase_ms = {{"fwd", 3.0}, {"head", 1.0}};
  EXPECT_DOUBLE_EQ(head_share({metrics::to_json(timed), metrics::to_json(timed)}), 0.25);
  EXPECT_TRUE(std::isnan(steps_per_second({probe[0], probe[1]})));
  EXPECT_EQ(fit_steps(60, 2.0), 120);
  EXPECT_EQ(fit_steps(1, 2.0), 10);  // at least 10 steps
  EXPECT_EQ(fit_steps(60, std::nan("")), 10);
  AccuracyOptions o;
  o.evals = 4;
  o.probe_steps = 30;
  const auto sets = budget_sets(o, parse_run("fc"), 3, 0.2, 120);
  EXPECT_TRUE(has(sets, "schedule_steps=120"));
  EXPECT_TRUE(has(sets, "verbose=30"));  // 4 evaluations
  EXPECT_TRUE(has(sets, "eval_every_epoch=false"));
  EXPECT_TRUE(has(sets, "lr=0.200000"));
  EXPECT_EQ(sets.back(), "frequent=30");
  const auto probe_run = probe_sets(o, parse_run("fc"), 3, 0.2);
  EXPECT_TRUE(has(probe_run, "max_steps=30"));
  EXPECT_TRUE(has(probe_run, "val_pairs=0"));
  // A packed dataset: its identities and set files, no procedural ones.
  o.rec = "/data/glyphs";
  o.val_targets = {"/data/glyphs/heldout.h5", "/data/glyphs/longtail.h5"};
  const auto packed = run_sets(o, parse_run("fc"), 3);
  EXPECT_TRUE(has(packed, "rec=/data/glyphs"));
  EXPECT_TRUE(has(packed, "num_classes=0"));
  EXPECT_TRUE(has(packed, "val_targets=[/data/glyphs/heldout.h5,/data/glyphs/longtail.h5]"));
}

TEST(BenchAccuracy, SameSeedsAndTheBestLearningRate) {
  const bench::Run a1 = collected("ffc", 1, {0.5, 0.8});
  const bench::Run a2 = collected("ffc", 2, {0.5, 0.9});
  const bench::Run b2 = collected("fc", 2, {0.5, 0.85});
  const bench::Run b3 = collected("fc", 3, {0.5, 0.7});
  const Paired p =
      paired({&a1, &a2}, {&b2, &b3}, [](const bench::Run& r) { return r.last().accuracy(); });
  ASSERT_EQ(p.by_seed.size(), 1u);  // seed 2 only
  EXPECT_EQ(p.by_seed[0].first, 2);
  EXPECT_NEAR(p.diff.mean, 0.05, 1e-12);
  EXPECT_EQ(paired_text(p), "+5.00 (seed 2: +5.00)");
  EXPECT_EQ(paired_text(Paired{}), "- (no seed in common)");
  bench::Run lo = collected("fc", 1, {0.5, 0.8});
  lo.lr = 0.05;
  bench::Run mid = collected("fc", 1, {0.5, 0.9});
  mid.lr = 0.1;
  bench::Run hi = collected("fc", 1, {0.5, 0.9});
  hi.lr = 0.2;
  bench::Run failed = collected("fc", 1, {0.5, 0.99});
  failed.lr = 0.4;
  failed.status = "failed (exit 1, x.log)";
  EXPECT_DOUBLE_EQ(best_lr({&hi, &lo, &mid, &failed}), 0.1);  // the tie goes to the lower
  EXPECT_TRUE(std::isnan(best_lr({&failed})));
}

TEST(BenchAccuracy, BudgetReport) {
  AccuracyOptions o;
  o.budget_s = 60;
  o.evals = 2;
  o.seeds = {1};
  o.common.sets = {"loss_type=am", "scale=32", "seed=5"};
  std::vector<RunKind> kinds = {parse_run("fc"), parse_run("ffc@50x")};
  std::vector<bench::Run> runs = {collected("fc", 1, {0.8, 0.9}),
                                  collected("ffc@50x", 1, {0.85, 0.91})};
  runs[0].lr = 0.1;
  runs[0].schedule_steps = 120;
  runs[0].probe_rate = 2;
  runs[1].lr = 0.2;
  runs[1].schedule_steps = 600;
  runs[1].probe_rate = 10;
  runs[1].head_share = 0.25;
  const std::string md = markdown_report(o, kinds, runs, "m", "v", "g");
  EXPECT_NE(md.find("Equal cost: every run trains for 60 s"), std::string::npos) << md;
  EXPECT_NE(md.find("loss_type=am for every run. scale=32 for every run."), std::string::npos)
      << md;
  EXPECT_NE(md.find("| ffc@50x | 0.200 | 600 | 10.00 | 0.25 | 2.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| run | 1/2 | 2/2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| fc | 0.8000 @ 1.0 | 0.9000 @ 2.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("- ffc@50x against fc, seed by seed: +1.00 (seed 1: +1.00)"), std::string::npos)
      << md;
}

}  // namespace
}  // namespace ffc::bench
