#pragma once
// Factories of the concrete communicators (internal to src/comm).

#include <memory>

#include "comm/communicator.h"
#include "comm/runtime.h"

namespace ffc::comm {

// `watch`: the world communicator, which starts the process's watchdog with these options (when it
// has more than one rank and comm_timeout_seconds > 0); nullptr: a communicator whose collectives
// are watched by the watchdog that runs, if any (the NCCL communicator's host()).
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions* watch = nullptr);
// The fault handler of a world watchdog: logs the verdict and ends the job (abort_job_now).
void end_job_on_fault(const std::string& message, int exit_code);
#if defined(FFC_WITH_NCCL)
std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options);
#endif

}  // namespace ffc::comm
