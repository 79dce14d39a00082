#pragma once
// A Communicator that forwards every call to another one and adds up the wall time spent in
// collectives, for the per-phase timings of the progress line ("comm").

#include <chrono>
#include <memory>

#include "comm/communicator.h"

namespace ffc::comm {

class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}

  // Seconds spent in collectives since the last take_seconds(), which resets the count.
  double take_seconds() {
    const double s = seconds_;
    seconds_ = 0;
    return s;
  }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  int local_rank() const override { return inner_.local_rank(); }
  int local_size() const override { return inner_.local_size(); }
  std::string backend() const override { return inner_.backend(); }
  at::Device device() const override { return inner_.device(); }

  void all_reduce(at::Tensor& t, ReduceOp op) override {
    Clock c(*this);
    inner_.all_reduce(t, op);
  }
  void all_gather(const at::Tensor& in, at::Tensor& out) override {
    Clock c(*this);
    inner_.all_gather(in, out);
  }
  void all_gather_v(const at::Tensor& in, at::Tensor& out,
                    const std::vector<int64_t>& counts) override {
    Clock c(*this);
    inner_.all_gather_v(in, out, counts);
  }
  void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    Clock c(*this);
    inner_.reduce_scatter(in, out, op);
  }
  void reduce_scatter_v(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>& counts,
                        ReduceOp op) override {
    Clock c(*this);
    inner_.reduce_scatter_v(in, out, counts, op);
  }
  void broadcast(at::Tensor& t, int root) override {
    Clock c(*this);
    inner_.broadcast(t, root);
  }
  void barrier() override {
    Clock c(*this);
    inner_.barrier();
  }
  const void* native_mpi_comm() const override { return inner_.native_mpi_comm(); }

 private:
  struct Clock {
    explicit Clock(TimedCommunicator& o) : owner(o), start(std::chrono::steady_clock::now()) {}
    ~Clock() {
      owner.seconds_ +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    TimedCommunicator& owner;
    std::chrono::steady_clock::time_point start;
  };
  Communicator& inner_;
  double seconds_ = 0;
};

}  // namespace ffc::comm
