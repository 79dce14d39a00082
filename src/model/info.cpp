#include "model/info.h"

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <mutex>
#include <unordered_map>

#include "common/error.h"
#include "model/backbone.h"
#include "model/layers.h"
#include "model/state_dict.h"

namespace ffc::model {
namespace {

// LibTorch's CPU allocation (c10::alloc_cpu / free_cpu, what the default CPU allocator uses)
// with a count of the bytes of the blocks handed out that are still alive. Blocks are their own
// context (oneDNN's raw allocations require it), so sizes are kept in a table. A process-wide
// singleton that is never destroyed: a tensor allocated through it may be freed long after the
// measurement, and its deleter then still finds the table.
class CountingCpuAllocator final : public c10::Allocator {
 public:
  static CountingCpuAllocator& instance() {
    static auto* allocator = new CountingCpuAllocator();
    return *allocator;
  }

  void install() {
    previous_ = c10::GetCPUAllocator();
    FFC_CHECK(previous_ != this, "the counting allocator is already installed");
    c10::SetCPUAllocator(this);
    FFC_CHECK(c10::GetCPUAllocator() == this,
              "cannot install a counting CPU allocator (another one has a higher priority)");
  }
  void uninstall() { c10::SetCPUAllocator(previous_); }
  int64_t live_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_;
  }

  c10::DataPtr allocate(size_t n) const override {
    void* data = c10::alloc_cpu(n);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_[data] = n;
      live_ += static_cast<int64_t>(n);
    }
    return c10::DataPtr(data, data, &release, c10::Device(c10::DeviceType::CPU));
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

 private:
  static void release(void* data) {
    CountingCpuAllocator& self = instance();
    {
      std::lock_guard<std::mutex> lock(self.mutex_);
      auto it = self.sizes_.find(data);
      if (it != self.sizes_.end()) {
        self.live_ -= static_cast<int64_t>(it->second);
        self.sizes_.erase(it);
      }
    }
    c10::free_cpu(data);
  }

  c10::Allocator* previous_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, size_t> sizes_;
  mutable int64_t live_ = 0;
};

// Live bytes a training-mode forward of `batch` images leaves behind while its output (and with
// it the autograd graph) is alive.
int64_t bytes_kept_by_forward(Backbone& net, int64_t batch) {
  const int64_t s = net.spec().image_size;
  const at::Tensor images = at::zeros({batch, 3, s, s});
  CountingCpuAllocator& counter = CountingCpuAllocator::instance();
  counter.install();
  int64_t kept = 0;
  try {
    const int64_t before = counter.live_bytes();
    const at::Tensor out = net.forward(images);
    kept = counter.live_bytes() - before;
  } catch (...) {
    counter.uninstall();
    throw;
  }
  counter.uninstall();
  return kept;
}

int64_t elements(const std::vector<at::Tensor>& tensors, bool trainable_only) {
  int64_t n = 0;
  for (const auto& t : tensors) {
    if (!trainable_only || t.requires_grad()) {
      n += t.numel();
    }
  }
  return n;
}

}  // namespace

int64_t count_flops_per_image(Backbone& net) {
  const bool training = net.is_training();
  const auto params = net.parameters();
  const at::TensorOptions options =
      params.empty() ? at::TensorOptions() : at::TensorOptions().device(params.front().device());
  const int64_t s = net.spec().image_size;
  net.eval();
  int64_t flops = 0;
  try {
    at::NoGradGuard no_grad;
    detail::FlopCounter counter;
    net.forward(at::zeros({1, 3, s, s}, options));
    flops = counter.flops();
  } catch (...) {
    net.train(training);
    throw;
  }
  net.train(training);
  return flops;
}

ModelInfo model_info(const BackboneSpec& spec) {
  ModelInfo info;
  info.spec = spec;
  std::shared_ptr<Backbone> net;
  {
    detail::PreserveCpuRng keep;  // leave the caller's random sequence as it was
    net = make_backbone(spec);
  }
  const std::vector<at::Tensor> params = net->parameters();
  info.parameters = elements(params, false);
  info.trainable_parameters = elements(params, true);
  info.buffer_elements = elements(net->buffers(), false);
  info.state_dict_entries = static_cast<int64_t>(state_dict(*net).size());

  info.flops_per_image = count_flops_per_image(*net);
  net->train();
  bytes_kept_by_forward(*net, 2);  // warm-up: first-call caches do not count
  const int64_t at2 = bytes_kept_by_forward(*net, 2);
  const int64_t at3 = bytes_kept_by_forward(*net, 3);
  info.activation_bytes_per_image = at3 - at2;
  return info;
}

}  // namespace ffc::model
