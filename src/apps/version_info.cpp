#include "apps/version_info.h"

#include <ATen/Context.h>
#include <torch/version.h>

#include "comm/device.h"
#include "comm/runtime.h"
#include "common/version.h"
#include "h5/library.h"

namespace ffc::app {

std::string version_report() {
  std::string out = "ffc " + project_version() + " (git " + git_revision() + ")\n";
  out += "LibTorch " + std::string(TORCH_VERSION);
#if defined(FFC_TORCH_HAS_CUDA)
  out += " (with CUDA)\n";
#else
  out += " (CPU only)\n";
#endif
  out += "MPI: " + comm::mpi_library_version() + "\n";
  out += "HDF5 " + h5::library_version() + "\n";
  out += "NCCL/CUDA: " + comm::nccl_version() + "\n";
  const int64_t gpus = at::hasCUDA() ? static_cast<int64_t>(at::getNumGPUs()) : 0;
  out += "CUDA devices usable by LibTorch: " + std::to_string(gpus);
  for (int64_t d = 0; d < gpus; ++d) {
    out += (d == 0 ? " (" : "; ") +
           comm::describe_device(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d)));
  }
  out += gpus > 0 ? ")\n" : "\n";
  out += "compiler: GCC " + std::string(__VERSION__) + ", C++" +
         std::to_string(__cplusplus / 100 % 100);
  return out;
}

}  // namespace ffc::app
