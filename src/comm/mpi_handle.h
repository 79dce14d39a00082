#pragma once
// The MPI communicator under a Communicator, for the one other library that needs MPI handles:
// parallel HDF5 (src/ckpt). Only src/comm and src/ckpt include this header.

#include <mpi.h>

#include "comm/communicator.h"

namespace ffc::comm {

// MPI_COMM_NULL for a communicator without MPI (the single-process backend).
inline MPI_Comm mpi_comm(const Communicator& comm) {
  const void* p = comm.native_mpi_comm();
  return p == nullptr ? MPI_COMM_NULL : *static_cast<const MPI_Comm*>(p);
}

}  // namespace ffc::comm
