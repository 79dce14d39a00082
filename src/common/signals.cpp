#include "common/signals.h"

#include <csignal>

namespace ffc {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
  g_stop_signal = sig;
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool stop_signal_received() {
  return g_stop_signal != 0;
}

int last_stop_signal() {
  return static_cast<int>(g_stop_signal);
}

void clear_stop_signal() {
  g_stop_signal = 0;
}

}  // namespace ffc
