// Backbone throughput on the CPU at batch 32: forward (eval mode, no autograd) and
// forward+backward (training mode), in images/s and GFLOP/s, beside the machine's sgemm peak
// measured in the same run (2048^3 into a preallocated output). Counters:
//   img/s       images per second
//   GFLOP/s     forward: flops_per_image (model/info.h) x images / s; forward+backward: 3x the
//               forward FLOPs (the backward computes the gradients of the inputs and of the
//               weights, each about one forward; the stem's input gradient, not needed, is
//               counted too)
//   of_sgemm    GFLOP/s / BM_Sgemm's GFLOP/s of this run (the matmul peak: at::mm_out of
//               2048^3 into a preallocated output; it runs first)
//   of_conv_gemm  GFLOP/s / BM_ConvGemm's: the same GEMM as a 1x1 convolution through oneDNN,
//               which on AVX-512 CPUs is faster than Debian's OpenBLAS (AVX2 kernels)
//
//   build/bin/model_bench [--threads=N] [--benchmark_filter=tiny]
// --threads sets LibTorch's intra-op threads (default: all cores of the machine).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/memory.h"
#include "model/backbone.h"
#include "model/info.h"
#include "sgemm.h"

namespace {

constexpr int64_t kBatch = 32;
double g_sgemm_gflops = 0;      // set by BM_Sgemm
double g_conv_gemm_gflops = 0;  // set by BM_ConvGemm

void BM_Sgemm(benchmark::State& state) {
  g_sgemm_gflops = ffc::bench::run_sgemm(state);
}
BENCHMARK(BM_Sgemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same n^3 multiply-adds as a 1x1 convolution (n channels in and out, n pixels), which goes
// through oneDNN like the backbones' convolutions; on CPUs with AVX-512 oneDNN uses it where
// Debian's OpenBLAS sgemm uses its AVX2 kernels, so this can beat BM_Sgemm.
void BM_ConvGemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const at::Tensor x = at::randn({1, n, n / 32, 32});
  const at::Tensor w = at::randn({n, n, 1, 1});
  benchmark::DoNotOptimize(at::conv2d(x, w).data_ptr());  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    benchmark::DoNotOptimize(at::conv2d(x, w).data_ptr());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flops = 2.0 * static_cast<double>(n * n * n);
  g_conv_gemm_gflops = flops * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ConvGemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

void run_backbone(benchmark::State& state, const std::string& name, int64_t image, bool backward) {
  ffc::model::BackboneSpec spec;
  spec.name = name;
  spec.image_size = image;
  at::manual_seed(0);
  const auto net = ffc::model::make_backbone(spec);
  const double flops = static_cast<double>(ffc::model::count_flops_per_image(*net)) *
                       static_cast<double>(kBatch) * (backward ? 3.0 : 1.0);
  const at::Tensor images = at::randn({kBatch, 3, image, image});
  auto step = [&] {
    if (backward) {
      net->zero_grad();
      net->forward(images).square().mean().backward();
    } else {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(net->forward(images).data_ptr());
    }
  };
  net->train(backward);
  step();  // warm-up: first-call allocations and kernel selection
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    step();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double gflops = flops * static_cast<double>(state.iterations()) / seconds / 1e9;
  using benchmark::Counter;
  state.counters["img/s"] =
      Counter(static_cast<double>(kBatch), Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = Counter(flops / 1e9, Counter::kIsIterationInvariantRate);
  if (g_sgemm_gflops > 0) {
    state.counters["of_sgemm"] = gflops / g_sgemm_gflops;
  }
  if (g_conv_gemm_gflops > 0) {
    state.counters["of_conv_gemm"] = gflops / g_conv_gemm_gflops;
  }
}

void register_backbones() {
  struct Net {
    const char* name;
    int64_t image;
  };
  for (const Net& n : {Net{"tiny", 32}, Net{"small", 64}, Net{"mbf", 112}, Net{"r50", 112}}) {
    for (const bool backward : {false, true}) {
      const std::string label = std::string("BM_") + (backward ? "ForwardBackward/" : "Forward/") +
                                n.name + "/" + std::to_string(n.image);
      benchmark::RegisterBenchmark(label.c_str(),
                                   [n, backward](benchmark::State& state) {
                                     run_backbone(state, n.name, n.image, backward);
                                   })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ffc::configure_allocator();
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::stoi(argv[i] + 10);
    } else {
      args.push_back(argv[i]);
    }
  }
  at::set_num_threads(threads > 0 ? threads : 1);
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) {
    return 1;
  }
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("batch", std::to_string(kBatch));
  register_backbones();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
