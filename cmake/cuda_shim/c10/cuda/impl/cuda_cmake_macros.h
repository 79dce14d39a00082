#pragma once
// Only for the compile check of ffc's CUDA LibTorch code on builders whose LibTorch has no CUDA
// (src/CMakeLists.txt, ffc_torch_cuda_check): a CPU LibTorch ships c10/cuda's headers but not this
// generated one. Never used in a build that links CUDA code.
#define C10_CUDA_BUILD_SHARED_LIBS
