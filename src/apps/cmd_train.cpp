// `ffc train`: train as configured, under mpirun/srun or as a single process.

#include <iostream>

#include "apps/commands.h"
#include "apps/guarded_main.h"
#include "common/error.h"
#include "common/signals.h"
#include "train/trainer.h"

namespace ffc::app {

int run_train(const TrainCommand& cmd) {
  const Config config = resolve_config(cmd.config);
  if (cmd.config.dump) {
    std::cout << dump_config(config);
    return 0;
  }
  // Before MPI and the data start (which can take a while at scale): a preemption signal that
  // arrives during start-up then stops the run at its first step, saved, instead of killing it.
  install_stop_signal_handlers();
  Session session = start_session(config, comm::parse_backend(cmd.backend));
  const std::string resume = !cmd.resume.empty() ? cmd.resume : config.resume;
  const train::TrainResult r = train::train(config, *session.comm, resume);
  return r.stopped_by_signal ? kExitSavedOnSignal : kExitOk;
}

}  // namespace ffc::app
