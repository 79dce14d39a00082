#include "head/softmax_kernels.h"

#include <ATen/Parallel.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ffc::head::cpu {
namespace {

constexpr int64_t kChunk = 8192;  // columns per task: 32 KiB of a row, re-read from cache
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------- portable code
// t_j = x_j * cs_j (x_j where cs is null); the logit is scale * t_j.

float max_t_scalar(const float* x, int64_t n, const float* cs) {
  float top = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    top = std::max(top, x[j] * (cs ? cs[j] : 1.0f));
  }
  return top;
}

float exp_store_scalar(float* x, int64_t n, float scale, const float* cs, float top) {
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(scale * (x[j] * (cs ? cs[j] : 1.0f)) - top);
    sum += x[j];
  }
  return sum;
}

void scale_scalar(float* x, int64_t n, const float* cs, float f) {
  for (int64_t j = 0; j < n; ++j) {
    x[j] *= f * (cs ? cs[j] : 1.0f);
  }
}

// ---------------------------------------------------------------- AVX2 + FMA

#if defined(__x86_64__) && defined(__GNUC__)
#define FFC_AVX2 __attribute__((target("avx2,fma")))

// exp(x) for x <= 0 (arguments here are logits minus their row's maximum): Cody-Waite range
// reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial for exp(r) (the Cephes
// coefficients; relative error about 2 ulp), scaled by 2^n through the exponent bits. Arguments
// below -87.3 give exp(-87.3), about 1e-38, where std::exp gives a denormal or 0: they weigh
// nothing next to the row's largest term, which is 1.
FFC_AVX2 inline __m256 exp256(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.33654f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

FFC_AVX2 inline __m256 load_t(const float* x, const float* cs, int64_t j) {
  const __m256 v = _mm256_loadu_ps(x + j);
  return cs ? _mm256_mul_ps(v, _mm256_loadu_ps(cs + j)) : v;
}

FFC_AVX2 float hmax(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

FFC_AVX2 float hsum(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

FFC_AVX2 float max_t_avx2(const float* x, int64_t n, const float* cs) {
  const int64_t n8 = n / 8 * 8;
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (int64_t j = 0; j < n8; j += 8) {
    vmax = _mm256_max_ps(vmax, load_t(x, cs, j));
  }
  return std::max(hmax(vmax), max_t_scalar(x + n8, n - n8, cs ? cs + n8 : nullptr));
}

FFC_AVX2 float exp_store_avx2(float* x, int64_t n, float scale, const float* cs, float top) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 vt = _mm256_set1_ps(top);
  const int64_t n8 = n / 8 * 8;
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n8; j += 16) {
    const __m256 e0 = exp256(_mm256_fmsub_ps(load_t(x, cs, j), vs, vt));
    const __m256 e1 = exp256(_mm256_fmsub_ps(load_t(x, cs, j + 8), vs, vt));
    _mm256_storeu_ps(x + j, e0);
    _mm256_storeu_ps(x + j + 8, e1);
    acc0 = _mm256_add_ps(acc0, e0);
    acc1 = _mm256_add_ps(acc1, e1);
  }
  for (; j < n8; j += 8) {
    const __m256 e0 = exp256(_mm256_fmsub_ps(load_t(x, cs, j), vs, vt));
    _mm256_storeu_ps(x + j, e0);
    acc0 = _mm256_add_ps(acc0, e0);
  }
  return hsum(_mm256_add_ps(acc0, acc1)) +
         exp_store_scalar(x + n8, n - n8, scale, cs ? cs + n8 : nullptr, top);
}

FFC_AVX2 void scale_avx2(float* x, int64_t n, const float* cs, float f) {
  const __m256 vf = _mm256_set1_ps(f);
  const int64_t n8 = n / 8 * 8;
  for (int64_t j = 0; j < n8; j += 8) {
    __m256 g = _mm256_mul_ps(_mm256_loadu_ps(x + j), vf);
    if (cs) {
      g = _mm256_mul_ps(g, _mm256_loadu_ps(cs + j));
    }
    _mm256_storeu_ps(x + j, g);
  }
  scale_scalar(x + n8, n - n8, cs ? cs + n8 : nullptr, f);
}

// The first j in [from, n) with x[j] > threshold, or n.
FFC_AVX2 int64_t next_above_avx2(const float* x, int64_t from, int64_t n, float threshold) {
  const __m256 t = _mm256_set1_ps(threshold);
  int64_t j = from;
  for (; j + 8 <= n; j += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), t, _CMP_GT_OQ));
    if (mask != 0) {
      return j + __builtin_ctz(static_cast<unsigned>(mask));
    }
  }
  for (; j < n; ++j) {
    if (x[j] > threshold) {
      return j;
    }
  }
  return n;
}

bool detect() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
bool detect() {
  return false;
}
#endif

const bool kVectorised = detect();

#if defined(__x86_64__) && defined(__GNUC__)
#define FFC_DISPATCH(avx2_call, scalar_call) return kVectorised ? avx2_call : scalar_call
#else
#define FFC_DISPATCH(avx2_call, scalar_call) return scalar_call
#endif

