#include "comm/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "comm/backends.h"
#include "comm/mpi_check.h"
#include "common/logging.h"
#include "common/threads.h"

#if defined(FFC_WITH_NCCL)
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace ffc::comm {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return fallback;
  }
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0) ? static_cast<int>(n) : fallback;
}

// The environment variables launchers set, most specific first.
constexpr const char* kRankVars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                     "SLURM_PROCID"};
constexpr const char* kSizeVars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"};

}  // namespace

Backend parse_backend(const std::string& name) {
  if (name == "mpi") {
    return Backend::kMpi;
  }
  if (name == "nccl") {
    return Backend::kNccl;
  }
  if (name == "single") {
    return Backend::kSingle;
  }
  throw ConfigError("unknown communication backend '" + name + "'; use mpi, nccl or single");
}

int launcher_rank() {
  // As the environment said at the first call (main calls it before MPI starts): a singleton
  // MPI_Init writes rank 0 into the environment of every process of a launch without PMI.
  static const int rank = [] {
    for (const char* var : kRankVars) {
      const int r = env_int(var, -1);
      if (r >= 0) {
        return r;
      }
    }
    return 0;
  }();
  return rank;
}

int launcher_size() {
  for (const char* var : kSizeVars) {
    const int s = env_int(var, -1);
    if (s > 0) {
      return s;
    }
  }
  return 1;
}

int slurm_expected_world_size() {
  const char* job = std::getenv("SLURM_JOB_ID");
  if (job == nullptr || *job == '\0' || env_int("SLURM_NTASKS", -1) <= 0) {
    return 0;
  }
  if (env_int("OMPI_COMM_WORLD_SIZE", -1) > 0) {
    return 0;
  }
  const int step = env_int("SLURM_STEP_NUM_TASKS", -1);
  return step > 0 ? step : env_int("SLURM_NTASKS", 0);
}

void check_world_matches_slurm(int expected, int world_size) {
  if (expected <= 0 || expected == world_size) {
    return;
  }
  const char* job = std::getenv("SLURM_JOB_ID");
  const bool step = env_int("SLURM_STEP_NUM_TASKS", -1) > 0;
  std::string msg = "Slurm job " + std::string(job != nullptr ? job : "?") + " has " +
                    std::to_string(expected) + " task(s) (" +
                    (step ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS") + "=" +
                    std::to_string(expected) + ") but this MPI world has " +
                    std::to_string(world_size) + " rank(s). ";
  if (world_size == 1) {
    msg += step ? "srun started the tasks without wiring them into one MPI job (no PMI), so each "
                  "would train alone; launch with `srun --mpi=pmix` (`srun --mpi=list` shows what "
                  "this Slurm supports) or with mpirun inside the allocation"
                : "ffc was started directly in the batch script, outside srun; launch it with "
                  "`srun --mpi=pmix` (or mpirun), or run a single process with `srun -n 1`";
  } else {
    msg += "Launch as many ranks as the job step has tasks (srun -n, --ntasks-per-node)";
  }
  throw ConfigError(msg);
}

int slurm_step_tasks_on_node() {
  const char* spec = std::getenv("SLURM_STEP_TASKS_PER_NODE");
  const int node = env_int("SLURM_NODEID", -1);
  if (spec == nullptr || node < 0 || std::getenv("SLURM_STEP_ID") == nullptr) {
    return 0;
  }
  // Comma-separated "COUNT" or "COUNT(xREPEAT)", one entry per run of nodes.
  int first = 0;
  const char* p = spec;
  while (*p != '\0') {
    char* end = nullptr;
    const long count = std::strtol(p, &end, 10);
    if (end == p || count < 0) {
      return 0;
    }
    long repeat = 1;
    p = end;
    if (std::strncmp(p, "(x", 2) == 0) {
      repeat = std::strtol(p + 2, &end, 10);
      if (end == p + 2 || *end != ')' || repeat < 1) {
        return 0;
      }
      p = end + 1;
    }
    if (node < first + repeat) {
      return static_cast<int>(count);
    }
    first += static_cast<int>(repeat);
    if (*p == ',') {
      ++p;
    } else if (*p != '\0') {
      return 0;
    }
  }
  return 0;
}

std::string yield_when_oversubscribed(int threads_per_rank) {
  const char* set = std::getenv("OMPI_MCA_mpi_yield_when_idle");
  if ((set != nullptr && *set != '\0') || std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr) {
    return {};  // the user's choice, or mpirun's (which knows how it placed the ranks)
  }
  const int tasks = slurm_step_tasks_on_node();
  const int cores = affinity_cores();
  const int threads = std::max(1, threads_per_rank);
  if (tasks <= 1 || static_cast<int64_t>(tasks) * threads <= cores) {
    return {};
  }
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
  return std::to_string(tasks) + " rank(s) x " + std::to_string(threads) +
         " thread(s) on this node's " + std::to_string(cores) +
         " usable core(s): MPI yields the core while it waits (OMPI_MCA_mpi_yield_when_idle=1; "
         "docs/cluster.md)";
}

void init_mpi(int* argc, char*** argv) {
  int initialized = 0;
  FFC_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    FFC_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    if (provided < MPI_THREAD_FUNNELED) {
      spdlog::warn(
          "MPI provides thread level {} < MPI_THREAD_FUNNELED; only the main thread "
          "calls MPI, which is what ffc does",
          provided);
    }
  }
  // Failed calls return codes that FFC_MPI_CHECK turns into exceptions, instead of aborting
  // inside MPI without a message of ours.
  FFC_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  int rank = 0;
  int size = 1;
  FFC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  FFC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  set_process_identity(rank, size);
}

