// The per-rank thread count: configured value, then OMP_NUM_THREADS, then SLURM_CPUS_PER_TASK,
// then cores per node / ranks per node.

#include "common/threads.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace ffc {
namespace {

class ThreadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("OMP_NUM_THREADS");
    unsetenv("SLURM_CPUS_PER_TASK");
  }
  void TearDown() override { SetUp(); }
};

TEST_F(ThreadsTest, ConfiguredValueWins) {
  setenv("OMP_NUM_THREADS", "3", 1);
  const ThreadChoice c = choose_num_threads(5, 2);
  EXPECT_EQ(c.threads, 5);
  EXPECT_EQ(c.reason, "num_threads");
}

TEST_F(ThreadsTest, EnvironmentThenSlurm) {
  setenv("SLURM_CPUS_PER_TASK", "4", 1);
  EXPECT_EQ(choose_num_threads(0, 8).threads, 4);
  EXPECT_EQ(choose_num_threads(0, 8).reason, "SLURM_CPUS_PER_TASK");
  setenv("OMP_NUM_THREADS", "6", 1);
  EXPECT_EQ(choose_num_threads(0, 8).threads, 6);
  setenv("OMP_NUM_THREADS", "junk", 1);  // ignored, not fatal
  EXPECT_EQ(choose_num_threads(0, 8).threads, 4);
}

TEST_F(ThreadsTest, SharesTheNodeBetweenRanks) {
  const int cores = node_cores();
  const int usable = affinity_cores();
  EXPECT_EQ(choose_num_threads(0, 1).threads, std::max(1, std::min(usable, cores)));
  EXPECT_EQ(choose_num_threads(0, cores).threads, 1);
  EXPECT_EQ(choose_num_threads(0, cores * 4).threads, 1);  // never zero
}

}  // namespace
}  // namespace ffc
