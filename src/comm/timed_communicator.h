#pragma once
// A Communicator that forwards every call to another one and adds up the wall time spent in
// collectives, for the per-phase timings of the progress line ("comm").

#include <chrono>
#include <memory>

#include "comm/communicator.h"

namespace ffc::comm {

class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner), seconds_(&own_seconds_) {}

  // Seconds spent in collectives (of this communicator and of its host()) since the last
  // take_seconds(), which resets the count. On a device the collectives are enqueued, not
  // waited for: the time is the host's.
  double take_seconds() {
    const double s = *seconds_;
    *seconds_ = 0;
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
  Communicator& host() override {
    Communicator& h = inner_.host();
    if (&h == &inner_) {
      return *this;
    }
    if (!host_) {
      host_.reset(new TimedCommunicator(h, seconds_));
    }
    return *host_;
  }

 private:
  // A host() communicator adding into its owner's count.
  TimedCommunicator(Communicator& inner, double* seconds) : inner_(inner), seconds_(seconds) {}
  struct Clock {
    explicit Clock(TimedCommunicator& o) : owner(o), start(std::chrono::steady_clock::now()) {}
    ~Clock() {
      *owner.seconds_ +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    TimedCommunicator& owner;
    std::chrono::steady_clock::time_point start;
  };
  Communicator& inner_;
  double own_seconds_ = 0;
  double* seconds_;
  std::unique_ptr<TimedCommunicator> host_;
};

}  // namespace ffc::comm