float max_t(const float* x, int64_t n, const float* cs) {
  FFC_DISPATCH(max_t_avx2(x, n, cs), max_t_scalar(x, n, cs));
}

float exp_store(float* x, int64_t n, float scale, const float* cs, float top) {
  FFC_DISPATCH(exp_store_avx2(x, n, scale, cs, top), exp_store_scalar(x, n, scale, cs, top));
}

void scale_by(float* x, int64_t n, const float* cs, float f) {
  FFC_DISPATCH(scale_avx2(x, n, cs, f), scale_scalar(x, n, cs, f));
}

int64_t next_above(const float* x, int64_t from, int64_t n, float threshold) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kVectorised) {
    return next_above_avx2(x, from, n, threshold);
  }
#endif
  for (int64_t j = from; j < n; ++j) {
    if (x[j] > threshold) {
      return j;
    }
  }
  return n;
}

// Inserts (value, column) into the sorted top list v/c of length `len` (the last entry drops).
void insert_top(float* v, int64_t* c, int64_t len, float value, int64_t column) {
  int64_t p = len - 1;
  while (p > 0 && v[p - 1] < value) {
    v[p] = v[p - 1];
    c[p] = c[p - 1];
    --p;
  }
  v[p] = value;
  c[p] = column;
}

}  // namespace

void merge_max_sum(float& m, float& s, float m2, float s2) {
  const float top = std::max(m, m2);
  if (top == kNegInf) {
    return;  // both empty
  }
  s = s * std::exp(m - top) + s2 * std::exp(m2 - top);
  m = top;
}

bool vectorised() {
  return kVectorised;
}

void row_topk(const float* x, int64_t rows, int64_t cols, int64_t k, float* values,
              int64_t* index) {
  if (k <= 0 || k > cols) {
    return;
  }
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = x + i * cols;
      float* v = values + i * k;
      int64_t* c = index + i * k;
      // The first k columns sorted, then only entries above the current k-th best enter (equal
      // values keep the lower column first).
      for (int64_t j = 0; j < k; ++j) {
        insert_top(v, c, j + 1, row[j], j);
      }
      for (int64_t j = next_above(row, k, cols, v[k - 1]); j < cols;
           j = next_above(row, j + 1, cols, v[k - 1])) {
        insert_top(v, c, k, row[j], j);
      }
    }
  });
}

int64_t softmax_chunks(int64_t cols) {
  return std::max<int64_t>(1, (cols + kChunk - 1) / kChunk);
}

namespace {

// Calls fn(t, i, a, b) for every tile t = (row i, columns [a, b)) of a [rows, cols] buffer in
// chunks of kChunk columns, on LibTorch's intra-op threads.
template <typename Fn>
void for_each_tile(int64_t rows, int64_t cols, const Fn& fn) {
  const int64_t chunks = softmax_chunks(cols);
  at::parallel_for(0, rows * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t a = (t % chunks) * kChunk;
      fn(t, t / chunks, a, std::min(cols, a + kChunk));
    }
  });
}

}  // namespace

void softmax_exp_(float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                  const int64_t* skip, float* max_out, float* sum_out, float* chunk_max) {
  const int64_t chunks = softmax_chunks(cols);
  std::vector<float> partial_sum(static_cast<size_t>(rows * chunks));
  for_each_tile(rows, cols, [&](int64_t t, int64_t i, int64_t a, int64_t b) {
    float* row = x + i * cols;
    const int64_t k = skip ? skip[i] : -1;
    // The chunk's columns but k: [a, k) and [k + 1, b) (or [a, b)).
    const int64_t mid = k >= a && k < b ? k : b;
    const int64_t rest = k >= a && k < b ? k + 1 : b;
    const float top_t = std::max(max_t(row + a, mid - a, cs ? cs + a : nullptr),
                                 max_t(row + rest, b - rest, cs ? cs + rest : nullptr));
    const float top = top_t == kNegInf ? kNegInf : scale * top_t;
    float sum = 0;
    if (top != kNegInf) {
      sum = exp_store(row + a, mid - a, scale, cs ? cs + a : nullptr, top) +
            exp_store(row + rest, b - rest, scale, cs ? cs + rest : nullptr, top);
    }
    chunk_max[t] = top;
    partial_sum[static_cast<size_t>(t)] = sum;
  });
  for (int64_t i = 0; i < rows; ++i) {
    float m = kNegInf;
    float s = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      merge_max_sum(m, s, chunk_max[i * chunks + c],
                    partial_sum[static_cast<size_t>(i * chunks + c)]);
    }
    max_out[i] = m;
    sum_out[i] = s;
  }
}

void softmax_scale_(float* x, int64_t rows, int64_t cols, const float* cs, const float* chunk_max,
                    const float* shift, const float* row_scale) {
  for_each_tile(rows, cols, [&](int64_t t, int64_t i, int64_t a, int64_t b) {
    float* row = x + i * cols;
    if (row_scale[i] == 0.0f || chunk_max[t] == kNegInf) {
      std::fill(row + a, row + b, 0.0f);
    } else {
      scale_by(row + a, b - a, cs ? cs + a : nullptr,
               std::exp(chunk_max[t] - shift[i]) * row_scale[i]);
    }
  });
}

}  // namespace ffc::head::cpu
