#include "apps/version_info.h"

#include <hdf5.h>
#include <torch/version.h>

#include "comm/runtime.h"
#include "common/version.h"

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
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  out += "HDF5 " + std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
#if defined(H5_HAVE_PARALLEL)
  out += " (parallel)\n";
#else
  out += " (serial)\n";
#endif
  out += "NCCL/CUDA: " + comm::nccl_version() + "\n";
  out += "compiler: GCC " + std::string(__VERSION__) + ", C++" +
         std::to_string(__cplusplus / 100 % 100);
  return out;
}

}  // namespace ffc::app
