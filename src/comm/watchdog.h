#pragma once
// The progress watchdog of every backend (docs/errors.md, "When a job stalls"): a thread that
// polls what this process waits for and ends the job when something stays pending too long, so
// that a dead or stopped rank, a cut link or a stuck filesystem never leaves the others waiting
// until the job's time limit. It watches
//   - asynchronous operations in flight (the NCCL communicator's collectives, each followed by an
//     event), oldest first, and the backend's asynchronous error state;
//   - the blocking collective of the thread that calls MPI (the MPI communicator's), marked by
//     begin_collective / end_collective: atomic stores only, no lock, no allocation;
//   - a phase with a bound of its own (a checkpoint save or load, a communicator's start), inside
//     which collectives are bounded by the phase's deadline: a fast rank legitimately waits there
//     for a slow one to write its part.
// A fault (an operation that failed, or one pending past its bound) calls `on_fault` once, with a
// message naming the operation, its sequence number and size, the step and the stage, and, from
// the ranks' reports, which ranks had not arrived; the handler ends the process (comm/runtime.h,
// abort_job_now). A rank stuck in a collective after a stop signal (SIGUSR1/SIGTERM) leaves
// stop_grace seconds later: its peers are gone, so it could never save.
//
// Reports: when a collective or phase has been pending for half its bound, the watchdog writes
// one line about it to <report_dir>/rank-<r> (a shared folder: the run's output); at the fault it
// reads every rank's line. Ranks waiting in the same collective have arrived; the others had not
// (stopped, dead, cut off, or elsewhere). Nothing is written while the job makes progress.
//
// Torch-free and CUDA-free, so the mechanism is tested on the CPU.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace ffc::comm {

class Watchdog {
 public:
  // What an asynchronous operation's poll says.
  enum class State { kPending, kDone, kFailed };
  // Polled from the watchdog thread; on kFailed it fills the message.
  using Poll = std::function<State(std::string& message)>;
  // Returns an empty string, or a message when the backend reports an asynchronous error.
  using AsyncError = std::function<std::string()>;
  // The verdict: what happened, and the exit status the job should end with.
  using Fault = std::function<void(const std::string& message, int exit_code)>;

  struct Options {
    double timeout_seconds = 600;    // a collective pending longer is a fault (comm_timeout)
    double poll_seconds = 0.1;       // how often the thread looks
    double stop_grace_seconds = 10;  // after a stop signal, a collective pending this long
    int exit_code = kExitStalled;    // the status of a collective's fault
  };

  Watchdog(const Options& options, AsyncError async_error, Fault on_fault);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Watches an asynchronous operation until its poll says done. Operations complete in the order
  // they were watched (a stream's order), so only the oldest is polled each round.
  void watch(std::string what, Poll poll);

  // A blocking collective of the calling thread: `op` must be a string literal (it is kept, not
  // copied). Returns its sequence number.
  uint64_t begin_collective(const char* op, int64_t bytes);
  void end_collective();

  // A phase with a deadline of its own. On a fault inside it, `cleanup` runs first (e.g. removing
  // a partial file) and the job ends with `exit_code`. Phases do not nest: a second begin
  // replaces the first.
  void begin_phase(std::string what, double timeout_seconds, int exit_code,
                   std::function<void()> cleanup = {});
  void end_phase();

  // Where the process is, for the messages: the step (-1: none) and the stage (a string literal).
  void set_step(int64_t step) { step_.store(step, std::memory_order_relaxed); }
  void set_stage(const char* stage) { stage_.store(stage, std::memory_order_relaxed); }

  // Enables the ranks' reports in `dir` (created when needed) for this rank; `hosts` names every
  // rank's host; `run` tells this job's reports from older ones in the same folder.
  void set_reports(std::string dir, int rank, std::vector<std::string> hosts, uint64_t run);

  size_t pending() const;
  bool faulted() const;
  double timeout_seconds() const { return options_.timeout_seconds; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Op {
    std::string what;
    Poll poll;
    Clock::time_point since;
  };
  struct Phase {
    std::string what;
    double timeout = 0;
    int exit_code = 1;
    std::function<void()> cleanup;
    Clock::time_point since;
  };
  void run();
  // What is overdue now, or "" (called with the mutex held).
  std::string check(Clock::time_point now, int& exit_code, std::function<void()>& cleanup);
  std::string collective_text(uint64_t seq, const char* op, int64_t bytes) const;
  std::string context_text() const;
  // The report of this rank's wait, written once per wait when it is half-way to its bound.
  void maybe_report(Clock::time_point now);
  std::string arrivals_text(uint64_t seq) const;
  void fault(const std::string& message, int exit_code, const std::function<void()>& cleanup);

  const Options options_;
  AsyncError async_error_;
  Fault on_fault_;

  // The blocking collective (written by the calling thread, read by the watchdog).
  std::atomic<uint64_t> seq_{0};
  std::atomic<int64_t> since_ns_{0};  // steady clock; 0: none pending
  std::atomic<const char*> op_{nullptr};
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> step_{-1};
  std::atomic<const char*> stage_{nullptr};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Op> ops_;
  Phase phase_;
  bool in_phase_ = false;
  bool stop_ = false;
  bool faulted_ = false;
  Clock::time_point signal_seen_{};
  bool signal_noted_ = false;
  // Reports.
  std::string report_dir_;
  int rank_ = 0;
  std::vector<std::string> hosts_;
  uint64_t run_ = 0;
  uint64_t reported_ = 0;  // the wait last reported (collective seq, or ~0 for the phase)
  std::thread thread_;
};

// The process's watchdog (the world communicator's), or nullptr where none runs (one process
// without MPI, tests). Layers above comm mark their phases through the helpers below, which do
// nothing without one.
Watchdog* process_watchdog();
void set_process_watchdog(Watchdog* watchdog);

// A phase with its own bound for the lifetime of the object (see Watchdog::begin_phase).
class WatchedPhase {
 public:
  WatchedPhase(std::string what, double timeout_seconds, int exit_code,
               std::function<void()> cleanup = {});
  ~WatchedPhase();
  WatchedPhase(const WatchedPhase&) = delete;
  WatchedPhase& operator=(const WatchedPhase&) = delete;
};
void watch_step(int64_t step);
void watch_stage(const char* stage);  // a string literal

}  // namespace ffc::comm
