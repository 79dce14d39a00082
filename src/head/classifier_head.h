#pragma once
// The model-parallel classifier of insightface, full (FC, sample_rate 1) or partial (Partial FC,
// sample_rate r < 1), on the sharded softmax of sharded_softmax.h (docs/method.md, "Baselines").
//
// Rank r holds the contiguous block of classes [start, start + num_local) with
// num_local = N/P + (r < N%P) and start = (N/P)*r + min(r, N%P) (insightface's split), its
// weights W [num_local, D] (initialised N(0, 0.01) per class from the seed, so every rank count
// gives the same matrix) and their momentum. A step all-gathers the normalised features and the
// labels; logits are cos(features, W rows); the margin, scale and softmax are distributed; feature
// gradients return by reduce-scatter.
//
// Partial FC keeps every class of the gathered batch that falls in the rank's block and fills up
// to int(r * num_local) with random others (if the positives exceed that, only the positives),
// as insightface's v1; only the sampled rows and their momentum are read and written in a step;
// no dense N x D gradient exists. The random choice takes O(sample) time through a keyed
// permutation (insightface draws num_local random numbers).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "head/margin.h"

namespace ffc::head {

struct ClassifierOptions {
  int64_t num_classes = 0;
  int64_t dim = 512;
  double sample_rate = 1.0;
  bool partial = false;  // Partial FC's sampling path (also at sample_rate 1, where it keeps all)
  MarginSpec margin;
  uint64_t seed = 0;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
};

struct ClassifierStats {
  at::Tensor loss;        // the global objective, a device scalar
  int64_t sampled = 0;    // classes scored on this rank this step
  int64_t positives = 0;  // distinct classes of the gathered batch held by this rank
};

class ClassifierHead {
 public:
  ClassifierHead(const ClassifierOptions& options, comm::Communicator& comm);
  ~ClassifierHead();

  // features [b, D] on comm.device() (the backbone's output, normalised here), labels [b] on the
  // host (the sampling and the label columns are host-side; the device gets index tensors, without
  // waiting). Weights, momentum and buffers live on comm.device(). Returns the global
  // objective (mean cross-entropy over the gathered batch) as a [1] tensor whose backward
  // reaches the features; the weight gradient goes to the head's own buffer, applied by step().
  at::Tensor forward(const at::Tensor& features, const at::Tensor& labels, ClassifierStats* stats);
  // SGD (momentum, Nesterov, weight decay as torch.optim.SGD) on the rows the last forward used;
  // the weight gradient is first multiplied by inv_grad_scale (mixed precision's loss scale).
  void step(double lr, double inv_grad_scale = 1.0);

  int64_t num_local() const { return num_local_; }
  int64_t class_start() const { return start_; }
  at::Tensor& weight() { return weight_; }
  at::Tensor& momentum() { return momentum_; }
  // Rows scored by the last forward (local indices; all rows for FC) and dJ/d(those rows), until
  // the next step() (on the CPU a computed copy: the head's buffer holds the gradient before its
  // projection, which step() applies in its pass over the rows).
  at::Tensor last_rows() const;
  at::Tensor last_weight_grad() const;
  const ClassifierOptions& options() const { return options_; }
  // Steps seen (Partial FC draws its sample from it); a resume sets it.
  int64_t steps() const { return step_count_; }
  void set_steps(int64_t steps) { step_count_ = steps; }
  // The reused buffers (sampled rows and momentum, gradient, logits), once a forward made them.
  std::vector<std::pair<std::string, at::Tensor>> workspaces() const;
  // Bytes of the head's tensors on this rank (weights, momentum, buffers).
  int64_t bytes() const;

  // insightface's split of N classes over P ranks.
  static int64_t local_classes(int64_t n, int rank, int world);
  static int64_t first_class(int64_t n, int rank, int world);
  // The initial weight row of global class `c`: N(0, 0.01) from (seed, c).
  static void init_row(uint64_t seed, int64_t c, float* row, int64_t dim);

 private:
  at::Tensor sample(const at::Tensor& local_labels);

  ClassifierOptions options_;
  comm::Communicator& comm_;
  int64_t num_local_;
  int64_t start_;
  int64_t num_sample_;
  bool partial_;
  at::Tensor weight_, momentum_;
  // Reused buffers: sampled rows, their momentum and gradient, logits.
  at::Tensor sub_weight_, sub_momentum_, grad_;
  at::Tensor logits_;
  at::Tensor index_;  // rows used by the last forward (partial only)
  at::Tensor inv_;    // their inverse norms at the last forward
  int64_t step_count_ = 0;
};

}  // namespace ffc::head
