// Test helper for the failure path: rank <fail_rank> throws while the other ranks wait in a
// collective that rank never joins. guarded_main must take the whole job down.

#include <ATen/ATen.h>

#include <cstdlib>

#include "apps/guarded_main.h"
#include "common/error.h"

int main(int argc, char** argv) {
  const int fail_rank = argc > 1 ? std::atoi(argv[1]) : 1;
  return ffc::app::guarded_main([&]() -> int {
    ffc::app::Session session = ffc::app::start_session(ffc::Config{}, ffc::comm::Backend::kMpi);
    if (session.comm->rank() == fail_rank) {
      throw ffc::Error("deliberate failure on rank " + std::to_string(fail_rank) + " (abort test)");
    }
    at::Tensor t = at::ones({1});
    session.comm->all_reduce(t, ffc::comm::ReduceOp::kSum);
    return 0;
  });
}
