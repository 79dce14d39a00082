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

// World size and rank as the launcher announces them in the environment (Open MPI, PMIx, PMI,
// Slurm), readable before MPI is initialised; rank 0 of 1 without a launcher.
int launcher_rank();
int launcher_size();

// The library's own version text (MPI_Get_library_version; callable before MPI_Init).
std::string mpi_library_version();
// NCCL and CUDA runtime versions when built with them, else "not built".
std::string nccl_version();

// The world communicator of the chosen backend. kMpi and kNccl need init_mpi() first; kNccl
// selects the CUDA device of the node-local rank and bootstraps NCCL with an MPI broadcast.
std::unique_ptr<Communicator> make_world_communicator(Backend backend);

}  // namespace ffc::comm
