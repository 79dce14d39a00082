#pragma once
// `ffc plan --cluster`: a job's step time, images/s and memory per GPU on named hardware
// (docs/plan.md). The backbone's and the head's FLOPs at achievable fractions of the GPU's matmul
// rates, the optimiser's memory traffic, each collective with its bytes over the cluster's links
// (overlapped or not, as the implementation runs it), the memory per GPU against the GPU's.
// Presets of GPUs and networks: inputs/clusters.json, built in.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "common/methods.h"
#include "plan/plan.h"

namespace ffc::plan {

// The model's constants (docs/plan.md says why each has its value).
// Share of the tensor-core rate a ResNet-style backbone's forward and backward reach under
// mixed precision, and of the FP32 rate in full precision.
constexpr double kBackboneMixedFraction = 0.20;
constexpr double kBackboneFp32Fraction = 0.75;
// Share of the head precision's matmul rate the classification head reaches: its three GEMMs with
// the passes over the logits (margin, softmax, gradient) that run at memory speed between them.
constexpr double kHeadFraction = 0.26;
// Share of the network's line rate NCCL reaches between nodes.
constexpr double kNetworkFraction = 0.9;
// Gradient buckets of the data-parallel all-reduce (ffc's grad_bucket_mb, DDP's bucket_cap_mb).
constexpr double kBucketBytes = static_cast<double>(kDefaultGradBucketMiB) * (1 << 20);
// A predicted memory within this share of the GPU's either way is "tight": the model cannot say.
constexpr double kTightShare = 0.05;

struct ClusterSpec {
  std::string gpu;  // preset key
  std::string gpu_name;
  double memory_gib = 0;
  double tflops_fp16 = 0;
  double tflops_bf16 = 0;
  double tflops_tf32 = 0;
  double tflops_fp32 = 0;
  double memory_gbs = 0;  // memory bandwidth, GB/s
  int gpus_per_node = 8;
  int nodes = 1;
  double bus_gbs = 0;  // all-reduce bus bandwidth within a node, GB/s
  double latency_us = 0;
  std::string net = "none";
  std::string net_name;
  double net_gbits = 0;  // per port
  int nics = 0;          // ports per node; 0: one per GPU
  double net_latency_us = 0;
  std::string precision = "mixed";  // the backbone's: mixed or fp32
  int gpus() const { return gpus_per_node * nodes; }
};

// The built-in presets (inputs/clusters.json), or those of `file`.
nlohmann::ordered_json cluster_presets(const std::string& file = "");
// "GPU[,key=value...]": a GPU preset, then overrides and the job's shape (nodes, gpus_per_node,
// net, nics, precision, or any number of the preset). Throws ConfigError naming the bad part.
ClusterSpec parse_cluster(const std::string& spec, const nlohmann::ordered_json& presets);
// `ffc plan --cluster list`.
std::string cluster_list_text(const nlohmann::ordered_json& presets);

struct Collective {
  std::string name;
  double bytes = 0;
  double seconds = 0;
  bool overlapped = false;  // runs under the backward (data-parallel buckets, DDP)
};

struct StepPlan {
  std::string method;
  std::string note;  // why a method has no row (an implementation without that head)
  Plan memory;       // per GPU, with the items
  double capacity_bytes = 0;
  bool fits = false;
  bool tight = false;
  double backbone_s = 0;
  double head_s = 0;
  double update_s = 0;
  double comm_s = 0;          // every collective
  double comm_exposed_s = 0;  // what the step waits for
  double step_s = 0;
  double images_per_s = 0;  // FFC: probe and gallery images, as the authors count
  double probe_images_per_s = 0;
  double hours_per_epoch = 0;  // with images > 0
  std::string bottleneck;
  std::vector<Collective> collectives;
};

struct StepInput {
  PlanInput plan;            // method, N, D, batch per GPU, network, ...; ranks: set from GPUs
  std::string impl = "ffc";  // ffc, or insightface: arcface_torch's partial_fc.py (v1, 2021)
  int64_t images = 0;        // training images, for hours per epoch
};

StepPlan plan_step(const StepInput& in, const ClusterSpec& cluster);
std::string step_plans_text(const std::vector<StepPlan>& plans, const StepInput& in,
                            const ClusterSpec& cluster);
std::string step_plans_json(const std::vector<StepPlan>& plans, const StepInput& in,
                            const ClusterSpec& cluster);

}  // namespace ffc::plan
