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

// Combines two (max, sum of exp(. - max)) pairs.
void merge(float& m, float& s, float m2, float s2) {
  const float top = std::max(m, m2);
  if (top == kNegInf) {
    return;  // both empty
  }
  s = s * std::exp(m - top) + s2 * std::exp(m2 - top);
  m = top;
}

// ---------------------------------------------------------------- portable code

void max_sum_scalar(const float* x, int64_t n, float scale, const float* cs, float& m, float& s) {
  float top = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    top = std::max(top, scale * x[j] * (cs ? cs[j] : 1.0f));
  }
  float sum = 0;
  if (top != kNegInf) {
    for (int64_t j = 0; j < n; ++j) {
      sum += std::exp(scale * x[j] * (cs ? cs[j] : 1.0f) - top);
    }
  }
  m = top;
  s = sum;
}

void grad_scalar(float* x, int64_t n, float scale, const float* cs, float shift, float rs) {
  for (int64_t j = 0; j < n; ++j) {
    const float c = cs ? cs[j] : 1.0f;
    x[j] = std::exp(scale * x[j] * c - shift) * rs * c;
  }
}

// ---------------------------------------------------------------- AVX2 + FMA

#if defined(__x86_64__) && defined(__GNUC__)
#define FFC_AVX2 __attribute__((target("avx2,fma")))

// exp(x) for x <= 0 (arguments here are logits minus their row's maximum): Cody-Waite range
// reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial for exp(r) (the Cephes
// coefficients; relative error about 2 ulp), scaled by 2^n through the exponent bits. Below
// -87.3 the result is 0 (std::exp gives a denormal there; they weigh nothing in a softmax sum).
FFC_AVX2 inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 too_small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(x, lo);
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
  return _mm256_andnot_ps(too_small, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

FFC_AVX2 inline __m256 load_y(const float* x, const float* cs, int64_t j, __m256 scale) {
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), scale);
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

FFC_AVX2 void max_sum_avx2(const float* x, int64_t n, float scale, const float* cs, float& m,
                           float& s) {
  const __m256 vs = _mm256_set1_ps(scale);
  const int64_t n8 = n / 8 * 8;
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (int64_t j = 0; j < n8; j += 8) {
    vmax = _mm256_max_ps(vmax, load_y(x, cs, j, vs));
  }
  float top = hmax(vmax);
  for (int64_t j = n8; j < n; ++j) {
    top = std::max(top, scale * x[j] * (cs ? cs[j] : 1.0f));
  }
  float sum = 0;
  if (top != kNegInf) {
    const __m256 vt = _mm256_set1_ps(top);
    __m256 acc0 = _mm256_setzero_ps();
    __m256 acc1 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= n8; j += 16) {
      acc0 = _mm256_add_ps(acc0, exp256(_mm256_sub_ps(load_y(x, cs, j, vs), vt)));
      acc1 = _mm256_add_ps(acc1, exp256(_mm256_sub_ps(load_y(x, cs, j + 8, vs), vt)));
    }
    for (; j < n8; j += 8) {
      acc0 = _mm256_add_ps(acc0, exp256(_mm256_sub_ps(load_y(x, cs, j, vs), vt)));
    }
    sum = hsum(_mm256_add_ps(acc0, acc1));
    for (j = n8; j < n; ++j) {
      sum += std::exp(scale * x[j] * (cs ? cs[j] : 1.0f) - top);
    }
  }
  m = top;
  s = sum;
}

FFC_AVX2 void grad_avx2(float* x, int64_t n, float scale, const float* cs, float shift, float rs) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 vt = _mm256_set1_ps(shift);
  const __m256 vr = _mm256_set1_ps(rs);
  const int64_t n8 = n / 8 * 8;
  for (int64_t j = 0; j < n8; j += 8) {
    __m256 g = _mm256_mul_ps(exp256(_mm256_sub_ps(load_y(x, cs, j, vs), vt)), vr);
    if (cs) {
      g = _mm256_mul_ps(g, _mm256_loadu_ps(cs + j));
    }
    _mm256_storeu_ps(x + j, g);
  }
  grad_scalar(x + n8, n - n8, scale, cs ? cs + n8 : nullptr, shift, rs);
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

void max_sum(const float* x, int64_t n, float scale, const float* cs, float& m, float& s) {
  if (n <= 0) {
    m = kNegInf;
    s = 0;
    return;
  }
#if defined(__x86_64__) && defined(__GNUC__)
  if (kVectorised) {
    max_sum_avx2(x, n, scale, cs, m, s);
    return;
  }
#endif
  max_sum_scalar(x, n, scale, cs, m, s);
}

void grad(float* x, int64_t n, float scale, const float* cs, float shift, float rs) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (kVectorised) {
    grad_avx2(x, n, scale, cs, shift, rs);
    return;
  }
#endif
  grad_scalar(x, n, scale, cs, shift, rs);
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

void row_max_sumexp(const float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                    const int64_t* skip, float* max_out, float* sum_out) {
  const int64_t chunks = std::max<int64_t>(1, (cols + kChunk - 1) / kChunk);
  std::vector<float> pm(static_cast<size_t>(rows * chunks));
  std::vector<float> ps(pm.size());
  at::parallel_for(0, rows * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t / chunks;
      const int64_t a = (t % chunks) * kChunk;
      const int64_t b = std::min(cols, a + kChunk);
      const float* row = x + i * cols;
      const int64_t k = skip ? skip[i] : -1;
      float m = kNegInf;
      float s = 0;
      if (k >= a && k < b) {  // the two sides of the skipped column
        max_sum(row + a, k - a, scale, cs ? cs + a : nullptr, m, s);
        float m2 = kNegInf;
        float s2 = 0;
        max_sum(row + k + 1, b - k - 1, scale, cs ? cs + k + 1 : nullptr, m2, s2);
        merge(m, s, m2, s2);
      } else {
        max_sum(row + a, b - a, scale, cs ? cs + a : nullptr, m, s);
      }
      pm[t] = m;
      ps[t] = s;
    }
  });
  for (int64_t i = 0; i < rows; ++i) {
    float m = kNegInf;
    float s = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      merge(m, s, pm[i * chunks + c], ps[i * chunks + c]);
    }
    max_out[i] = m;
    sum_out[i] = s;
  }
}

void softmax_grad(float* x, int64_t rows, int64_t cols, float scale, const float* cs,
                  const float* shift, const float* row_scale) {
  const int64_t chunks = std::max<int64_t>(1, (cols + kChunk - 1) / kChunk);
  at::parallel_for(0, rows * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t / chunks;
      const int64_t a = (t % chunks) * kChunk;
      const int64_t b = std::min(cols, a + kChunk);
      float* row = x + i * cols;
      if (row_scale[i] == 0.0f) {
        std::fill(row + a, row + b, 0.0f);
      } else {
        grad(row + a, b - a, scale, cs ? cs + a : nullptr, shift[i], row_scale[i]);
      }
    }
  });
}

}  // namespace ffc::head::cpu
