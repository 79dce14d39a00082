#pragma once
// Factories of the concrete communicators (internal to src/comm).

#include <memory>

#include "comm/communicator.h"

namespace ffc::comm {

std::unique_ptr<Communicator> make_mpi_communicator();
#if defined(FFC_WITH_NCCL)
std::unique_ptr<Communicator> make_nccl_communicator();
#endif

}  // namespace ffc::comm
