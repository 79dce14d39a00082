#pragma once
// How many compute threads a rank uses. Two ranks on two cores must not both start two threads.

#include <cstdint>
#include <string>

namespace ffc {

struct ThreadChoice {
  int threads = 1;
  std::string reason;  // which rule decided, for the start-up log line
};

// Resolution, first rule that applies:
//   1. `configured` > 0 (Config::num_threads);
//   2. OMP_NUM_THREADS set to a positive integer;
//   3. SLURM_CPUS_PER_TASK set (srun --cpus-per-task);
//   4. max(1, min(cores usable by this process, cores of the node / ranks on the node)).
ThreadChoice choose_num_threads(int64_t configured, int ranks_on_node);

// Cores of the node (std::thread::hardware_concurrency) and cores in this process's affinity mask.
int node_cores();
int affinity_cores();

}  // namespace ffc
