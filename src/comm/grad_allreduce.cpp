#include "comm/grad_allreduce.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace ffc::comm {

GradientAllReducer::GradientAllReducer(std::vector<at::Tensor> params, int64_t bucket_bytes) {
  FFC_CHECK(bucket_bytes > 0, "gradient bucket size must be positive");
  for (auto& p : params) {
    if (p.defined() && p.requires_grad()) {
      params_.push_back(p);
    }
  }
  // Group consecutive parameters of the same dtype and device up to bucket_bytes (a parameter
  // larger than a bucket gets a bucket of its own).
  size_t i = 0;
  while (i < params_.size()) {
    const at::TensorOptions options = params_[i].options().requires_grad(false);
    Bucket bucket;
    int64_t numel = 0;
    int64_t bytes = 0;
    while (i < params_.size() && params_[i].scalar_type() == options.dtype().toScalarType() &&
           params_[i].device() == options.device()) {
      const int64_t b = params_[i].numel() * params_[i].element_size();
      if (!bucket.members.empty() && bytes + b > bucket_bytes) {
        break;
      }
      bucket.members.push_back(i);
      bucket.offsets.push_back(numel);
      numel += params_[i].numel();
      bytes += b;
      ++i;
    }
    bucket.flat = at::zeros({numel}, options);
    buckets_.push_back(std::move(bucket));
  }
}

void GradientAllReducer::reduce(Communicator& comm, bool average, double scale) {
  for (auto& bucket : buckets_) {
    for (size_t k = 0; k < bucket.members.size(); ++k) {
      at::Tensor& p = params_[bucket.members[k]];
      at::Tensor slot = bucket.flat.narrow(0, bucket.offsets[k], p.numel());
      const at::Tensor& g = p.grad();
      if (g.defined()) {
        slot.copy_(g.reshape(-1));
      } else {
        slot.zero_();
      }
    }
    if (average) {
      comm::all_reduce_average(comm, bucket.flat);
    } else {
      comm.all_reduce(bucket.flat, ReduceOp::kSum);
    }
    if (scale != 1.0) {
      bucket.flat.mul_(scale);
    }
    for (size_t k = 0; k < bucket.members.size(); ++k) {
      at::Tensor& p = params_[bucket.members[k]];
      at::Tensor slot = bucket.flat.narrow(0, bucket.offsets[k], p.numel()).view(p.sizes());
      if (!p.grad().defined()) {
        p.mutable_grad() = at::empty_like(p, at::MemoryFormat::Contiguous);
      }
      p.mutable_grad().copy_(slot);
    }
  }
}

at::Tensor GradientAllReducer::sum_of_squares() const {
  std::vector<at::Tensor> parts;
  for (const auto& bucket : buckets_) {
    if (bucket.flat.numel() > 0) {
      parts.push_back(at::dot(bucket.flat, bucket.flat).to(at::kDouble));
    }
  }
  if (parts.empty()) {
    return at::zeros({}, at::kDouble);
  }
  return at::stack(parts).sum();
}

}  // namespace ffc::comm
