#pragma once
// Small host tensors (index lists, per-sample weights, computed from host-side bookkeeping) onto
// the communicator's device inside a step, without making the host wait for the device: through
// a page-locked block of LibTorch's caching host allocator and an asynchronous copy on the current
// stream. On the CPU the tensor is returned as it is.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ffc::comm {

at::Tensor to_device(const at::Tensor& host, at::Device device);

// Waits until the device has finished its work (nothing on the CPU). For profiling only
// (sync_phases): the training step never waits for the device but where it reads results.
void synchronize(at::Device device);

// Whether the device computes in bfloat16 at full rate (CUDA compute capability >= 8.0, or the
// CPU, where autocast supports bfloat16): what amp_dtype auto chooses on a GPU.
bool supports_bfloat16(at::Device device);

// The most bytes LibTorch's caching allocator has held allocated on a CUDA device since the
// process started (its peak), or -1 where it cannot tell (the CPU, or a LibTorch without CUDA).
int64_t device_peak_bytes(at::Device device);

// "NVIDIA H200, 139.8 GiB, compute capability 9.0" for a CUDA device, "cpu" otherwise.
std::string describe_device(at::Device device);

// Device time per phase without making the host wait: timestamps (CUDA events) recorded on the
// device's current stream where phases begin, read once the device has passed them. The time
// between two marks is the device's from one to the next (its idle waits included) and counts
// for the phase of the first. Disabled (enabled() false, every call a no-op) on the CPU and
// without a CUDA LibTorch: there the host's clock is the device's.
class PhaseMarks {
 public:
  explicit PhaseMarks(at::Device device);
  ~PhaseMarks();
  PhaseMarks(const PhaseMarks&) = delete;
  PhaseMarks& operator=(const PhaseMarks&) = delete;
  bool enabled() const { return impl_ != nullptr; }
  // Marks the start of `phase` (an index into the caller's seconds[]), or with -1 the end of
  // timed work: the time to the next mark counts nowhere.
  void mark(int phase);
  // Adds to seconds[p] the intervals the device has completed since the last call; with wait,
  // first waits until the device has passed every mark so far.
  void collect(double* seconds, bool wait);

  struct Impl;  // the CUDA events (comm/device_cuda.cpp); empty without a CUDA LibTorch

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ffc::comm
