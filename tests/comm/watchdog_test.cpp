// The progress watchdog (comm/watchdog.h), with operations of the test's own: a pending
// asynchronous operation past the timeout, a failed one and an asynchronous error each reach the
// fault handler once, with a message naming the operation; operations that complete do not. A
// blocking collective past comm_timeout, a phase past its own bound (cleanup first, its exit
// status), a collective still pending after a stop signal, and the ranks' reports naming who had
// not arrived.

#include "comm/watchdog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/signals.h"

namespace ffc::comm {
namespace {

using State = Watchdog::State;

struct Faults {
  std::mutex mutex;
  std::vector<std::string> messages;
  std::vector<int> codes;
  void add(const std::string& m, int code = 0) {
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(m);
    codes.push_back(code);
  }
  int first_code() {
    std::lock_guard<std::mutex> lock(mutex);
    return codes.empty() ? -1 : codes.front();
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

Watchdog::Options opts(double timeout, double poll = 0.01, double grace = 10) {
  Watchdog::Options o;
  o.timeout_seconds = timeout;
  o.poll_seconds = poll;
  o.stop_grace_seconds = grace;
  return o;
}

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
  Watchdog dog(opts(0.2), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
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
  Watchdog dog(opts(0.2), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
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
    Watchdog dog(opts(60), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
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
        opts(60), [&] { return broken ? std::string("remote process exited") : std::string(); },
        [&](const std::string& m, int c) { faults.add(m, c); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(faults.count(), 0u);
    broken = true;
    ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
    EXPECT_EQ(faults.first(), "remote process exited");
  }
}

TEST(Watchdog, APhaseWithoutEndTimesOut) {
  Faults faults;
  Watchdog dog(opts(0.2), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
  dog.begin_phase("the communicator's start", 0.2, kExitStalled);
  dog.end_phase();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(faults.count(), 0u);
  dog.begin_phase("the communicator's start", 0.2, kExitStalled);
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  EXPECT_NE(faults.first().find("the communicator's start did not complete"), std::string::npos);
  EXPECT_EQ(faults.first_code(), kExitStalled);
}

TEST(Watchdog, ABlockingCollectivePastTheTimeoutNamesItTheStepAndTheStage) {
  Faults faults;
  Watchdog dog(opts(0.3), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
  dog.set_step(57);
  dog.set_stage("comm");
  // Collectives that end in time are nothing.
  for (int i = 0; i < 100; ++i) {
    dog.begin_collective("broadcast", 64);
    dog.end_collective();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(faults.count(), 0u);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(dog.begin_collective("all_reduce", int64_t{4} << 20), 101u);
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.3);
  EXPECT_LT(waited, 2.0);
  const std::string m = faults.first();
  EXPECT_NE(m.find("all_reduce #101 (4.0 MiB) did not complete within 0.3 s (comm_timeout) at step "
                   "57, stage comm on "),
            std::string::npos)
      << m;
  EXPECT_EQ(faults.first_code(), kExitStalled);
  dog.end_collective();
}

TEST(Watchdog, APhaseBoundsTheCollectivesInsideItAndCleansUpFirst) {
  Faults faults;
  std::atomic<bool> cleaned{false};
  Watchdog dog(opts(0.2), nullptr, [&](const std::string& m, int c) {
    EXPECT_TRUE(cleaned.load());  // the cleanup ran before the verdict
    faults.add(m, c);
  });
  dog.begin_phase("checkpoint save at step 8", 1.0, kExitFailure, [&] { cleaned = true; });
  dog.begin_collective("all_reduce", 8);  // a rank waiting for a slow writer: not comm_timeout
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(faults.count(), 0u);
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  const std::string m = faults.first();
  EXPECT_NE(m.find("checkpoint save at step 8 did not complete within 1 s (waiting"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("in all_reduce #1 (8 B))"), std::string::npos) << m;
  EXPECT_EQ(faults.first_code(), kExitFailure);
  EXPECT_TRUE(cleaned.load());
}

TEST(Watchdog, AStopSignalEndsACollectiveThatDoesNotComplete) {
  install_stop_signal_handlers();
  clear_stop_signal();
  Faults faults;
  Watchdog dog(opts(60, 0.01, 0.3), nullptr,
               [&](const std::string& m, int c) { faults.add(m, c); });
  dog.begin_collective("all_gather", 1024);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(std::raise(SIGTERM), 0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 2.0);
  EXPECT_NE(faults.first().find("stopped by signal 15 while all_gather #1 (1.0 KiB) was pending"),
            std::string::npos)
      << faults.first();
  EXPECT_EQ(faults.first_code(), kExitStalled);
  dog.end_collective();
  clear_stop_signal();
}

// Three ranks: this is rank 0; rank 1 reported waiting in the same collective, rank 2 did not
// report (a report of an earlier run in the folder does not count).
TEST(Watchdog, ReportsNameTheRanksThatHadNotArrived) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("ffc-watchdog-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "rank-1") << "run=7 rank=1 host=b step=12 seq=1 op=all_reduce bytes=8\n";
  std::ofstream(dir / "rank-2") << "run=6 rank=2 host=c step=12 seq=1 op=all_reduce bytes=8\n";
  Faults faults;
  {
    Watchdog dog(opts(0.4), nullptr, [&](const std::string& m, int c) { faults.add(m, c); });
    dog.set_reports(dir.string(), 0, {"a", "b", "c"}, 7);
    dog.set_step(12);
    dog.begin_collective("all_reduce", 8);
    ASSERT_TRUE(eventually([&] { return faults.count() > 0; }, 3.0));
    dog.end_collective();
  }
  const std::string m = faults.first();
  EXPECT_NE(m.find("waiting in it: ranks 0-1; not arrived (no report): rank 2 on c"),
            std::string::npos)
      << m;
  // This rank wrote its own report half-way to the bound.
  std::ifstream own(dir / "rank-0");
  std::string line;
  std::getline(own, line);
  EXPECT_EQ(line, "run=7 rank=0 host=a step=12 seq=1 op=all_reduce bytes=8");
  // Every rank waiting in it: the network (or a rank inside it) is to blame.
  std::ofstream(dir / "rank-2") << "run=7 rank=2 host=c step=12 seq=1 op=all_reduce bytes=8\n";
  Faults again;
  {
    Watchdog dog(opts(0.4), nullptr, [&](const std::string& m2, int c) { again.add(m2, c); });
    dog.set_reports(dir.string(), 0, {"a", "b", "c"}, 7);
    dog.begin_collective("all_reduce", 8);
    ASSERT_TRUE(eventually([&] { return again.count() > 0; }, 3.0));
    dog.end_collective();
  }
  EXPECT_NE(again.first().find("waiting in it: ranks 0-2 (every rank: the network between them "
                               "is down, or a rank stopped inside it)"),
            std::string::npos)
      << again.first();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ffc::comm
