#pragma once
// FFC's classification head: the dynamic class pool and the loss of one pass (docs/method.md).
//
// One pass (probe features p, gallery features g, both L2-normalised; g without gradient):
//   1. all-gather g and its labels, insert them into the pool (rows written by their owners);
//   2. each probe's slot is the pool's slot of its label after the insertion, or -1 (fresh);
//   3. cos1 = p . row0, cos2 = p . (row1 of slots refreshed in this pass, row0 otherwise);
//   4. loss = M(cos1) + M(cos2) where M = margin softmax CE over the pool for probes in the pool
//      (weights 1 / (P * positives of the probe's rank): the mean per rank, averaged over ranks,
//      as the authors' DDP run) + the fresh term for probes not in the pool (mean of their top-k
//      pool cosines clamped at 0).
//   5. a rollback pass then undoes every change to the pool.
//
// With the sharded placement the probes are all-gathered and every rank scores them against its
// own slots (distributed softmax); with the replicated placement every rank scores its own probes
// against all slots, as the authors do. Both give the same loss and gradients.
//
// The returned loss is [2]: (CE part, fresh part), the same on every rank; its gradient reaches
// each rank's own probes through the all-gather's reduce-scatter: backbone gradients are then
// summed over ranks (GradientAllReducer in sum mode).
//
// Devices: the pool's rows, the logits buffers and every tensor of the loss live on
// comm.device(); labels arrive on the host and stay there (the pool's LRU metadata is host-side
// by design). Per pass the device receives only small index and weight tensors, asynchronously,
// and nothing waits for the device.

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "head/dynamic_pool.h"
#include "head/margin.h"

namespace ffc::head {

struct FfcHeadOptions {
  int64_t pool_size = 0;
  int64_t dim = 512;
  Placement placement = Placement::kSharded;
  bool random_init = false;  // the authors' random rows in empty slots, instead of masking them
  int64_t fresh_k = 3;
  double fresh_weight = 1.0;
  MarginSpec margin;
  uint64_t seed = 0;
};

// Figures of one pass: host counts, and device scalars the trainer reads every `frequent` steps.
struct FfcPassStats {
  at::Tensor ce;               // the CE part of the loss (all ranks)
  at::Tensor fresh;            // the fresh part
  at::Tensor mean_target_cos;  // mean target cosine of the positives
  int64_t positives = 0;       // probes found in the pool (all ranks)
  int64_t fresh_samples = 0;   // probes not in the pool (all ranks)
  InsertStats insert;
  int64_t pool_filled = 0;
};

class FfcHead {
 public:
  FfcHead(const FfcHeadOptions& options, comm::Communicator& comm);
  ~FfcHead();

  // probe and gallery on comm.device(); their labels on the host.
  at::Tensor pass(const at::Tensor& probe, const at::Tensor& probe_labels,
                  const at::Tensor& gallery, const at::Tensor& gallery_labels, bool rollback,
                  FfcPassStats* stats);

  // The logits buffers, once a pass made them.
  std::vector<std::pair<std::string, at::Tensor>> workspaces() const;
  DynamicPool& pool() { return pool_; }
  const DynamicPool& pool() const { return pool_; }
  const FfcHeadOptions& options() const { return options_; }

 private:
  at::Tensor logits_buffer(int which, int64_t rows, int64_t cols);

  FfcHeadOptions options_;
  comm::Communicator& comm_;
  std::unique_ptr<comm::Communicator> single_;  // the replicated placement's local softmax
  DynamicPool pool_;
  at::Tensor buffers_[2];
  std::vector<int64_t> refreshed_;
};

// Checks a configuration's pool against the global gallery batch (Q must hold it, else identities
// are evicted within one step). Throws ConfigError naming the minimum.
void check_pool_size(int64_t pool_size, int64_t gallery_rows_per_rank, int world);

}  // namespace ffc::head
