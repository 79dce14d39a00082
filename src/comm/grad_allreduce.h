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
  // same global objective on every rank, whose per-rank gradients are partial sums).
  void all_reduce_sum(Communicator& comm) { reduce(comm, /*average=*/false); }

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t num_params() const { return static_cast<int64_t>(params_.size()); }
  // Elements in bucket i.
  int64_t bucket_numel(int64_t i) const { return buckets_.at(i).flat.numel(); }

 private:
  void reduce(Communicator& comm, bool average);
  struct Bucket {
    at::Tensor flat;
    std::vector<size_t> members;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each member in flat
  };
  std::vector<at::Tensor> params_;
  std::vector<Bucket> buckets_;
};

}  // namespace ffc::comm
