#include "head/all_gather.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <numeric>

namespace ffc::head {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AllGatherRows : public torch::autograd::Function<AllGatherRows> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t comm_ptr,
                            std::vector<int64_t> counts) {
    auto& comm = *reinterpret_cast<comm::Communicator*>(comm_ptr);
    std::vector<int64_t> shape = x.sizes().vec();
    shape[0] = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    at::Tensor out = at::empty(shape, x.options());
    comm.all_gather_v(x.contiguous(), out, counts);
    ctx->saved_data["comm"] = comm_ptr;
    ctx->saved_data["counts"] = counts;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& comm = *reinterpret_cast<comm::Communicator*>(ctx->saved_data["comm"].toInt());
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    const at::Tensor g = grads[0].contiguous();
    std::vector<int64_t> shape = g.sizes().vec();
    shape[0] = counts[comm.rank()];
    at::Tensor out = at::empty(shape, g.options());
    comm.reduce_scatter_v(g, out, counts, comm::ReduceOp::kSum);
    return {out, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor all_gather_rows(const at::Tensor& x, comm::Communicator& comm,
                           const std::vector<int64_t>& counts) {
  return AllGatherRows::apply(x, reinterpret_cast<int64_t>(&comm), counts);
}

}  // namespace ffc::head
