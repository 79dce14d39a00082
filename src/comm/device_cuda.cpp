// The parts of comm/device.h that need a CUDA LibTorch: the caching allocator's statistics and
// the phase marks on the current stream. Compiled only with one (and compile-checked elsewhere,
// see src/CMakeLists.txt).

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <vector>

#include "comm/device.h"
#include "common/error.h"

namespace ffc::comm {
namespace {

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    throw Error(std::string("phase marks: ") + what + " failed: " + cudaGetErrorString(rc));
  }
}

}  // namespace

// A ring of events, created once: marks [first, first + pending) are recorded and not yet
// folded into the phases' times; the oldest is the start of the next interval.
struct PhaseMarks::Impl {
  static constexpr size_t kCapacity = 64;  // 8 marks a step; collected every step
  at::Device device;
  std::vector<cudaEvent_t> events;
  std::vector<int> phases;
  size_t first = 0;
  size_t pending = 0;

  explicit Impl(at::Device d) : device(d), events(kCapacity), phases(kCapacity, -1) {
    c10::cuda::CUDAGuard guard(device);
    for (auto& e : events) {
      check_cuda(cudaEventCreate(&e), "cudaEventCreate");
    }
  }
  ~Impl() {
    for (cudaEvent_t e : events) {
      cudaEventDestroy(e);
    }
  }

  // Folds the oldest interval in once its end has completed (or waits for it): false when it
  // has not and the caller does not wait.
  bool fold_one(double* seconds, bool wait) {
    const cudaEvent_t start = events[first];
    const cudaEvent_t end = events[(first + 1) % kCapacity];
    if (wait) {
      check_cuda(cudaEventSynchronize(end), "cudaEventSynchronize");
    } else {
      const cudaError_t rc = cudaEventQuery(end);
      if (rc == cudaErrorNotReady) {
        (void)cudaGetLastError();  // not an error: clear it, as LibTorch does
        return false;
      }
      check_cuda(rc, "cudaEventQuery");
    }
    const int phase = phases[first];
    if (phase >= 0) {
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start, end), "cudaEventElapsedTime");
      seconds[phase] += ms / 1000.0;
    }
    first = (first + 1) % kCapacity;
    --pending;
    return true;
  }
};

PhaseMarks::PhaseMarks(at::Device device) {
  if (device.is_cuda()) {
    impl_ = std::make_unique<Impl>(device);
  }
}

PhaseMarks::~PhaseMarks() = default;

void PhaseMarks::mark(int phase) {
  if (!impl_) {
    return;
  }
  Impl& m = *impl_;
  if (m.pending == Impl::kCapacity) {
    // Nobody collected: drop the oldest interval's time rather than grow.
    m.first = (m.first + 1) % Impl::kCapacity;
    --m.pending;
  }
  const size_t slot = (m.first + m.pending) % Impl::kCapacity;
  check_cuda(cudaEventRecord(m.events[slot], c10::cuda::getCurrentCUDAStream(m.device.index())),
             "cudaEventRecord");
  m.phases[slot] = phase;
  ++m.pending;
}

void PhaseMarks::collect(double* seconds, bool wait) {
  if (!impl_) {
    return;
  }
  while (impl_->pending >= 2 && impl_->fold_one(seconds, wait)) {
  }
}

int64_t device_peak_bytes(at::Device device) {
  if (!device.is_cuda()) {
    return -1;
  }
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  // Index 0: the aggregate over the small and large pools.
  return static_cast<int64_t>(stats.allocated_bytes[0].peak);
}

}  // namespace ffc::comm
