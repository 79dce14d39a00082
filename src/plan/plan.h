#pragma once
// `ffc plan`: the memory and head FLOPs one rank needs for a method at a scale, from formulas
// (docs/plan.md), before anything is allocated. The scaling benchmark checks them against
// measured peak RSS.

#include <cstdint>
#include <string>
#include <vector>

namespace ffc::plan {

struct PlanInput {
  std::string method = "ffc";  // fc | pfc | vfc | ffc
  int64_t num_classes = 0;     // N
  int64_t embedding = 512;     // D
  int64_t batch = 128;         // per rank (FFC: identity items; each view holds 1.5x)
  int ranks = 1;               // P
  double sample_rate = 0.1;    // Partial FC
  int64_t pool = 0;            // FFC Q; 0: 1% of N, at least the global gallery batch
  int64_t vfc_rows = 1000;     // Virtual FC M
  int64_t images = 0;          // training images (a RecordIO set); 0: no dataset line
  bool ffc_rollback = true;
  bool ffc_sharded = true;
  std::string network = "r50";
  int64_t image_size = 0;   // 0: the network's natural size
  double memory_bytes = 0;  // per rank; 0: this machine's memory
};

struct PlanItem {
  std::string name;
  double bytes = 0;
  std::string formula;
};

struct Plan {
  PlanInput input;
  std::vector<PlanItem> items;
  double total_bytes = 0;
  double head_flops_per_step = 0;  // per rank
  double memory_bytes = 0;         // the budget compared against
  bool fits = false;
  int64_t pool = 0;  // FFC: the Q used
  int64_t backbone_parameters = 0;
  double backbone_flops_per_image = 0;    // forward
  double activation_bytes_per_image = 0;  // float32 tensors kept for the backward
};

// Throws ConfigError for an unknown method or network, or sizes that make no sense.
Plan make_plan(const PlanInput& input);
std::string plan_text(const Plan& plan);
std::string plan_json(const Plan& plan);
// Physical memory of this machine (MemTotal of /proc/meminfo), in bytes.
double machine_memory_bytes();

}  // namespace ffc::plan
