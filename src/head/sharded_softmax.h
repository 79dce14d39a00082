#pragma once
// The building blocks every classification head shares (FC, Partial FC, Virtual FC, FFC): the
// softmax cross-entropy over classes sharded across ranks, with a distributed max and sum, and
// FFC's fresh-identity top-k term with a global top-k from per-shard top-k.
//
// Each rank holds the cosines of ALL gathered samples (rows, identical on every rank) against ITS
// OWN classes (columns). The functions work in place on that [rows, cols] buffer and leave the
// gradient of the objective with respect to the cosines in it, so that a head can compute its
// feature (and weight) gradients right away and keep only those: the big buffer is reused by the
// next call instead of being held until backward (docs/method.md, "Memory").
//
// The objective is a weighted sum over samples, the same value on every rank:
//   J_ce    = sum_i w_i * CE_i,     CE_i = -log softmax(s * margin(cos_i))[y_i]
//   J_fresh = sum_i u_i * sum_{k largest cos_ij over all ranks' columns} max(0, cos_ij)
//
// Devices: every tensor lives on the device of `cos` (the communicator's), and nothing here waits
// for the device: rows are selected by masks, never by nonzero() or a value read on the host, and
// the results are device scalars that the trainer reads every `frequent` steps.

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "comm/communicator.h"
#include "head/margin.h"

namespace ffc::head {

// Per gathered sample, identical on every rank, on the device of the cosines.
struct CeTargets {
  at::Tensor column;  // int64 [rows]: the sample's class among THIS rank's columns, -1 if not here
  at::Tensor weight;  // float [rows]: w_i, 0 for samples without a CE term
};

// Device scalars (0-d float32).
struct CeResult {
  at::Tensor loss;         // J_ce
  at::Tensor mean_target;  // mean target cosine of the CE rows (before the margin), a health metric
};

// On entry `cos` holds cosines [rows, cols] (cols may be 0 on a rank without classes). On return
// it holds dJ_ce/dcos: softmax - one-hot, times w_i, scale and the margin's derivative (and the
// sv re-weighting's); rows without a CE term hold zeros. Every CE row's class must be a column of
// exactly one rank. Collective: every rank calls it with the same rows, targets and weights.
// The softmax subtracts every row's real maximum over all ranks' columns, also in rows without a
// CE term, so no exponential overflows at any scale.
//
// col_scale (optional, float [cols]): `cos` holds raw dot products whose cosines are
// cos_ij * col_scale_j (a classifier's inverse weight norms), and on return dJ/d(raw) =
// dJ/dcos_ij * col_scale_j; so the scaling costs no pass of its own.
//
// On the CPU (float, contiguous, margins other than sv) the work on the buffer is two fused,
// vectorised, parallel passes (head/softmax_kernels.h); elsewhere ATen operators.
CeResult softmax_ce_(at::Tensor& cos, const CeTargets& targets, const MarginSpec& margin,
                     comm::Communicator& comm, const at::Tensor& col_scale = {});

// The fresh-identity term. Reads `cos` (it must still hold raw cosines) for rows with u_i > 0.
struct FreshResult {
  at::Tensor loss;  // J_fresh, a device scalar
  // Per row, k entries [rows, k]: a column of THIS rank (0 where unused) and its weight,
  // u_i where the entry is among the row's global k best, held here and cos > 0, else 0:
  // dJ_fresh/dcos[i, columns[i, j]] = weights[i, j] (undefined when k or the rows are 0).
  at::Tensor columns, weights;
};
FreshResult fresh_topk(const at::Tensor& cos, const at::Tensor& fresh_weight, int64_t k,
                       comm::Communicator& comm);

// k = clamp(int(0.0002 * Q), 3, 10), the authors' choice for a pool of Q slots.
int64_t default_fresh_k(int64_t pool_size);

}  // namespace ffc::head
