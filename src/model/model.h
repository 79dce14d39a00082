#pragma once
// The model layer's light interface: the spec a backbone is built from, the registry by
// insightface name, copies and FFC's gallery EMA. No LibTorch header: code that only builds,
// copies or exports backbones includes this; code that calls forward() includes model/backbone.h.
// docs/models.md describes every network.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ffc {
struct Config;
}

namespace ffc::model {

class Backbone;

struct BackboneSpec {
  std::string name = "r50";      // insightface name: r18, r34, r50, r100, r200, mbf, mbf_large, ...
  int64_t embedding_size = 512;  // D, insightface's num_features
  int64_t image_size = 112;      // input is image_size x image_size
  double dropout = 0;            // IResNet only (insightface's dropout before fc); 0 as insightface
  bool fp16 = false;             // insightface's switch: with amp_dtype auto, the trunk in float16
  // Mixed precision of the trunk: "auto" (bfloat16 on devices that have it, the CPU excepted;
  // float16 when fp16 is set), "float32" (none), "bfloat16" (also on the CPU) or "float16"
  // (CUDA only: ignored with a warning on the CPU). See autocast_dtype in model/backbone.h.
  std::string amp_dtype = "auto";
};

// Model keys of the configuration: network, embedding_size, image_size, fp16, amp_dtype.
// Throws ConfigError for an unknown network or an image size the network cannot take.
BackboneSpec spec_from_config(const Config& config);

// Every registered name, in documentation order.
std::vector<std::string> backbone_names();
// One line about the network (family, depth, width), for `ffc model list`.
std::string backbone_description(const std::string& name);
// The image size the network is meant for (112 for the insightface nets, 32 for tiny, 64 for
// small). Throws ConfigError for an unknown name.
int64_t natural_image_size(const std::string& name);
// Throws ConfigError naming the problem (unknown network listing the known ones, bad image size,
// embedding size, dropout or amp_dtype).
void check_spec(const BackboneSpec& spec);

// A freshly initialised backbone on the CPU in training mode, initialised as insightface does
// (the caller seeds: at::manual_seed / torch::manual_seed). Throws ConfigError as check_spec.
std::shared_ptr<Backbone> make_backbone(const BackboneSpec& spec);

// A deep copy: same structure, parameters, buffers, requires_grad flags, device and train/eval
// mode, sharing no storage with `source`. Does not draw from the random generator.
std::shared_ptr<Backbone> clone_backbone(const Backbone& source);

// FFC's gallery net G, built from the probe net P as the authors do: the parameters are copied
// from P and never receive gradients (requires_grad false); the buffers (BatchNorm running
// statistics) are NOT copied and stay at their initial values, because G runs in training mode
// and normalises with the statistics of its own batch. Same device and mode as P.
std::shared_ptr<Backbone> make_gallery(const Backbone& probe);

// theta_g <- alpha * theta_g + (1 - alpha) * theta_p over the parameters only (buffers are
// untouched), in place, without autograd and without allocating: one lerp_ per tensor. Throws if
// the two nets do not have the same parameters.
void ema_update(Backbone& gallery, const Backbone& probe, double alpha);

}  // namespace ffc::model
