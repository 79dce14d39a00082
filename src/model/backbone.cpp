#include "model/backbone.h"

#include <ATen/autocast_mode.h>

#include <atomic>

#include "common/error.h"
#include "common/logging.h"

namespace ffc::model {

Backbone::Backbone(std::string module_name, BackboneSpec spec)
    : torch::nn::Module(std::move(module_name)), spec_(std::move(spec)) {}

Backbone::~Backbone() = default;

void Backbone::check_input(const at::Tensor& images) const {
  const int64_t s = spec_.image_size;
  const bool ok = images.defined() && images.dim() == 4 && images.size(1) == 3 &&
                  images.size(2) == s && images.size(3) == s && images.scalar_type() == at::kFloat;
  if (!ok) {
    const std::string got = images.defined() ? std::string(c10::str(images.sizes())) + " " +
                                                   std::string(c10::toString(images.scalar_type()))
                                             : std::string("an undefined tensor");
    throw Error("network " + spec_.name + " takes float32 images of shape [B, 3, " +
                std::to_string(s) + ", " + std::to_string(s) + "] (NCHW), got " + got);
  }
}

Backbone::TrunkAutocast::TrunkAutocast(const BackboneSpec& spec, const at::Tensor& input) {
  if (!spec.fp16) {
    return;
  }
  if (!input.is_cuda()) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      spdlog::warn(
          "fp16 is set but the backbone runs on {}: mixed precision applies to CUDA only, the "
          "backbone runs in float32",
          input.device().str());
    }
    return;
  }
  // What torch.autocast("cuda", dtype) does on entry (and undoes on exit).
  previous_enabled_ = at::autocast::is_enabled();
  previous_dtype_ = static_cast<int>(at::autocast::get_autocast_gpu_dtype());
  at::autocast::set_enabled(true);
  at::autocast::set_autocast_gpu_dtype(spec.amp_dtype == "bfloat16" ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
  active_ = true;
}

Backbone::TrunkAutocast::~TrunkAutocast() {
  if (!active_) {
    return;
  }
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_enabled(previous_enabled_);
  at::autocast::set_autocast_gpu_dtype(static_cast<at::ScalarType>(previous_dtype_));
}

}  // namespace ffc::model
