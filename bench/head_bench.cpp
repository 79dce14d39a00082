// Classification heads on the CPU, one process (the single-process communicator, world size 1):
// a training step of FC, Partial FC, Virtual FC and FFC at several class counts N, FFC's dynamic
// pool (insert, lookup) and the sharded softmax cross-entropy. Batch 128 random L2-normalised
// features of dimension D (128: about a minute on a 2-core machine; --dim=512, insightface's
// embedding, takes about 2.5 times as long, mostly in building FC's and Partial FC's N x D
// weights at N = 1e6), random labels in [0, N).
//
//   build/bin/head_bench [--threads=N] [--dim=D] [--profile] [--benchmark_filter=Step]
// --threads sets LibTorch's intra-op threads (default: LibTorch's own choice). --profile prints,
// after each step benchmark, its operators by self time (LibTorch's profiler, two more steps).
//
// Step benchmarks (BM_Step/<method>/N:<n>) time what a head does in one training step:
//   fc, pfc  forward (logits, distributed softmax, feature and weight gradients), backward to the
//            features and ClassifierHead::step (SGD with momentum on the rows used). FC scores
//            all N classes (sample_rate 1), Partial FC int(0.1 N) (sample_rate 0.1).
//   vfc      forward and autograd backward over M = 1000 virtual rows (the head has no step of
//            its own: the trainer's optimiser updates the rows with the backbone).
//   ffc      FFC's two passes (A: probe x, gallery y, rolled back; B: probe y, gallery x, kept;
//            the same identities in both views, as the dual loader gives them) and the backward
//            to both probes, on a pool of Q = max(ceil(N/100), 128) slots filled before timing.
//            Nothing FFC allocates grows with N beyond Q.
// Counters:
//   GFLOP/s        the analytic head FLOPs of a step (those of src/plan/plan.cpp's
//                  head_flops_per_step, at world size 1) / time:
//                    fc 6 B N D, pfc 6 B int(rN) D, vfc 6 B M D, ffc 2 passes x 4 B Q D
//                  (logits, feature gradient and, except FFC, weight gradient: 2 B x cols x D
//                  each); the softmax, margin, sampling and pool work are not counted
//   peak_fraction  GFLOP/s / BM_Sgemm's (at::mm_out 2048^3 into a preallocated output, the same
//                  baseline as model_bench; it runs first)
// Pool benchmarks:
//   BM_PoolInsert/Q:<q>/G:<g>/journal:<0|1>  inserts gathered gallery batches of G labels drawn
//       from 2Q identities into a full pool of Q slots (about half hits, half misses that evict
//       the least recently seen; rows written), with journal=1 followed by the rollback as in
//       FFC's pass A. items/s: labels inserted per second; hit_rate: the hits' share.
//   BM_PoolLookup/Q:<q>/n:<n>  DynamicPool::lookup of n labels (half present). items/s: labels.
// Softmax benchmarks:
//   BM_SoftmaxCE/rows:<r>/cols:<c>  softmax_ce_ (margin, distributed max and sum over one rank,
//       gradient in place) on a [rows, cols] float buffer; each iteration first restores the
//       cosines into the buffer (one copy, standing in for the matmul that writes them in a
//       head). bytes/s: the buffer's bytes (4 rows cols) per second; items/s: logits per second.
//
// Iteration counts are fixed (from the analytic cost), so each head is built once per benchmark;
// one untimed warm-up step precedes the timed ones.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "common/memory.h"
#include "head/classifier_head.h"
#include "head/dynamic_pool.h"
#include "head/ffc_head.h"
#include "head/margin.h"
#include "head/sharded_softmax.h"
#include "head/vfc_head.h"
#include "sgemm.h"