bool mpi_initialized() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void finalize_mpi() {
  if (mpi_initialized()) {
    MPI_Finalize();
  }
}

void abort_job(int code) {
  flush_logs();
  if (mpi_initialized()) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) {
      MPI_Abort(MPI_COMM_WORLD, code);
    }
    MPI_Finalize();
  }
  std::exit(code);
}

void end_job_on_fault(const std::string& message, int exit_code) {
  spdlog::error("{}; ending the job with exit status {} (docs/errors.md)", message, exit_code);
  abort_job_now(exit_code);
}

void abort_job_now(int code) {
  flush_logs();
  // MPI_Abort can wait for peers that are gone (a cut link, a dead node): a last resort ends the
  // process regardless.
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::_Exit(code);
  }).detach();
  if (mpi_initialized()) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) {
      MPI_Abort(MPI_COMM_WORLD, code);
    }
  }
  std::_Exit(code);
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) {
    return "unknown";
  }
  std::string s(text, static_cast<size_t>(len));
  // Open MPI appends build details after the first line.
  const auto nl = s.find_first_of("\r\n,");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string nccl_version() {
#if defined(FFC_WITH_NCCL)
  int nccl = 0;
  std::string out = "NCCL ";
  if (ncclGetVersion(&nccl) == ncclSuccess) {
    out += std::to_string(nccl / 10000) + "." + std::to_string((nccl / 100) % 100) + "." +
           std::to_string(nccl % 100);
  } else {
    out += "(version unavailable)";
  }
  int runtime = 0;
  out += ", CUDA runtime ";
  out += cudaRuntimeGetVersion(&runtime) == cudaSuccess
             ? std::to_string(runtime / 1000) + "." + std::to_string((runtime % 1000) / 10)
             : std::string("(unavailable)");
  out += " (built against CUDA " + std::to_string(CUDART_VERSION / 1000) + "." +
         std::to_string((CUDART_VERSION % 1000) / 10) + ")";
  return out;
#else
  return "not built (configure with FFC_WITH_NCCL=ON and a CUDA toolkit)";
#endif
}

std::unique_ptr<Communicator> make_world_communicator(Backend backend, const CommOptions& options) {
  switch (backend) {
    case Backend::kSingle:
      return make_single_process_communicator();
    case Backend::kMpi:
      FFC_CHECK(mpi_initialized(), "the mpi backend needs init_mpi() first");
      return make_mpi_communicator(&options);
    case Backend::kNccl:
#if defined(FFC_WITH_NCCL)
      FFC_CHECK(mpi_initialized(), "the nccl backend needs init_mpi() first (bootstrap)");
      return make_nccl_communicator(options);
#else
      (void)options;
      throw ConfigError(
          "this ffc was built without NCCL; rebuild with a CUDA toolkit and NCCL "
          "(cmake -DFFC_WITH_NCCL=ON) or use the mpi backend");
#endif
  }
  throw Error("unknown communication backend");
}

}  // namespace ffc::comm
