#include "comm/device.h"

#include <ATen/ATen.h>

#include <cstdio>

#if defined(FFC_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

#include "common/error.h"

namespace ffc::comm {

at::Tensor to_device(const at::Tensor& host, at::Device device) {
  if (host.device() == device) {
    return host;
  }
  if (!host.device().is_cpu() || device.is_cpu()) {
    return host.to(device);
  }
  // A pageable source would make the copy wait for the stream; a pinned one lets it overlap.
  const at::Tensor pinned = host.is_pinned() ? host : host.contiguous().pin_memory();
  return pinned.to(at::TensorOptions().device(device), /*non_blocking=*/true);
}

void synchronize(at::Device device) {
  if (device.is_cpu()) {
    return;
  }
#if defined(FFC_WITH_CUDA)
  const cudaError_t rc = cudaDeviceSynchronize();
  FFC_CHECK(rc == cudaSuccess, std::string("cudaDeviceSynchronize: ") + cudaGetErrorString(rc));
#endif
}

bool supports_bfloat16(at::Device device) {
  if (device.is_cpu()) {
    return true;
  }
#if defined(FFC_WITH_CUDA)
  int major = 0;
  if (device.is_cuda() && cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                                                 device.index()) == cudaSuccess) {
    return major >= 8;
  }
#endif
  return false;
}

#if !defined(FFC_TORCH_HAS_CUDA)
int64_t device_peak_bytes(at::Device /*device*/) {
  return -1;
}

struct PhaseMarks::Impl {};
PhaseMarks::PhaseMarks(at::Device /*device*/) {}
PhaseMarks::~PhaseMarks() = default;
void PhaseMarks::mark(int /*phase*/) {}
void PhaseMarks::collect(double* /*seconds*/, bool /*wait*/) {}
#endif

std::string describe_device(at::Device device) {
#if defined(FFC_WITH_CUDA)
  cudaDeviceProp prop{};
  if (device.is_cuda() && cudaGetDeviceProperties(&prop, device.index()) == cudaSuccess) {
    char buf[320];
    std::snprintf(buf, sizeof(buf), "%s, %.1f GiB, compute capability %d.%d", prop.name,
                  static_cast<double>(prop.totalGlobalMem) / (1 << 30), prop.major, prop.minor);
    return buf;
  }
#endif
  return device.str();
}

}  // namespace ffc::comm
