// GoogleTest main for tests that run under mpiexec. Every rank runs every test; rank 0 prints the
// usual report, other ranks print only their failures (with the rank), and all ranks agree on the
// exit status so that a failure on any rank fails the test.

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "comm/runtime.h"
#include "common/error.h"
#include "common/memory.h"
#include "support/mpi_env.h"

namespace ffc::test {
namespace {

std::unique_ptr<comm::Communicator> g_world;

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) {
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
    }
  }

 private:
  int rank_;
};

}  // namespace

comm::Communicator& world() {
  return *g_world;
}

}  // namespace ffc::test

int main(int argc, char** argv) {
  ffc::configure_allocator();
  ::testing::InitGoogleTest(&argc, argv);
  ffc::comm::init_mpi(&argc, &argv);
  ffc::test::g_world = ffc::comm::make_world_communicator(ffc::comm::Backend::kMpi);
  const int rank = ffc::test::g_world->rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new ffc::test::RankFailurePrinter(rank));
  }
  int rc = RUN_ALL_TESTS();
  const bool any_failed = ffc::comm::any_rank(*ffc::test::g_world, rc != 0);
  ffc::test::g_world.reset();
  ffc::comm::finalize_mpi();
  return any_failed ? 1 : 0;
}
