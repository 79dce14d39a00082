#pragma once
// A watchdog over asynchronous operations (the NCCL communicator's collectives): a thread polls
// every operation in flight and the backend's asynchronous error state, and calls `on_fault` once
// with a message naming the operation when one fails or stays pending longer than the timeout.
// The fault handler is expected to end the process (the NCCL communicator aborts NCCL and the
// job), so that a dead or hung rank never leaves the others waiting forever: a host thread blocked
// in a device synchronisation cannot notice anything itself.
//
// Torch-free and CUDA-free, so the mechanism is tested on the CPU with operations of its own.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ffc::comm {

class Watchdog {
 public:
  // What an operation's poll says.
  enum class State { kPending, kDone, kFailed };
  // Polled from the watchdog thread; on kFailed it fills the message.
  using Poll = std::function<State(std::string& message)>;
  // Returns an empty string, or a message when the backend reports an asynchronous error.
  using AsyncError = std::function<std::string()>;
  using Fault = std::function<void(const std::string& message)>;

  Watchdog(double timeout_seconds, double poll_seconds, AsyncError async_error, Fault on_fault);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Watches an operation until its poll says done. Operations complete in the order they were
  // watched (a stream's order), so only the oldest is polled each round.
  void watch(std::string what, Poll poll);
  // A host-side phase with a deadline (e.g. a communicator's initialisation): a fault when
  // end_phase() is not called within the timeout.
  void begin_phase(std::string what);
  void end_phase();
  // Operations in flight.
  size_t pending() const;
  bool faulted() const;
  double timeout_seconds() const { return timeout_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Op {
    std::string what;
    Poll poll;
    Clock::time_point since;
  };
  void run();
  void fault(const std::string& message);

  double timeout_;
  double poll_;
  AsyncError async_error_;
  Fault on_fault_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Op> ops_;
  std::string phase_;
  Clock::time_point phase_since_;
  bool in_phase_ = false;
  bool stop_ = false;
  bool faulted_ = false;
  std::thread thread_;
};

}  // namespace ffc::comm
