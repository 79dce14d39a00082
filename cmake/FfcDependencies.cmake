# Finds every dependency of ffc. Each is a Debian package on the build machines (see tools/bootstrap);
# on a cluster, point CMAKE_PREFIX_PATH / Torch_DIR at your own installs (docs/build.md).

find_package(Threads REQUIRED)

# LibTorch: Debian's libtorch-dev, a LibTorch zip, or the one inside a PyTorch installation.
find_package(Torch REQUIRED)
if(Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "ffc needs LibTorch >= 1.13, found ${Torch_VERSION} at ${Torch_DIR}")
endif()
# ATen's at::parallel_for is inline OpenMP when LibTorch was built with OpenMP (ATen/Config.h,
# AT_PARALLEL_OPENMP, as Debian's and the PyTorch wheels are): code calling it must be compiled
# with OpenMP as well, or its loops run on one thread. The heads' CPU kernels call it.
find_package(OpenMP COMPONENTS CXX)
if(NOT OpenMP_CXX_FOUND)
  message(WARNING "OpenMP not found: the heads' CPU kernels will run on one thread")
endif()
if(TARGET c10_cuda OR TARGET torch_cuda)
  set(FFC_TORCH_HAS_CUDA ON)
else()
  set(FFC_TORCH_HAS_CUDA OFF)
endif()

find_package(MPI REQUIRED COMPONENTS C)

set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "HDF5 at ${HDF5_INCLUDE_DIRS} is the serial build; ffc writes checkpoints collectively through "
    "MPI-IO and needs parallel HDF5. On Debian: apt-get install libhdf5-openmpi-dev (tools/bootstrap "
    "does it). Elsewhere: point HDF5_ROOT at an HDF5 configured with --enable-parallel.")
endif()

find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(TURBOJPEG REQUIRED IMPORTED_TARGET libturbojpeg)

if(FFC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FFC_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# CUDA toolkit (runtime API only: ffc has no .cu files yet, so no CUDA compiler is needed).
set(FFC_CUDA_ENABLED OFF)
if(NOT FFC_WITH_CUDA STREQUAL "OFF")
  if(NOT CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  if(FFC_WITH_CUDA STREQUAL "ON")
    find_package(CUDAToolkit REQUIRED)
  else()
    find_package(CUDAToolkit QUIET)
  endif()
  if(CUDAToolkit_FOUND)
    set(FFC_CUDA_ENABLED ON)
  endif()
endif()

set(FFC_NCCL_ENABLED OFF)
if(NOT FFC_WITH_NCCL STREQUAL "OFF")
  if(FFC_CUDA_ENABLED)
    find_package(NCCL QUIET)
  endif()
  if(NCCL_FOUND)
    set(FFC_NCCL_ENABLED ON)
  elseif(FFC_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "FFC_WITH_NCCL=ON but NCCL was not found (CUDA enabled: ${FFC_CUDA_ENABLED}). "
                        "Set NCCL_ROOT to the NCCL install prefix.")
  endif()
endif()
