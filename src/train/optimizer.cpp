#include "train/optimizer.h"

#include <ATen/ATen.h>

#include <algorithm>
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

void scale_gradients(const std::vector<at::Tensor>& params, double factor) {
  if (factor == 1.0) {
    return;
  }
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      p.grad().mul_(factor);
    }
  }
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  double total = 0;
  for (const auto& p : params) {
    if (p.grad().defined()) {
      const double n = p.grad().norm().item<double>();
      total += n * n;
    }
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0) {
    scale_gradients(params, std::min(1.0, max_norm / (norm + 1e-6)));
  }
  return norm;
}

}  // namespace ffc::train
