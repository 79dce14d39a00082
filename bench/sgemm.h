#pragma once
// The machine's float32 GEMM peak, the reference the benchmarks report their GFLOP/s against:
// an n x n x n at::mm_out, timed over the benchmark's iterations. Shared by model_bench and
// head_bench, each of which registers it as BM_Sgemm and keeps the rate in its own global.

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include <chrono>

namespace ffc::bench {

// Runs the benchmark loop and returns the measured GFLOP/s (also set as the "GFLOP/s" counter).
inline double run_sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const at::Tensor a = at::randn({n, n});
  const at::Tensor b = at::randn({n, n});
  at::Tensor c = at::empty({n, n});
  at::mm_out(c, a, b);  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    at::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flops = 2.0 * static_cast<double>(n * n * n);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  return flops * static_cast<double>(state.iterations()) / seconds / 1e9;
}

}  // namespace ffc::bench
