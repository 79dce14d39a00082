#include "comm/watchdog.h"

#include <cstdio>

#include "common/error.h"

namespace ffc::comm {

Watchdog::Watchdog(double timeout_seconds, double poll_seconds, AsyncError async_error,
                   Fault on_fault)
    : timeout_(timeout_seconds),
      poll_(poll_seconds),
      async_error_(std::move(async_error)),
      on_fault_(std::move(on_fault)) {
  FFC_CHECK(timeout_seconds > 0 && poll_seconds > 0,
            "watchdog: timeout and poll interval must be positive");
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::watch(std::string what, Poll poll) {
  std::lock_guard<std::mutex> lock(mutex_);
  ops_.push_back({std::move(what), std::move(poll), Clock::now()});
}

void Watchdog::begin_phase(std::string what) {
  std::lock_guard<std::mutex> lock(mutex_);
  phase_ = std::move(what);
  phase_since_ = Clock::now();
  in_phase_ = true;
}

void Watchdog::end_phase() {
  std::lock_guard<std::mutex> lock(mutex_);
  in_phase_ = false;
}

size_t Watchdog::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ops_.size();
}

bool Watchdog::faulted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return faulted_;
}

void Watchdog::fault(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (faulted_) {
      return;
    }
    faulted_ = true;
  }
  on_fault_(message);
}

void Watchdog::run() {
  const auto interval = std::chrono::duration<double>(poll_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    cv_.wait_for(lock, interval, [this] { return stop_; });
    if (stop_ || faulted_) {
      continue;
    }
    std::string message;
    const auto now = Clock::now();
    // The oldest operations first: they complete in order, so the first pending one ends the
    // round (the ones after it are pending too).
    while (!ops_.empty()) {
      Op& op = ops_.front();
      std::string failure;
      const State s = op.poll(failure);
      if (s == State::kDone) {
        ops_.pop_front();
        continue;
      }
      if (s == State::kFailed) {
        message = op.what + " failed: " + failure;
      } else if (std::chrono::duration<double>(now - op.since).count() > timeout_) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.0f s", timeout_);
        message = op.what + " did not complete within " + buf +
                  " (a rank died, hangs or never called it)";
      }
      break;
    }
    if (message.empty() && in_phase_ &&
        std::chrono::duration<double>(now - phase_since_).count() > timeout_) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.0f s", timeout_);
      message = phase_ + " did not complete within " + buf;
    }
    if (message.empty() && async_error_) {
      lock.unlock();
      message = async_error_();
      lock.lock();
    }
    if (!message.empty()) {
      lock.unlock();
      fault(message);
      lock.lock();
    }
  }
}

}  // namespace ffc::comm
