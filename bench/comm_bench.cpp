// Collective bandwidth: ffc's MpiCommunicator beside raw MPI calls on the same buffers, in the
// same run. Sizes are the full message (nccl-tests convention): for all-gather, the gathered
// output. Counters: algbw = size / time; busbw = algbw * 2(P-1)/P for all-reduce and
// algbw * (P-1)/P for all-gather, the link traffic of a ring algorithm.
//
//   mpiexec -n 2 build/bin/comm_bench [--benchmark_filter=AllReduce]

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <algorithm>
#include <memory>

#include "comm/communicator.h"
#include "comm/runtime.h"
#include "comm/watchdog.h"
#include "common/memory.h"

namespace {

std::unique_ptr<ffc::comm::Communicator> g_comm;

constexpr int64_t kMinBytes = 64;
constexpr int64_t kMaxBytes = int64_t{64} << 20;

// Fixed iteration counts so that every rank runs the same number of collectives.
int64_t iterations_for(int64_t bytes) {
  return std::clamp<int64_t>((int64_t{256} << 20) / bytes, 10, 2000);
}

void set_counters(benchmark::State& state, int64_t bytes, double bus_factor) {
  using benchmark::Counter;
  state.counters["algbw"] =
      Counter(static_cast<double>(bytes), Counter::kIsIterationInvariantRate, Counter::kIs1024);
  state.counters["busbw"] = Counter(static_cast<double>(bytes) * bus_factor,
                                    Counter::kIsIterationInvariantRate, Counter::kIs1024);
}

double allreduce_bus_factor() {
  const double p = g_comm->size();
  return p > 1 ? 2.0 * (p - 1) / p : 1.0;
}

double allgather_bus_factor() {
  const double p = g_comm->size();
  return p > 1 ? (p - 1) / p : 1.0;
}

void BM_AllReduce_ffc(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  at::Tensor t = at::ones({bytes / 4}, at::kFloat);
  g_comm->all_reduce(t, ffc::comm::ReduceOp::kSum);  // warm-up, first touch
  g_comm->barrier();
  for (auto _ : state) {
    g_comm->all_reduce(t, ffc::comm::ReduceOp::kSum);
  }
  set_counters(state, bytes, allreduce_bus_factor());
}

// The same with the process's watchdog set aside: the cost of watching every collective (two
// atomic stores and a clock read per call) is the difference to AllReduce_ffc.
void BM_AllReduce_ffc_unwatched(benchmark::State& state) {
  ffc::comm::Watchdog* dog = ffc::comm::process_watchdog();
  ffc::comm::set_process_watchdog(nullptr);
  BM_AllReduce_ffc(state);
  ffc::comm::set_process_watchdog(dog);
}

void BM_AllReduce_rawMPI(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  at::Tensor t = at::ones({bytes / 4}, at::kFloat);
  const int n = static_cast<int>(t.numel());
  MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  for (auto _ : state) {
    MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  set_counters(state, bytes, allreduce_bus_factor());
}

void BM_AllGather_ffc(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  const int64_t p = g_comm->size();
  at::Tensor in = at::ones({bytes / 4 / p}, at::kFloat);
  at::Tensor out = at::empty({in.numel() * p}, at::kFloat);
  g_comm->all_gather(in, out);
  g_comm->barrier();
  for (auto _ : state) {
    g_comm->all_gather(in, out);
  }
  set_counters(state, bytes, allgather_bus_factor());
}

void BM_AllGather_rawMPI(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  const int64_t p = g_comm->size();
  at::Tensor in = at::ones({bytes / 4 / p}, at::kFloat);
  at::Tensor out = at::empty({in.numel() * p}, at::kFloat);
  const int n = static_cast<int>(in.numel());
  MPI_Allgather(in.data_ptr(), n, MPI_FLOAT, out.data_ptr(), n, MPI_FLOAT, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  for (auto _ : state) {
    MPI_Allgather(in.data_ptr(), n, MPI_FLOAT, out.data_ptr(), n, MPI_FLOAT, MPI_COMM_WORLD);
  }
  set_counters(state, bytes, allgather_bus_factor());
}

// Registered per size so that each size gets its own fixed iteration count.
void register_all() {
  using Fn = void (*)(benchmark::State&);
  const std::pair<const char*, Fn> benches[] = {
      {"AllReduce_ffc", BM_AllReduce_ffc},
      {"AllReduce_ffc_unwatched", BM_AllReduce_ffc_unwatched},
      {"AllReduce_rawMPI", BM_AllReduce_rawMPI},
      {"AllGather_ffc", BM_AllGather_ffc},
      {"AllGather_rawMPI", BM_AllGather_rawMPI}};
  for (const auto& [name, fn] : benches) {
    for (int64_t bytes = kMinBytes; bytes <= kMaxBytes; bytes *= 4) {
      benchmark::RegisterBenchmark(name, fn)
          ->Arg(bytes)
          ->Iterations(iterations_for(bytes))
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

// Ranks other than 0 run the same benchmarks silently.
class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  ffc::configure_allocator();
  ffc::comm::init_mpi(&argc, &argv);
  g_comm = ffc::comm::make_world_communicator(ffc::comm::Backend::kMpi);
  at::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  register_all();
  if (g_comm->rank() == 0) {
    benchmark::AddCustomContext("ranks", std::to_string(g_comm->size()));
    benchmark::AddCustomContext("mpi", ffc::comm::mpi_library_version());
    benchmark::RunSpecifiedBenchmarks();
  } else {
    NullReporter null;
    benchmark::RunSpecifiedBenchmarks(&null);
  }
  benchmark::Shutdown();
  g_comm.reset();
  ffc::comm::finalize_mpi();
  return 0;
}
