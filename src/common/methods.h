#pragma once
// The training methods, one row each: the one place that says which methods exist and the facts
// about them that the configuration, the planner, the benchmarks, the help texts and the commands
// read. A method's code lives in its layer (head/, train/); what is decided about it by name
// lives here. Torch-free.

#include <cstdint>
#include <string>
#include <vector>

namespace ffc {

// How a method's batches are drawn (data/dataset.cpp builds the planner).
enum class MethodSampler {
  kInstance,      // uniform over images (FC, Partial FC, the backbone alone)
  kDual,          // FFC's two loaders: over images (probe) and over identities (gallery)
  kKPerIdentity,  // Virtual FC: images_per_identity images of each identity in a batch
};

struct MethodInfo {
  const char* name;          // the config's `method`, `--method`, `--runs`
  const char* title;         // in help texts and reports: "model-parallel FC"
  const char* default_loss;  // what loss_type auto means for it
  bool has_head;             // false for the backbone alone (benchmarks' ceiling)
  MethodSampler sampler;
};

// Every method, in the order help texts and reports list them (the backbone last).
const std::vector<MethodInfo>& methods();

// The row of `name`, nullptr when there is none.
const MethodInfo* find_method(const std::string& name);

// The names in order; `with_backbone` false: the methods with a classification head.
std::vector<std::string> method_names(bool with_backbone = true);

// "fc, pfc, vfc, ffc or backbone": the names (with `titles` the titles) joined by `sep`, the last
// two by `last`, for messages and help texts.
std::string method_list(bool with_backbone = true, const std::string& last = " or ",
                        bool titles = false, const std::string& sep = ", ");

// FFC's pool when pool_size is 0: 1% of the identities (the authors' README), at least the global
// gallery batch (`global_gallery_rows`, all ranks together), so that one batch always fits.
int64_t default_pool_size(int64_t num_classes, int64_t global_gallery_rows);

// The data-parallel gradient all-reduce's bucket, in MiB (config grad_bucket_mb's default, the
// planner's assumption).
constexpr int64_t kDefaultGradBucketMiB = 25;

}  // namespace ffc
