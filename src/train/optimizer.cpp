#include "train/optimizer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/error.h"

namespace ffc::train {

Sgd::Sgd(std::vector<at::Tensor> params, std::vector<std::string> names, const SgdOptions& options)
    : options_(options) {
  FFC_CHECK(names.empty() || names.size() == params.size(),
            "Sgd: " + std::to_string(names.size()) + " names for " + std::to_string(params.size()) +
                " parameters");
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].requires_grad()) {
      continue;
    }
    params_.push_back(params[i]);
    names_.push_back(names.empty() ? std::to_string(i) : names[i]);
    buffers_.push_back(at::zeros_like(params[i], at::MemoryFormat::Contiguous));
  }
  started_.assign(params_.size(), false);
}

void Sgd::step(double lr) {
  // In place on the gradients (they are consumed): no temporary of a parameter's size.
  at::NoGradGuard no_grad;
  const double m = options_.momentum;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    at::Tensor g = p.grad();
    if (!g.defined()) {
      continue;
    }
    if (options_.weight_decay != 0) {
      g.add_(p, options_.weight_decay);
    }
    if (m == 0) {
      p.sub_(g, lr);
      continue;
    }
    at::Tensor& b = buffers_[i];
    if (!started_[i]) {
      b.copy_(g);
      started_[i] = true;
    } else {
      b.mul_(m).add_(g);
    }
    if (options_.nesterov) {
      g.add_(b, m);
      p.sub_(g, lr);
    } else {
      p.sub_(b, lr);
    }
  }
  ++steps_;
}

void Sgd::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) {
      p.mutable_grad().zero_();
    }
  }
}

at::Tensor clip_grad_norm_(const std::vector<at::Tensor>& params, double max_norm,
                           at::Tensor norm) {
  at::NoGradGuard no_grad;
  if (!norm.defined()) {
    std::vector<at::Tensor> norms;
    for (const auto& p : params) {
      if (p.grad().defined()) {
        norms.push_back(p.grad().norm().to(at::kDouble));
      }
    }
    norm = norms.empty() ? at::zeros({}, at::kDouble) : at::stack(norms).pow(2).sum().sqrt();
  }
  if (max_norm > 0) {
    const at::Tensor coef = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    for (const auto& p : params) {
      if (p.grad().defined()) {
        p.grad().mul_(coef.to(p.grad().device(), p.grad().scalar_type()));
      }
    }
  }
  return norm;
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  return clip_grad_norm_(params, max_norm).item<double>();
}

}  // namespace ffc::train
