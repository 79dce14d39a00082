#pragma once
// Factories of the concrete communicators (internal to src/comm).

#include <memory>

#include "comm/communicator.h"
#include "comm/runtime.h"

namespace ffc::comm {

std::unique_ptr<Communicator> make_mpi_communicator();
#if defined(FFC_WITH_NCCL)
std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options);
#endif

}  // namespace ffc::comm
