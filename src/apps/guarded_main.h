#pragma once
// The entry point shared by every ffc executable: errors are caught, logged with the rank and
// host, turned into an exit status (docs/errors.md), and when other ranks exist the whole job is
// taken down with MPI_Abort so that no rank is left waiting in a collective.

#include <functional>
#include <memory>

#include "comm/communicator.h"
#include "comm/runtime.h"
#include "common/config.h"
#include "common/threads.h"

namespace ffc::app {

// Runs `body` and returns its exit status, or the status of the error it threw. Finalises MPI on
// the normal path; aborts the job on the error path when the world has more than one rank.
int guarded_main(const std::function<int()>& body);

// What a distributed subcommand starts with.
struct Session {
  std::unique_ptr<comm::Communicator> comm;
  ThreadChoice threads;
};

// Initialises MPI (unless the backend is single), builds the world communicator, sets logging
// for this rank and the LibTorch/OpenMP threads of this rank, and logs one line about the world.
Session start_session(const Config& config, comm::Backend backend);

}  // namespace ffc::app
