// `ffc bench scaling`'s pieces on hand-made records: a point's plan and settings, the windows
// read from its metrics (the first left out, disturbed ones recognised), the row's figures and
// the report.

#include "bench/scaling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/metrics_record.h"

namespace ffc::bench {
namespace {

std::vector<nlohmann::ordered_json> windows(const std::vector<double>& rates) {
  std::vector<nlohmann::ordered_json> out;
  for (size_t i = 0; i < rates.size(); ++i) {
    metrics::Progress p;
    p.step = static_cast<int64_t>(4 * (i + 1));
    p.images_per_s = rates[i];
    p.probe_images_per_s = rates[i] / 2;
    p.phase_ms = {{"data", 1.0}, {"fwd", 3.0}, {"head", 6.0 + static_cast<double>(i)}};
    p.peak_rss_mib = 100.0 + 10.0 * static_cast<double>(i);
    out.push_back(metrics::to_json(p));
    out.push_back(metrics::eval_record(p.step, {{"target", "heldout"}}));  // not a window
  }
  return out;
}

TEST(BenchScaling, PointSettingsAndPlan) {
  ScalingOptions o;
  o.window = 2;
  o.repeats = 3;
  const auto sets = point_sets(o, "ffc", 2000, 64);
  auto has = [&](const std::string& s) {
    return std::find(sets.begin(), sets.end(), s) != sets.end();
  };
  EXPECT_TRUE(has("max_steps=8"));
  EXPECT_TRUE(has("frequent=2"));
  EXPECT_TRUE(has("pool_size=64"));
  EXPECT_TRUE(has("pool_random_init=true"));
  const auto fc = point_sets(o, "fc", 2000, 0);
  EXPECT_EQ(std::count(fc.begin(), fc.end(), "pool_random_init=true"), 0);
  const plan::PlanInput in = plan_input(o, "fc", 1000000, 2);
  EXPECT_EQ(in.num_classes, 1000000);
  EXPECT_EQ(in.ranks, 2);
  EXPECT_GT(in.memory_bytes, 0);
}

TEST(BenchScaling, WindowsLeaveOutTheFirstAndSeeDisturbance) {
  const Windows w = windows_from(windows({10, 100, 110, 90}), 0);
  ASSERT_EQ(w.all.size(), 3u);
  EXPECT_DOUBLE_EQ(w.all.front(), 100);
  EXPECT_DOUBLE_EQ(w.step_ms[0], 11);  // 1 + 3 + 7
  EXPECT_DOUBLE_EQ(w.head_ms[0], 7);
  EXPECT_DOUBLE_EQ(w.rss, 130);         // the first window's memory counts
  EXPECT_NEAR(w.spread(), 0.2, 1e-12);  // (110 - 90) / 100
  EXPECT_LT(w.spread(), kDisturbedSpread);
  EXPECT_GT(windows_from(windows({10, 50, 100, 60}), 0).spread(), kDisturbedSpread);
  EXPECT_DOUBLE_EQ(windows_from({}, 1).spread(), 0);
}

TEST(BenchScaling, RowFiguresAndReport) {
  plan::Plan plan;
  plan.head_flops_per_step = 7e9;  // 7 GFLOP in the 7 ms head: 1000 GFLOP/s
  Row row;
  row.name = "fc";
  row.classes = 2000;
  row.ranks = 1;
  row.num["plan_mib"] = 12;
  fill_row(row, windows_from(windows({10, 100, 110, 90}), 0), plan, 2000, "fc-2000-p1");
  EXPECT_EQ(row.status, "ok");
  EXPECT_DOUBLE_EQ(row.get("images_per_s"), 100);
  EXPECT_NEAR(row.get("head_share"), 8.0 / 12.0, 1e-12);  // medians: head 8, step 12
  EXPECT_NEAR(row.get("head_gflops_per_rank"), 7.0 / 0.008, 1e-6);
  EXPECT_NEAR(row.get("head_peak_fraction"), 7.0 / 0.008 / 2000, 1e-9);
  Row failed = row;
  fill_row(failed, windows_from({}, 3), plan, 2000, "fc-2000-p1");
  EXPECT_EQ(failed.status, "failed (exit 3, fc-2000-p1.log)");
  const std::string csv = csv_row(row);
  EXPECT_EQ(csv.rfind("fc,2000,1,ok,100.0,50.0,12.00,8.00,0.667,", 0), 0u) << csv;
  const std::string header = scaling_csv_header();
  EXPECT_EQ(std::count(csv.begin(), csv.end(), ','), std::count(header.begin(), header.end(), ','));
  Row nofit;
  nofit.name = "fc";
  nofit.classes = 1000000000;
  nofit.ranks = 2;
  nofit.status = "does not fit";
  nofit.num["plan_mib"] = 1e6;
  ScalingOptions o;
  const std::string md = markdown_report(o, {row, nofit}, "m", "v", "g");
  EXPECT_NE(md.find("| fc | 2000 | 1 | 100 (90–110) | 50 | 0.67 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| fc | 1000000000 | 2 | does not fit |"), std::string::npos) << md;
}

}  // namespace
}  // namespace ffc::bench
