// The NCCL communicator on real CUDA devices (label gpu): every collective of a step against the
// value it must give, at world size 1 (one GPU) or more (one GPU per rank). Without a CUDA device
// (or with a CPU-only LibTorch) it says so and exits 77, which CTest reports as skipped.

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "comm/runtime.h"
#include "common/error.h"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  } else {
    std::printf("ok: %s\n", what.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ffc;
  if (!at::hasCUDA()) {
    std::printf(
        "SKIPPED: no CUDA device visible to this LibTorch (a CPU-only LibTorch, or no GPU); "
        "the gpu-labelled tests need a CUDA LibTorch and a GPU (docs/gpu.md)\n");
    return 77;
  }
  comm::init_mpi(&argc, &argv);
  try {
    auto world = comm::make_world_communicator(comm::Backend::kNccl);
    const int p = world->size();
    const int r = world->rank();
    const at::Device dev = world->device();
    expect(dev.is_cuda(), "the NCCL communicator's device is a CUDA device: " + dev.str());
    const auto f = at::TensorOptions().dtype(at::kFloat).device(dev);
    // all_reduce: sum of (rank + 1) over ranks.
    at::Tensor x = at::full({1 << 20}, static_cast<float>(r + 1), f);
    world->all_reduce(x, comm::ReduceOp::kSum);
    expect(x.eq(static_cast<float>(p * (p + 1) / 2)).all().item<bool>(), "all_reduce sum");
    at::Tensor m = at::full({7}, static_cast<float>(r), f);
    world->all_reduce(m, comm::ReduceOp::kMax);
    expect(m.eq(static_cast<float>(p - 1)).all().item<bool>(), "all_reduce max");
    // all_gather: row i holds rank i.
    at::Tensor mine = at::full({3, 5}, static_cast<float>(r), f);
    at::Tensor all = at::empty({3 * p, 5}, f);
    world->all_gather(mine, all);
    const at::Tensor want = at::arange(p, f).repeat_interleave(3).unsqueeze(1).expand({3 * p, 5});
    expect(all.equal(want), "all_gather");
    // reduce_scatter: every rank contributes ones; each gets its block summed = p.
    at::Tensor in = at::ones({4 * p, 2}, f);
    at::Tensor out = at::empty({4, 2}, f);
    world->reduce_scatter(in, out, comm::ReduceOp::kSum);
    expect(out.eq(static_cast<float>(p)).all().item<bool>(), "reduce_scatter");
    // broadcast from the last rank; bf16 and half go through NCCL's own types.
    for (auto dtype : {at::kBFloat16, at::kHalf}) {
      at::Tensor b = at::full({9}, r == p - 1 ? 3.0 : -1.0, f.dtype(dtype));
      world->broadcast(b, p - 1);
      expect(b.eq(3.0).all().item<bool>(), std::string("broadcast ") + at::toString(dtype));
    }
    world->barrier();
  } catch (const Error& e) {
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    ++failures;
  }
  comm::finalize_mpi();
  return failures == 0 ? 0 : 1;
}
