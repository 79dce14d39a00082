#pragma once
// Size and cost of a backbone, measured on a freshly built instance (docs/models.md):
//   parameters            elements of all parameters (insightface's count: includes the frozen
//                         features.weight of IResNet), and of those with requires_grad
//   flops_per_image       2 x the multiply-adds of the convolutions and fully connected layers in
//                         one forward of one image (BatchNorm, PReLU, additions not counted),
//                         counted by a forward pass at batch 1 in eval mode
//   activation_bytes_per_image
//                         bytes a training-mode forward keeps alive for the backward (the
//                         tensors the autograd graph saves, plus the output), per image: the
//                         CPU allocator's live bytes after a forward at batch 3 minus those after
//                         a forward at batch 2, float32 (fp16 would keep about half)

#include <cstdint>

#include "model/model.h"

namespace ffc::model {

struct ModelInfo {
  BackboneSpec spec;
  int64_t parameters = 0;
  int64_t trainable_parameters = 0;
  int64_t buffer_elements = 0;     // BatchNorm running statistics and counters
  int64_t state_dict_entries = 0;  // parameters + buffers, as PyTorch's state_dict()
  int64_t flops_per_image = 0;
  int64_t activation_bytes_per_image = 0;
};

// FLOPs of one image through `net` (as flops_per_image above), by one forward of one zero image
// on the net's device, in eval mode without autograd; the net's mode is restored and its
// parameters and buffers are not changed.
int64_t count_flops_per_image(Backbone& net);

// Builds the network on the CPU (without disturbing the caller's random generator), counts and
// runs the measuring passes. Throws ConfigError for a bad spec. Installs a counting CPU
// allocator for the duration of the memory measurement: do not run it concurrently with other
// LibTorch work in the process.
ModelInfo model_info(const BackboneSpec& spec);

}  // namespace ffc::model
