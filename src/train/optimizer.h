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

// Every defined gradient multiplied by `factor` (nothing when it is 1).
void scale_gradients(const std::vector<at::Tensor>& params, double factor);

// torch.nn.utils.clip_grad_norm_: the global gradient norm of `params` and, when max_norm > 0,
// every gradient multiplied by min(1, max_norm / (norm + 1e-6)). Returns the norm. (The trainer
// has the norm on the host already and calls scale_gradients.)
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace ffc::train
