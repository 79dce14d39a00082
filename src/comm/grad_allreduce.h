#pragma once
// Data-parallel gradient averaging in buckets: the gradients of consecutive parameters (same dtype
// and device) are packed into flat buffers of about `bucket_bytes`, each bucket is all-reduced in
// one collective and averaged, and the result is copied back. Buffers are allocated once, at
// construction; a step allocates nothing (a parameter whose gradient is undefined gets a zero
// gradient once, on its first step).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace ffc::comm {

class GradientAllReducer {
 public:
  // Parameters that do not require grad are skipped.
  GradientAllReducer(std::vector<at::Tensor> params, int64_t bucket_bytes);
  // After backward: every parameter's .grad becomes the average over ranks.
  void all_reduce_average(Communicator& comm) { reduce(comm, /*average=*/true); }
  // After backward: every parameter's .grad becomes the sum over ranks (for losses that are the
  // same global objective on every rank, whose per-rank gradients are partial sums), multiplied
  // by `scale` when it is not 1 (mixed precision's 1 / loss scale), in the buckets.
  void all_reduce_sum(Communicator& comm, double scale = 1.0) {
    reduce(comm, /*average=*/false, scale);
  }
  // The sum of squares of every gradient after the last reduction (a device scalar, float64):
  // one reduction per bucket, read by nobody until the caller asks (the non-finite guard and
  // gradient clipping use it).
  at::Tensor sum_of_squares() const;

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t num_params() const { return static_cast<int64_t>(params_.size()); }
  // Elements in bucket i.
  int64_t bucket_numel(int64_t i) const { return buckets_.at(i).flat.numel(); }
  // The flat buffer of bucket i (on the parameters' device).
  const at::Tensor& bucket(int64_t i) const { return buckets_.at(i).flat; }

 private:
  void reduce(Communicator& comm, bool average, double scale = 1.0);
  struct Bucket {
    at::Tensor flat;
    std::vector<size_t> members;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each member in flat
  };
  std::vector<at::Tensor> params_;
  std::vector<Bucket> buckets_;
};

}  // namespace ffc::comm
