// What ffc reads from the launcher's environment before MPI starts: the tasks of this srun step
// on this node, and the choice to make Open MPI yield where a node runs more ranks x threads
// than it has cores.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "comm/communicator.h"
#include "comm/runtime.h"
#include "common/threads.h"

namespace ffc {
namespace {

class LauncherEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) {
      unsetenv(v);
    }
  }
  void TearDown() override { SetUp(); }
  static void srun(const char* tasks_per_node, int node) {
    setenv("SLURM_STEP_ID", "0", 1);
    setenv("SLURM_STEP_TASKS_PER_NODE", tasks_per_node, 1);
    setenv("SLURM_NODEID", std::to_string(node).c_str(), 1);
  }
  static constexpr const char* kVars[] = {"SLURM_STEP_ID", "SLURM_STEP_TASKS_PER_NODE",
                                          "SLURM_NODEID", "OMPI_MCA_mpi_yield_when_idle",
                                          "OMPI_COMM_WORLD_SIZE"};
};

TEST_F(LauncherEnv, TasksOnThisNodeFromSrunsLayout) {
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 0);  // not under srun
  srun("4", 0);
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 4);
  srun("2(x3),1", 0);
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 2);
  srun("2(x3),1", 2);
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 2);
  srun("2(x3),1", 3);
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 1);
  srun("3,1(x2),5", 3);
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 5);
  srun("2(x2)", 2);  // beyond the layout
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 0);
  srun("2(x", 0);  // malformed
  EXPECT_EQ(comm::slurm_step_tasks_on_node(), 0);
}

TEST_F(LauncherEnv, YieldOnlyWhereRanksOutnumberCores) {
  const int cores = affinity_cores();
  srun(std::to_string(cores).c_str(), 0);
  EXPECT_EQ(comm::yield_when_oversubscribed(1), "");  // one core per rank
  EXPECT_EQ(std::getenv("OMPI_MCA_mpi_yield_when_idle"), nullptr);

  srun(std::to_string(cores + 1).c_str(), 0);
  const std::string note = comm::yield_when_oversubscribed(1);
  EXPECT_NE(note.find(std::to_string(cores + 1) + " rank(s) x 1 thread(s) on this node's " +
                      std::to_string(cores) + " usable core(s)"),
            std::string::npos)
      << note;
  ASSERT_NE(std::getenv("OMPI_MCA_mpi_yield_when_idle"), nullptr);
  EXPECT_STREQ(std::getenv("OMPI_MCA_mpi_yield_when_idle"), "1");

  // Threads count too; the user's own setting and mpirun's placement are left alone.
  unsetenv("OMPI_MCA_mpi_yield_when_idle");
  srun("1", 0);
  EXPECT_EQ(comm::yield_when_oversubscribed(cores + 1), "");  // a single rank never waits on peers
  srun("2", 0);
  EXPECT_NE(comm::yield_when_oversubscribed(cores), "");
  setenv("OMPI_MCA_mpi_yield_when_idle", "0", 1);
  EXPECT_EQ(comm::yield_when_oversubscribed(cores), "");
  EXPECT_STREQ(std::getenv("OMPI_MCA_mpi_yield_when_idle"), "0");
  unsetenv("OMPI_MCA_mpi_yield_when_idle");
  setenv("OMPI_COMM_WORLD_SIZE", "8", 1);
  EXPECT_EQ(comm::yield_when_oversubscribed(cores), "");
}

TEST(HostLayout, RunsOfRanksPerHostInOrderOfFirstRank) {
  using V = std::vector<std::string>;
  EXPECT_EQ(comm::host_layout(V{"n1", "n1", "n2", "n2"}), (V{"n1:0-1", "n2:2-3"}));
  EXPECT_EQ(comm::host_layout(V{"b", "a", "b", "a", "b"}), (V{"b:0,2,4", "a:1,3"}));
  EXPECT_EQ(comm::host_layout(V{"x", "x", "x", "y", "x"}), (V{"x:0-2,4", "y:3"}));
  EXPECT_EQ(comm::host_layout(V{"solo"}), (V{"solo:0"}));
}

}  // namespace
}  // namespace ffc
