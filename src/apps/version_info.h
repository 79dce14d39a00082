#pragma once

#include <string>

namespace ffc::app {

// Several lines: ffc version and git revision, LibTorch, MPI, HDF5, NCCL/CUDA, compiler.
std::string version_report();

}  // namespace ffc::app
