#pragma once
// Virtual FC (Li et al., CVPR 2021) as its authors' code (docs/method.md, "Baselines"):
// M virtual rows (a parameter [M, D], Xavier-uniform initialised, trained by SGD like the
// backbone, replicated on every rank); identity y uses row y mod M. Each step, before the
// logits:
//   1. the rows a collision borrowed last step get their old values back;
//   2. over the gathered batch, each identity's home row y mod M is overwritten by the detached
//      sum of that identity's features (raw, not normalised), identities in ascending label
//      order; an identity whose home row another identity of the batch already took borrows the
//      lowest row no identity of the batch uses (its old value is saved for step 1);
//   3. logits = cos(normalised features, normalised rows) over all M rows, ArcFace margin on the
//      identity's row, scale; cross-entropy averaged over the rank's samples.
// Rows of identities outside the batch keep their SGD-trained values: shared negatives.
// The returned loss is the rank's share of the global objective (its mean divided by P), so the
// gradients of the backbone and of the rows are summed over ranks.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "head/margin.h"

namespace ffc::head {

struct VfcOptions {
  int64_t rows = 1000;
  int64_t dim = 512;
  MarginSpec margin;
  uint64_t seed = 0;
};

struct VfcStats {
  at::Tensor loss;         // the global objective, a device scalar
  int64_t identities = 0;  // distinct identities in the gathered batch
  int64_t collisions = 0;  // of those, how many borrowed a row
};

class VfcHead {
 public:
  VfcHead(const VfcOptions& options, comm::Communicator& comm);
  // features on comm.device() (where the rows live), labels on the host.
  at::Tensor forward(const at::Tensor& features, const at::Tensor& labels, VfcStats* stats);
  // The virtual rows: a parameter for the trainer's optimiser (gradients summed over ranks).
  at::Tensor& weight() { return weight_; }
  const VfcOptions& options() const { return options_; }
  // Rows borrowed by the last step's collisions and their saved values (checkpoints).
  const std::vector<int64_t>& borrowed_rows() const { return borrowed_; }
  void set_borrowed_rows(std::vector<int64_t> rows) { borrowed_ = std::move(rows); }
  at::Tensor& saved_rows() { return saved_; }

 private:
  VfcOptions options_;
  comm::Communicator& comm_;
  at::Tensor weight_;
  std::vector<int64_t> borrowed_;
  at::Tensor saved_;  // [M, D] values of the borrowed rows before the overwrite
};

}  // namespace ffc::head
