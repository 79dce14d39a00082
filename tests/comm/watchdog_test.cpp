// The watchdog of asynchronous collectives (comm/watchdog.h), with operations of the test's own:
// a pending operation past the timeout, a failed one and an asynchronous error each reach the
// fault handler once, with a message naming the operation; operations that complete do not.

#include "comm/watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

namespace ffc::comm {
namespace {

using State = Watchdog::State;

struct Faults {
  std::mutex mutex;
  std::vector<std::string> messages;
  void add(const std::string& m) {
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(m);
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages.size();
  }
  std::string first() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages.empty() ? std::string() : messages.front();
  }
};

// Waits up to `seconds` for `pred`.
template <class P>
bool eventually(P pred, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

TEST(Watchdog, CompletedOperationsRaiseNothing) {
  Faults faults;
  Watchdog dog(0.2, 0.01, nullptr, [&](const std::string& m) { faults.add(m); });
  std::atomic<int> polls{0};
  for (int i = 0; i < 50; ++i) {
    dog.watch("op " + std::to_string(i), [&](std::string&) {
      ++polls;
      return State::kDone;
    });
  }
  EXPECT_TRUE(eventually([&] { return dog.pending() == 0; }, 2.0));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the timeout
  EXPECT_EQ(faults.count(), 0u);
  EXPECT_GE(polls.load(), 50);
  EXPECT_FALSE(dog.faulted());
}

TEST(Watchdog, APendingOperationTimesOutNamingIt) {
  Faults faults;
  Watchdog dog(0.2, 0.01, nullptr, [&](const std::string& m) { faults.add(m); });
  const auto start = std::chrono::steady_clock::now();
  dog.watch("NCCL all_reduce #7 (4.0 MiB)", [](std::string&) { return State::kPending; });
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 2.0);
  EXPECT_NE(faults.first().find("NCCL all_reduce #7 (4.0 MiB)"), std::string::npos)
      << faults.first();
  EXPECT_NE(faults.first().find("did not complete within"), std::string::npos) << faults.first();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(faults.count(), 1u);  // once
  EXPECT_TRUE(dog.faulted());
}

TEST(Watchdog, AFailedOperationAndAnAsyncErrorAreFaults) {
  {
    Faults faults;
    Watchdog dog(60, 0.01, nullptr, [&](const std::string& m) { faults.add(m); });
    dog.watch("broadcast #3", [](std::string& msg) {
      msg = "an illegal memory access";
      return State::kFailed;
    });
    ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
    EXPECT_NE(faults.first().find("broadcast #3 failed: an illegal memory access"),
              std::string::npos)
        << faults.first();
  }
  {
    Faults faults;
    std::atomic<bool> broken{false};
    Watchdog dog(
        60, 0.01, [&] { return broken ? std::string("remote process exited") : std::string(); },
        [&](const std::string& m) { faults.add(m); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(faults.count(), 0u);
    broken = true;
    ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
    EXPECT_EQ(faults.first(), "remote process exited");
  }
}

TEST(Watchdog, APhaseWithoutEndTimesOut) {
  Faults faults;
  Watchdog dog(0.2, 0.01, nullptr, [&](const std::string& m) { faults.add(m); });
  dog.begin_phase("the communicator's start");
  dog.end_phase();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(faults.count(), 0u);
  dog.begin_phase("the communicator's start");
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  EXPECT_NE(faults.first().find("the communicator's start did not complete"), std::string::npos);
}

}  // namespace
}  // namespace ffc::comm
