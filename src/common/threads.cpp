#include "common/threads.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace ffc {
namespace {

int positive_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    return 0;
  }
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end != v && *end == '\0' && n > 0 && n < 100000) ? static_cast<int>(n) : 0;
}

}  // namespace

int node_cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return node_cores();
  }
  return std::max(1, CPU_COUNT(&set));
}

ThreadChoice choose_num_threads(int64_t configured, int ranks_on_node) {
  if (configured > 0) {
    return {static_cast<int>(configured), "num_threads"};
  }
  if (const int omp = positive_env("OMP_NUM_THREADS")) {
    return {omp, "OMP_NUM_THREADS"};
  }
  if (const int slurm = positive_env("SLURM_CPUS_PER_TASK")) {
    return {slurm, "SLURM_CPUS_PER_TASK"};
  }
  const int share = node_cores() / std::max(1, ranks_on_node);
  const int n = std::max(1, std::min(affinity_cores(), share));
  return {n, "cores per node / ranks per node"};
}

}  // namespace ffc
