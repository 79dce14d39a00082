// SIGUSR1/SIGTERM only set a flag; stop_requested() makes every rank agree on it.

#include <gtest/gtest.h>

#include <csignal>

#include "comm/communicator.h"
#include "common/signals.h"
#include "support/mpi_env.h"

namespace ffc {
namespace {

TEST(StopSignal, FlagOnlyAndCollectiveAgreement) {
  install_stop_signal_handlers();
  clear_stop_signal();
  EXPECT_FALSE(comm::stop_requested(test::world()));

  // Only the last rank is signalled; every rank must see the stop request.
  const int last = test::world().size() - 1;
  if (test::world().rank() == last) {
    ASSERT_EQ(std::raise(SIGUSR1), 0);  // the process survives: the handler only sets a flag
    EXPECT_TRUE(stop_signal_received());
    EXPECT_EQ(last_stop_signal(), SIGUSR1);
  } else {
    EXPECT_FALSE(stop_signal_received());
  }
  EXPECT_TRUE(comm::stop_requested(test::world()));

  clear_stop_signal();
  EXPECT_FALSE(comm::stop_requested(test::world()));
  if (test::world().rank() == 0) {
    ASSERT_EQ(std::raise(SIGTERM), 0);
    EXPECT_EQ(last_stop_signal(), SIGTERM);
  }
  EXPECT_TRUE(comm::stop_requested(test::world()));
  clear_stop_signal();
}

}  // namespace
}  // namespace ffc
