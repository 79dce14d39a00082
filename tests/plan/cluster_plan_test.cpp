// `ffc plan --cluster`: the step-time model against insightface's published speed table (8 x
// V100, r50, mixed precision; tests/plan/data/insightface_speed_v100.json), and the cluster
// spec's parsing.

#include "plan/cluster_plan.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "common/error.h"

namespace ffc::plan {
namespace {

using Json = nlohmann::json;

constexpr double kTolerance = 0.25;  // the bound on every published figure

Json published() {
  std::ifstream in(std::string(FFC_SOURCE_DIR) + "/tests/plan/data/insightface_speed_v100.json");
  return Json::parse(in);
}

TEST(ClusterPlan, PredictsInsightfaceSpeedTableOnV100) {
  const Json table = published();
  const Json& setup = table["setup"];
  const auto presets = cluster_presets();
  const ClusterSpec cluster = parse_cluster(setup["cluster"].get<std::string>(), presets);
  ASSERT_EQ(cluster.gpus(), 8);
  int checked = 0;
  int out_of_memory = 0;
  for (const auto& [column, spec] : table["columns"].items()) {
    if (!spec["modelled"].get<bool>()) {
      // A column left out says why (docs/plan.md quotes it).
      EXPECT_GT(spec["why"].get<std::string>().size(), 40u) << column;
      continue;
    }
    for (const auto& row : table["rows"]) {
      StepInput in;
      in.impl = "insightface";
      in.plan.method = spec["method"].get<std::string>();
      in.plan.num_classes = row["identities"].get<int64_t>();
      in.plan.embedding = setup["embedding"].get<int64_t>();
      in.plan.batch = setup["batch_per_gpu"].get<int64_t>();
      in.plan.network = setup["network"].get<std::string>();
      in.plan.sample_rate = spec.value("sample_rate", 1.0);
      const StepPlan p = plan_step(in, cluster);
      ASSERT_TRUE(p.note.empty()) << p.note;
      const double mib = p.memory.total_bytes / (1 << 20);
      const Json& speed = row["samples_per_s"][column];
      const Json& memory = row["memory_mb"][column];
      std::printf("%-15s N=%-9lld predicted %6.0f samples/s %7.0f MiB%s", column.c_str(),
                  static_cast<long long>(in.plan.num_classes), p.images_per_s, mib,
                  p.tight  ? " (tight)"
                  : p.fits ? ""
                           : " (does not fit)");
      if (speed.is_null()) {
        std::printf("   published: out of memory\n");
        EXPECT_FALSE(p.fits) << column << " N=" << in.plan.num_classes << ": " << mib << " MiB";
        EXPECT_FALSE(p.tight) << column << " N=" << in.plan.num_classes
                              << ": out of memory, but the model cannot tell";
        ++out_of_memory;
        continue;
      }
      const double s = speed.get<double>();
      const double mb = memory.get<double>();
      std::printf("   published %6.0f (%+5.1f%%) %7.0f (%+5.1f%%)\n", s,
                  100 * (p.images_per_s / s - 1), mb, 100 * (mib / mb - 1));
      EXPECT_NEAR(p.images_per_s / s, 1.0, kTolerance)
          << column << " N=" << in.plan.num_classes << ": " << p.images_per_s << " vs " << s;
      EXPECT_NEAR(mib / mb, 1.0, kTolerance)
          << column << " N=" << in.plan.num_classes << ": " << mib << " MiB vs " << mb;
      EXPECT_TRUE(p.fits || p.tight)
          << column << " N=" << in.plan.num_classes << ": ran, but predicted not to fit";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9);        // 3 model parallel + 6 Partial FC points
  EXPECT_EQ(out_of_memory, 3);  // model parallel at 8M, 16M, 29M
}

TEST(ClusterPlan, BottleneckMovesFromBackboneToHeadWithN) {
  const ClusterSpec cluster = parse_cluster("v100-32gb", cluster_presets());
  StepInput in;
  in.impl = "insightface";
  in.plan.method = "fc";
  in.plan.network = "r50";
  in.plan.embedding = 512;
  in.plan.batch = 128;
  in.plan.num_classes = 125000;
  EXPECT_EQ(plan_step(in, cluster).bottleneck, "backbone");
  in.plan.num_classes = 5500000;
  const StepPlan big = plan_step(in, cluster);
  EXPECT_EQ(big.bottleneck, "head");
  EXPECT_GT(big.head_s, big.backbone_s);
}

TEST(ClusterPlan, CommunicationAcrossNodesUsesTheNetwork) {
  const auto presets = cluster_presets();
  const ClusterSpec one = parse_cluster("h100-80gb", presets);
  const ClusterSpec eight = parse_cluster("h100-80gb,nodes=8,net=eth-10g,nics=1", presets);
  EXPECT_EQ(eight.gpus(), 64);
  StepInput in;
  in.plan.method = "backbone";
  in.plan.network = "r50";
  in.plan.embedding = 512;
  in.plan.batch = 128;
  in.plan.num_classes = 1000;
  const StepPlan a = plan_step(in, one);
  const StepPlan b = plan_step(in, eight);
  // The gradient all-reduce: 2 (P-1)/P of 4 B x parameters over the bus, or over one 10 GbE port.
  const double bytes = 4.0 * static_cast<double>(a.memory.backbone_parameters);
  ASSERT_EQ(a.collectives.size(), 1u);
  EXPECT_NEAR(a.collectives[0].seconds, 2.0 * 7 / 8 * bytes / 370e9 + 7 * 15e-6, 1e-6);
  EXPECT_NEAR(b.collectives[0].seconds,
              2.0 * 63 / 64 * bytes / (kNetworkFraction * 10e9 / 8) + 7 * 100e-6, 1e-6);
  // ffc all-reduces after the backward: all of it is exposed, and over 10 GbE it dominates.
  EXPECT_DOUBLE_EQ(b.comm_exposed_s, b.comm_s);
  EXPECT_EQ(b.bottleneck, "communication");
  EXPECT_EQ(a.bottleneck, "backbone");
  EXPECT_GT(a.images_per_s * 8, b.images_per_s);  // 8 nodes over 10 GbE: less than 8x
}

TEST(ClusterPlan, SpecOverridesAndErrors) {
  const auto presets = cluster_presets();
  const ClusterSpec c =
      parse_cluster("a100-80gb,nodes=4,net=ib-hdr,tflops_bf16=200,precision=fp32", presets);
  EXPECT_EQ(c.gpus(), 32);
  EXPECT_EQ(c.nics, 8);
  EXPECT_DOUBLE_EQ(c.tflops_bf16, 200);
  EXPECT_DOUBLE_EQ(c.net_gbits, 200);
  EXPECT_EQ(c.precision, "fp32");
  auto message = [&](const std::string& spec) {
    try {
      parse_cluster(spec, presets);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("b200").find("no GPU preset 'b200'"), std::string::npos);
  EXPECT_NE(message("h100-80gb,nodes=2").find("need a network"), std::string::npos);
  EXPECT_NE(message("h100-80gb,speed=3").find("unknown key 'speed'"), std::string::npos);
  EXPECT_NE(message("h100-80gb,nodes=x").find("not a number"), std::string::npos);
  EXPECT_NE(message("h100-80gb,net=myrinet").find("no such network"), std::string::npos);
  // Every preset value names its source.
  for (const auto& [k, g] : presets["gpus"].items()) {
    for (const auto& [field, v] : g.items()) {
      if (v.is_number() && v.get<double>() > 0) {
        EXPECT_TRUE(g["sources"].contains(field)) << k << "." << field;
      }
    }
  }
  EXPECT_NE(cluster_list_text(presets).find("h100-80gb"), std::string::npos);
}

}  // namespace
}  // namespace ffc::plan
