#pragma once
// SGD with momentum, Nesterov and weight decay, exactly as torch.optim.SGD (dampening 0):
//   g <- grad + wd * p
//   b <- g (first step), else momentum * b + g
//   g <- g + momentum * b (Nesterov), else b
//   p <- p - lr * g
// Our own rather than torch::optim::SGD so that its state (one momentum buffer per parameter,
// created at construction, no per-step allocation) is plain tensors a checkpoint can name.

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace ffc::train {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
};

class Sgd {
 public:
  // Parameters without requires_grad are skipped (e.g. insightface's frozen features.weight).
  Sgd(std::vector<at::Tensor> params, std::vector<std::string> names, const SgdOptions& options);
  // Parameters whose .grad is undefined are left alone (and their buffer too). The gradients are
  // consumed: weight decay and Nesterov's term are added to them in place.
  void step(double lr);
  void zero_grad();

  const std::vector<at::Tensor>& params() const { return params_; }
  const std::vector<std::string>& names() const { return names_; }
  // Momentum buffers, parallel to params(), and whether each has been started (PyTorch's buffer
  // exists); a checkpoint saves both.
  std::vector<at::Tensor>& momentum_buffers() { return buffers_; }
  std::vector<bool>& started() { return started_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  const SgdOptions& options() const { return options_; }

 private:
  std::vector<at::Tensor> params_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> buffers_;
  std::vector<bool> started_;
  SgdOptions options_;
  int64_t steps_ = 0;
};

// torch.nn.utils.clip_grad_norm_: when max_norm > 0, every gradient is multiplied by
// min(1, max_norm / (norm + 1e-6)), where `norm` is the global gradient norm (a device scalar, or
// undefined: computed here). Device arithmetic only: nothing waits for the device. Returns the
// norm.
at::Tensor clip_grad_norm_(const std::vector<at::Tensor>& params, double max_norm,
                           at::Tensor norm = {});
// The same, returning the norm's value (reads it on the host).
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace ffc::train
