#pragma once
// CPU kernels of the sharded softmax (sharded_softmax.cpp): the two passes over a [rows, cols]
// float logits buffer that a softmax cross-entropy step needs, instead of one ATen operator per
// pass (scale, max, subtract, exp, sum, scale: about eight passes). Pass 1 reads a chunk of a row
// twice (its max, then the exponentials, from cache) and writes the exponentials; pass 2 only
// multiplies them by a factor per chunk: one exponential per logit. Vectorised (AVX2 + FMA with
// a polynomial exp, chosen at run time; portable scalar code otherwise) and parallel over rows
// and fixed column chunks with at::parallel_for. The chunks do not depend on the thread count and
// their partial results are combined in chunk order, so the results are the same with any number
// of threads.
//
// y_ij = scale * x_ij * cs_j is the scaled logit of raw entry x_ij (cs: a per-column scale, e.g.
// the weight rows' inverse norms; null means 1).

#include <cstdint>

namespace ffc::head::cpu {

// Combines (m, s) with (m2, s2), each a max and the sum of exp(. - max) over a set of logits, into
// those of the union (two empty sets, -inf and 0, stay empty).
void merge_max_sum(float& m, float& s, float m2, float s2);

// Column chunks per row: the entries of chunk_max below.
int64_t softmax_chunks(int64_t cols);

// Pass 1, in place: for each row i and column chunk c (of 8192 columns), the chunk's largest
// logit m_ic over its columns but skip[i] (skip may be null; skip[i] < 0 skips nothing) into
// chunk_max[i * chunks + c], and x_ij <- exp(y_ij - m_ic) for those columns (x at skip[i] keeps
// its value). Per row: max_i = max_c m_ic and sum_i = sum_j exp(y_ij - max_i) over the same
// columns. A row with no column: -inf and 0.
void softmax_exp_(float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                  const int64_t* skip, float* max_out, float* sum_out, float* chunk_max);

// Pass 2, in place: x_ij <- x_ij * exp(m_ic - shift_i) * row_scale_i * cs_j, i.e. with pass 1,
// exp(y_ij - shift_i) * row_scale_i * cs_j (rows with row_scale_i = 0 become zeros).
void softmax_scale_(float* x, int64_t rows, int64_t cols, const float* cs, const float* chunk_max,
                    const float* shift, const float* row_scale);

// Per row: the k largest entries (k <= cols), in descending order, and their columns, into
// values [rows, k] and index [rows, k] (row stride k). Equal values: the lower column first. One
// vectorised pass that compares 8 entries at a time with the row's current k-th best.
void row_topk(const float* x, int64_t rows, int64_t cols, int64_t k, float* values, int64_t* index);

// Whether the vectorised (AVX2 + FMA) code runs on this CPU.
bool vectorised();

}  // namespace ffc::head::cpu
