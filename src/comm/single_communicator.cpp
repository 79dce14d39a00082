// SingleProcessCommunicator: one rank, no MPI. Collectives reduce to copies.

#include "comm/communicator.h"
#include "common/error.h"

namespace ffc::comm {
namespace {

class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(at::Device device) : device_(device) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  at::Device device() const override { return device_; }

  void all_reduce(at::Tensor& tensor, ReduceOp) override {
    detail::check_tensor(tensor, "all_reduce", "input");
  }
  void all_gather(const at::Tensor& in, at::Tensor& out) override {
    detail::check_gather_shapes(in, out, 1, "all_gather");
    detail::copy_rows(in, out);
  }
  void all_gather_v(const at::Tensor& in, at::Tensor& out,
                    const std::vector<int64_t>& counts) override {
    detail::check_v_shapes(in, out, "all_gather_v");
    detail::check_counts(counts, 1, 0, in.size(0), out.size(0), "all_gather_v");
    detail::copy_rows(in, out);
  }
  void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp) override {
    detail::check_gather_shapes(out, in, 1, "reduce_scatter");
    detail::copy_rows(in, out);
  }
  void reduce_scatter_v(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>& counts,
                        ReduceOp) override {
    detail::check_v_shapes(out, in, "reduce_scatter_v");
    detail::check_counts(counts, 1, 0, out.size(0), in.size(0), "reduce_scatter_v");
    detail::copy_rows(in, out);
  }
  void broadcast(at::Tensor& tensor, int root) override {
    detail::check_tensor(tensor, "broadcast", "input");
    FFC_CHECK(root == 0, "broadcast: root " + std::to_string(root) + " in a world of 1 rank");
  }
  void barrier() override {}
  Communicator& host() override {
    if (device_.is_cpu()) {
      return *this;
    }
    if (!host_) {
      host_ = std::make_unique<SingleProcessCommunicator>(at::kCPU);
    }
    return *host_;
  }

 private:
  at::Device device_;
  std::unique_ptr<SingleProcessCommunicator> host_;
};

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator(at::Device device) {
  return std::make_unique<SingleProcessCommunicator>(device);
}

}  // namespace ffc::comm
