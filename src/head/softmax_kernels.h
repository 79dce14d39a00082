#pragma once
// CPU kernels of the sharded softmax (sharded_softmax.cpp): the two passes over a [rows, cols]
// float logits buffer that a softmax cross-entropy step needs, instead of one ATen operator per
// pass (scale, max, subtract, exp, sum, scale: about eight passes). Vectorised (AVX2 + FMA with
// a polynomial exp, chosen at run time; portable scalar code otherwise) and parallel over rows
// and fixed column chunks with at::parallel_for. The chunks do not depend on the thread count and
// their partial results are combined in chunk order, so the results are the same with any number
// of threads.
//
// y_ij = scale * x_ij * cs_j is the scaled logit of raw entry x_ij (cs: a per-column scale, e.g.
// the weight rows' inverse norms; null means 1).

#include <cstdint>

namespace ffc::head::cpu {

// Per row i: max_i = max_j y_ij and sum_i = sum_j exp(y_ij - max_i) over the row's columns but
// skip[i] (skip may be null; skip[i] < 0 skips nothing). A row with no column: -inf and 0.
void row_max_sumexp(const float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                    const int64_t* skip, float* max_out, float* sum_out);

// In place: x_ij <- exp(y_ij - shift_i) * row_scale_i * cs_j (rows with row_scale_i = 0 become
// zeros without computing the exponentials).
void softmax_grad(float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                  const float* shift, const float* row_scale);

// Per row: the k largest entries (k <= cols), in descending order, and their columns, into
// values [rows, k] and index [rows, k] (row stride k). Equal values: the lower column first. One
// vectorised pass that compares 8 entries at a time with the row's current k-th best.
void row_topk(const float* x, int64_t rows, int64_t cols, int64_t k, float* values, int64_t* index);

// Whether the vectorised (AVX2 + FMA) code runs on this CPU.
bool vectorised();

}  // namespace ffc::head::cpu
