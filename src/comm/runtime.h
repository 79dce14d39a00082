#pragma once
// Process-level MPI life cycle and the world communicator. MPI is initialised lazily, only by the
// subcommands that need it, so `ffc --help` works without a launcher.

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace ffc::comm {

enum class Backend { kMpi, kNccl, kSingle };
Backend parse_backend(const std::string& name);  // "mpi", "nccl", "single"

// Initialises MPI (thread level FUNNELED: only the main thread calls MPI) unless already done,
// finds this process's node-local rank, and records rank/size for error messages. Works as a
// singleton without mpirun.
void init_mpi(int* argc, char*** argv);
bool mpi_initialized();
// MPI_Finalize if MPI was initialised and not finalised yet. Called on the normal exit path only,
// never from a destructor.
void finalize_mpi();
// Takes the whole job down: MPI_Abort on MPI_COMM_WORLD when MPI is up and the world has more
// than one rank, else std::exit. Never returns.
[[noreturn]] void abort_job(int code);
// The same from any thread, while the main thread may be blocked inside MPI (the watchdog's
// verdict): flushes the logs, calls MPI_Abort, and leaves with std::_Exit(code) if MPI_Abort has
// not ended the process within a few seconds (it may wait for peers that are gone). No
// destructors, no MPI_Finalize.
[[noreturn]] void abort_job_now(int code);

// World size and rank as the launcher announces them in the environment (Open MPI, PMIx, PMI,
// Slurm), readable before MPI is initialised; rank 0 of 1 without a launcher. The rank is read
// once, at the first call, so that it is the launcher's and not what MPI_Init may add.
int launcher_rank();
int launcher_size();

// Under Slurm (SLURM_JOB_ID and SLURM_NTASKS set), the number of ranks the world must have: the
// tasks of this srun step (SLURM_STEP_NUM_TASKS), else of the job (SLURM_NTASKS, e.g. a process
// started directly in a batch script). 0 when not under Slurm or when the ranks were started by
// Open MPI's mpirun (OMPI_COMM_WORLD_SIZE set), whose -n is the user's choice and whose daemons
// carry the SLURM_NTASKS of their own step. Read it before MPI starts.
int slurm_expected_world_size();
// Throws ConfigError, saying how to launch, when `expected` > 0 and differs from `world_size`: a
// launch without PMI (srun --mpi=none, or an MPI that srun cannot wire up) silently starts
// SLURM_NTASKS separate single-rank runs, each training alone on its shard.
void check_world_matches_slurm(int expected, int world_size);

// Tasks of this srun step on this node (SLURM_STEP_TASKS_PER_NODE at SLURM_NODEID, e.g. "2(x3),1"),
// or 0 when not started by srun.
int slurm_step_tasks_on_node();
// Call before init_mpi. Open MPI's ranks busy-poll while they wait in a collective; mpirun tells
// them to yield when it places more ranks than a node has slots, but ranks started by srun are
// not told. When this node's srun tasks x threads_per_rank exceed the cores this process may use,
// sets OMPI_MCA_mpi_yield_when_idle=1 (unless the user set it) and returns a line saying so for
// the log; else returns "". Without it such ranks spend the cores that computing ranks need (a
// 4.3 MiB checkpoint at 4 ranks on 2 cores took 40 s instead of 0.4; docs/cluster.md).
std::string yield_when_oversubscribed(int threads_per_rank);

// The library's own version text (MPI_Get_library_version; callable before MPI_Init).
std::string mpi_library_version();
// NCCL and CUDA runtime versions when built with them, else "not built".
std::string nccl_version();

struct CommOptions {
  // Every backend: a collective pending longer than this many seconds ends the job with exit
  // status kExitStalled (config comm_timeout; comm/watchdog.h); 0 turns the watchdog off. With
  // NCCL an asynchronous NCCL error also ends it, at once, after aborting NCCL.
  double comm_timeout_seconds = 600;
  // How often the watchdog looks at what is pending (and NCCL's asynchronous error state).
  double poll_seconds = 0.1;
};

// The world communicator of the chosen backend. kMpi and kNccl need init_mpi() first; kNccl
// selects the CUDA device of the node-local rank and bootstraps NCCL with an MPI broadcast. With
// more than one rank, kMpi and kNccl start the process's watchdog (comm/watchdog.h), which lives
// as long as the communicator.
std::unique_ptr<Communicator> make_world_communicator(Backend backend,
                                                      const CommOptions& options = {});

}  // namespace ffc::comm
