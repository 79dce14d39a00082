#pragma once
// SIGUSR1 and SIGTERM only set a flag; the training loop polls it at step boundaries and the ranks
// agree on it with a collective (comm::any_rank), then save and exit with kExitSavedOnSignal.

namespace ffc {

// Installs the handlers for SIGUSR1 and SIGTERM (idempotent).
void install_stop_signal_handlers();
// True once SIGUSR1 or SIGTERM was received by this process.
bool stop_signal_received();
// The number of the last stop signal received, 0 if none.
int last_stop_signal();
// Clears the flag (tests, and after a save that handled it).
void clear_stop_signal();

}  // namespace ffc
