// The parts of comm/device.h that need a CUDA LibTorch: the caching allocator's statistics.
// Compiled only with one (and compile-checked elsewhere, see src/CMakeLists.txt).

#include <c10/cuda/CUDACachingAllocator.h>

#include "comm/device.h"

namespace ffc::comm {

int64_t device_peak_bytes(at::Device device) {
  if (!device.is_cuda()) {
    return -1;
  }
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  // Index 0: the aggregate over the small and large pools.
  return static_cast<int64_t>(stats.allocated_bytes[0].peak);
}

}  // namespace ffc::comm