namespace {

using benchmark::Counter;
using ffc::head::MarginSpec;
using ffc::head::MarginType;

constexpr int64_t kBatch = 128;
int64_t g_dim = 128;  // --dim
constexpr int64_t kVfcRows = 1000;
constexpr double kPfcRate = 0.1;
constexpr int kLabelBatches = 8;  // label batches cycled through by the step benchmarks
double g_sgemm_gflops = 0;        // set by BM_Sgemm
bool g_profile = false;           // --profile

void BM_Sgemm(benchmark::State& state) {
  g_sgemm_gflops = ffc::bench::run_sgemm(state);
}
BENCHMARK(BM_Sgemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

at::Tensor normalized(int64_t rows, int64_t dim) {
  const at::Tensor f = at::randn({rows, dim});
  return f / f.norm(2, 1, true);
}

// The project's margins per method (head::margin_from_config's "auto").
MarginSpec insightface_margin() {
  return MarginSpec{};  // combined (1, 0.5, 0), scale 64
}

MarginSpec scaled_margin(MarginType type) {
  MarginSpec m;
  m.type = type;
  m.m1 = 1.0;
  m.m2 = type == MarginType::kArc ? 0.5 : 0.0;
  m.m3 = type == MarginType::kAm ? 0.5 : 0.0;
  m.scale = 32.0;
  return m;
}

// Fixed iteration count for about 1e11 FLOPs (about a second at this machine's peak).
int64_t iterations_for(double flops) {
  return std::clamp<int64_t>(std::llround(1e11 / flops), 2, 200);
}

enum class Method { kFc, kPfc, kVfc, kFfc };

const char* method_name(Method m) {
  switch (m) {
    case Method::kFc:
      return "fc";
    case Method::kPfc:
      return "pfc";
    case Method::kVfc:
      return "vfc";
    case Method::kFfc:
      return "ffc";
  }
  return "?";
}

int64_t ffc_pool(int64_t n) {
  return std::max<int64_t>((n + 99) / 100, kBatch);
}

double step_flops(Method m, int64_t n) {
  const double b = kBatch;
  const double d = g_dim;
  switch (m) {
    case Method::kFc:
      return 6 * b * static_cast<double>(n) * d;
    case Method::kPfc:
      return 6 * b * std::floor(kPfcRate * static_cast<double>(n)) * d;
    case Method::kVfc:
      return 6 * b * kVfcRows * d;
    case Method::kFfc:
      return 2 * 4 * b * static_cast<double>(ffc_pool(n)) * d;
  }
  return 0;
}

// --profile: runs `step` `steps` times under LibTorch's profiler and prints, per operator (ATen's
// and the heads' own RECORD_FUNCTION scopes), its self time per step: where a step goes.
template <typename Step>
void profile_steps(const std::string& label, int steps, Step&& step) {
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(prof::ProfilerConfig(prof::ProfilerState::CPU));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    step();
  }
  const double total_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  const auto lists = prof::disableProfilerLegacy();
  std::map<std::string, double> self_us;
  for (const auto& events : lists) {
    struct Open {
      const prof::LegacyEvent* push;
      double children;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open o = stack.back();
        stack.pop_back();
        const double us = o.push->cpuElapsedUs(e);
        self_us[o.push->name()] += us - o.children;
        if (!stack.empty()) {
          stack.back().children += us;
        }
      }
    }
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [name, us] : self_us) {
    rows.emplace_back(us, name);
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("profile %s: %.1f ms a step (%d steps; operators by self time, all threads)\n",
              label.c_str(), total_us / steps / 1e3, steps);
  for (size_t k = 0; k < std::min<size_t>(rows.size(), 14); ++k) {
    std::printf("  %8.2f ms  %5.1f%%  %s\n", rows[k].first / steps / 1e3,
                100.0 * rows[k].first / total_us, rows[k].second.c_str());
  }
}

// A leaf tensor whose gradient the step computes; the gradient is dropped before the next step.
struct Probe {
  at::Tensor f;
  Probe() : f(normalized(kBatch, g_dim).set_requires_grad(true)) {}
  void clear() { f.mutable_grad() = at::Tensor(); }
};

void run_step(benchmark::State& state, Method method, int64_t n) {
  at::manual_seed(0);
  auto comm = ffc::comm::make_single_process_communicator();
  std::vector<at::Tensor> labels;
  for (int k = 0; k < kLabelBatches; ++k) {
    labels.push_back(at::randint(n, {kBatch}, at::kLong));
  }
  Probe x;
  Probe y;
  const at::Tensor gx = normalized(kBatch, g_dim);
  const at::Tensor gy = normalized(kBatch, g_dim);

  std::unique_ptr<ffc::head::ClassifierHead> classifier;
  std::unique_ptr<ffc::head::VfcHead> vfc;
  std::unique_ptr<ffc::head::FfcHead> ffc_head;
  if (method == Method::kFc || method == Method::kPfc) {
    ffc::head::ClassifierOptions o;
    o.num_classes = n;
    o.dim = g_dim;
    o.partial = method == Method::kPfc;
    o.sample_rate = o.partial ? kPfcRate : 1.0;
    o.margin = insightface_margin();
    classifier = std::make_unique<ffc::head::ClassifierHead>(o, *comm);
  } else if (method == Method::kVfc) {
    ffc::head::VfcOptions o;
    o.rows = kVfcRows;
    o.dim = g_dim;
    o.margin = scaled_margin(MarginType::kArc);
    vfc = std::make_unique<ffc::head::VfcHead>(o, *comm);
  } else {
    ffc::head::FfcHeadOptions o;
    o.pool_size = ffc_pool(n);
    o.dim = g_dim;
    o.fresh_k = ffc::head::default_fresh_k(o.pool_size);
    o.margin = scaled_margin(MarginType::kAm);
    ffc_head = std::make_unique<ffc::head::FfcHead>(o, *comm);
    // Fill every slot, so that the logits span the whole pool from the first timed step.
    std::vector<int64_t> refreshed;
    ffc::head::DynamicPool& pool = ffc_head->pool();
    while (pool.filled() < pool.capacity()) {
      const int64_t c = std::min<int64_t>(4096, pool.capacity() - pool.filled());
      pool.insert(at::randint(n, {c}, at::kLong), normalized(c, g_dim), false, refreshed);
    }
  }

  int64_t k = 0;
  auto step = [&] {
    const at::Tensor& l = labels[static_cast<size_t>(k++ % kLabelBatches)];
    if (classifier) {
      classifier->forward(x.f, l, nullptr).sum().backward();
      classifier->step(0.1);
      x.clear();
    } else if (vfc) {
      vfc->forward(x.f, l, nullptr).backward();
      vfc->weight().mutable_grad().zero_();
      x.clear();
    } else {
      at::Tensor loss = ffc_head->pass(x.f, l, gy, l, true, nullptr).sum();
      loss = loss + ffc_head->pass(y.f, l, gx, l, false, nullptr).sum();
      loss.backward();
      x.clear();
      y.clear();
    }
  };
  step();  // warm-up: buffers sized and touched, kernels selected
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    step();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (g_profile) {
    profile_steps(std::string(method_name(method)) + " N=" + std::to_string(n), 2, step);
  }
  const double flops = step_flops(method, n);
  const double gflops = flops * static_cast<double>(state.iterations()) / seconds / 1e9;
  state.counters["GFLOP/s"] = Counter(flops / 1e9, Counter::kIsIterationInvariantRate);
  state.counters["samples/s"] = Counter(kBatch, Counter::kIsIterationInvariantRate);
  if (g_sgemm_gflops > 0) {
    state.counters["peak_fraction"] = gflops / g_sgemm_gflops;
  }
  if (ffc_head) {
    state.counters["Q"] = static_cast<double>(ffc_head->pool().capacity());
  }
}

void register_steps() {
  struct Case {
    Method method;
    std::vector<int64_t> n;
  };
  const Case cases[] = {{Method::kFc, {10'000, 100'000, 1'000'000}},
                        {Method::kPfc, {10'000, 100'000, 1'000'000}},
                        {Method::kVfc, {100'000, 1'000'000, 10'000'000}},
                        {Method::kFfc, {100'000, 1'000'000, 10'000'000}}};
  for (const Case& c : cases) {
    for (const int64_t n : c.n) {
      const std::string label =
          std::string("BM_Step/") + method_name(c.method) + "/N:" + std::to_string(n);
      const Method m = c.method;
      benchmark::RegisterBenchmark(label.c_str(),
                                   [m, n](benchmark::State& state) { run_step(state, m, n); })
          ->Iterations(iterations_for(step_flops(m, n)))
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
}

// ---------------------------------------------------------------- the pool

// A full pool of q slots holding q of the identities [0, 2q).
std::unique_ptr<ffc::head::DynamicPool> full_pool(int64_t q) {
  auto pool = std::make_unique<ffc::head::DynamicPool>(q, g_dim, 0, 1,
                                                       ffc::head::Placement::kReplicated, false, 0);
  std::vector<int64_t> refreshed;
  const at::Tensor ids = at::randperm(2 * q, at::kLong).narrow(0, 0, q);
  const int64_t chunk = 4096;
  for (int64_t s = 0; s < q; s += chunk) {
    const int64_t c = std::min(chunk, q - s);
    pool->insert(ids.narrow(0, s, c), normalized(c, g_dim), false, refreshed);
  }
  return pool;
}

void BM_PoolInsert(benchmark::State& state) {
  const int64_t q = state.range(0);
  const int64_t g = state.range(1);
  const bool journal = state.range(2) != 0;
  at::manual_seed(0);
  auto pool = full_pool(q);
  // Fresh labels for every iteration (a cycle of a few batches would soon all be present).
  const int64_t iterations = static_cast<int64_t>(state.max_iterations);
  const at::Tensor labels = at::randint(2 * q, {iterations, g}, at::kLong);
  const at::Tensor features = normalized(g, g_dim);
  std::vector<int64_t> refreshed;
  int64_t hits = 0;
  int64_t total = 0;
  int64_t k = 0;
  for (auto _ : state) {
    const ffc::head::InsertStats s = pool->insert(labels[k++], features, journal, refreshed);
    if (journal) {
      pool->rollback();
    }
    hits += s.refreshed;
    total += g;
  }
  state.SetItemsProcessed(total);
  state.counters["hit_rate"] = total > 0 ? static_cast<double>(hits) / total : 0.0;
}

void BM_PoolLookup(benchmark::State& state) {
  const int64_t q = state.range(0);
  const int64_t n = state.range(1);
  at::manual_seed(0);
  const auto pool = full_pool(q);
  const at::Tensor labels = at::randint(2 * q, {n}, at::kLong);
  for (auto _ : state) {
    benchmark::DoNotOptimize(pool->lookup(labels).data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * n);
}

void register_pool() {
  for (const int64_t q : {10'000, 100'000}) {
    for (const int64_t g : {128, 1024}) {
      for (const int64_t journal : {0, 1}) {
        benchmark::RegisterBenchmark("BM_PoolInsert", BM_PoolInsert)
            ->Args({q, g, journal})
            ->ArgNames({"Q", "G", "journal"})
            ->Iterations(g == 128 ? 2000 : 500)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
    for (const int64_t n : {128, 4096}) {
      benchmark::RegisterBenchmark("BM_PoolLookup", BM_PoolLookup)
          ->Args({q, n})
          ->ArgNames({"Q", "n"})
          ->Iterations(n == 128 ? 20000 : 2000)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
}

// ---------------------------------------------------------------- the sharded softmax

void BM_SoftmaxCE(benchmark::State& state) {
  const int64_t rows = state.range(0);
  const int64_t cols = state.range(1);
  at::manual_seed(0);
  auto comm = ffc::comm::make_single_process_communicator();
  const at::Tensor source = at::rand({rows, cols}) * 1.8 - 0.9;
  at::Tensor cos = source.clone();
  ffc::head::CeTargets targets;
  targets.column = at::randint(cols, {rows}, at::kLong);
  targets.weight = at::full({rows}, 1.0 / static_cast<double>(rows), at::kFloat);
  const MarginSpec margin = insightface_margin();
  ffc::head::softmax_ce_(cos, targets, margin, *comm);  // warm-up
  for (auto _ : state) {
    state.PauseTiming();  // the matmul that writes the logits in a head is not the softmax's
    cos.copy_(source);
    state.ResumeTiming();
    benchmark::DoNotOptimize(ffc::head::softmax_ce_(cos, targets, margin, *comm).loss);
  }
  state.SetBytesProcessed(state.iterations() * rows * cols * 4);
  state.SetItemsProcessed(state.iterations() * rows * cols);
}

void register_softmax() {
  for (const int64_t cols : {1'000, 10'000, 100'000, 1'000'000}) {
    const int64_t rows = kBatch;
    const int64_t bytes = rows * cols * 4;
    benchmark::RegisterBenchmark("BM_SoftmaxCE", BM_SoftmaxCE)
        ->Args({rows, cols})
        ->ArgNames({"rows", "cols"})
        ->Iterations(std::clamp<int64_t>((int64_t{2} << 30) / bytes, 4, 2000))
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  ffc::configure_allocator();
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      at::set_num_threads(std::max(std::stoi(argv[i] + 10), 1));
    } else if (std::strcmp(argv[i], "--profile") == 0) {
      g_profile = true;
    } else if (std::strncmp(argv[i], "--dim=", 6) == 0) {
      g_dim = std::max<int64_t>(std::stoll(argv[i] + 6), 1);
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) {
    return 1;
  }
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("batch", std::to_string(kBatch));
  benchmark::AddCustomContext("dim", std::to_string(g_dim));
  register_steps();
  register_pool();
  register_softmax();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
