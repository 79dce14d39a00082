#include "model/backbone.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <atomic>

#include "comm/device.h"
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

at::ScalarType autocast_dtype(const BackboneSpec& spec, at::Device device) {
  std::string amp = spec.amp_dtype;
  if (amp == "auto") {
    amp = spec.fp16
              ? "float16"
              : (!device.is_cpu() && comm::supports_bfloat16(device) ? "bfloat16" : "float32");
  }
  if (amp == "bfloat16") {
    return at::kBFloat16;
  }
  if (amp == "float16") {
    if (device.is_cpu()) {
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) {
        spdlog::warn(
            "mixed precision in float16 applies to CUDA devices only: the backbone runs in "
            "float32 on {} (amp_dtype bfloat16 has CPU autocast)",
            device.str());
      }
      return at::kFloat;
    }
    return at::kHalf;
  }
  return at::kFloat;
}

// LibTorch 2.4 replaced the per-device autocast calls (is_enabled, set_enabled,
// get/set_autocast_gpu_dtype, is/set_cpu_enabled, get/set_autocast_cpu_dtype) by ones taking the
// device type, and deprecates the old ones; -Werror builds need the right set for each version.
namespace {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(bool cuda) {
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
}
void set_autocast_enabled(bool cuda, bool on) {
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
}
at::ScalarType autocast_type(bool cuda) {
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
}
void set_autocast_type(bool cuda, at::ScalarType t) {
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t);
}
#else
bool autocast_enabled(bool cuda) {
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set_autocast_enabled(bool cuda, bool on) {
  cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on);
}
at::ScalarType autocast_type(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_type(bool cuda, at::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
#endif
}  // namespace

Backbone::TrunkAutocast::TrunkAutocast(const BackboneSpec& spec, const at::Tensor& input) {
  const at::ScalarType dtype = autocast_dtype(spec, input.device());
  if (dtype == at::kFloat) {
    return;
  }
  // What torch.autocast(device, dtype) does on entry (and undoes on exit).
  cuda_ = input.is_cuda();
  previous_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = static_cast<int>(autocast_type(cuda_));
  set_autocast_enabled(cuda_, true);
  set_autocast_type(cuda_, dtype);
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
  set_autocast_enabled(cuda_, previous_enabled_);
  set_autocast_type(cuda_, static_cast<at::ScalarType>(previous_dtype_));
}

}  // namespace ffc::model
