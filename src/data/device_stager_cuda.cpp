// The loader's host -> device copies on CUDA (data/loader.h): a copy stream, two device buffers
// used in turn, and events that order everything without the host waiting:
//   stage(s), buffer k = s % 2:
//     1. the compute stream records `released[k ^ 1]`: all work enqueued so far, i.e. through
//        step s - 1, the last reader of buffer k ^ 1 (it is reused by stage(s + 1));
//     2. the copy stream waits for `released[k]` (recorded at stage(s - 1): step s - 2 done);
//     3. the copy stream copies the pinned host images into buffer k and records `copied[k]`;
//     4. the compute stream waits for `copied[k]`; host slot `slot` is free once `copied[k]` is
//        done: its event is recorded there too, and a worker synchronises on it before refilling.
// Compiled only with a CUDA LibTorch (and, on builders without one, compiled but not linked as a
// check that it still compiles).

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <mutex>

#include "common/error.h"
#include "data/loader.h"

namespace ffc::data {
namespace {

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    throw Error(std::string("loader: ") + what + " failed: " + cudaGetErrorString(rc));
  }
}

class CudaStager final : public DeviceStager {
 public:
  CudaStager(at::Device device, int host_slots, const std::vector<int64_t>& view_rows,
             int64_t image_size)
      : device_(device),
        copy_stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())) {
    c10::cuda::CUDAGuard guard(device_);
    const auto options = at::TensorOptions().dtype(at::kFloat).device(device_);
    for (auto& batch : buffers_) {
      for (int64_t rows : view_rows) {
        batch.images.push_back(at::empty({rows, 3, image_size, image_size}, options));
      }
    }
    for (cudaEvent_t* e : {&released_[0], &released_[1], &copied_[0], &copied_[1]}) {
      check_cuda(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreate");
    }
    host_free_.resize(static_cast<size_t>(host_slots));
    for (auto& e : host_free_) {
      check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    }
  }

  ~CudaStager() override {
    for (cudaEvent_t e : {released_[0], released_[1], copied_[0], copied_[1]}) {
      cudaEventDestroy(e);
    }
    for (cudaEvent_t e : host_free_) {
      cudaEventDestroy(e);
    }
  }

  const Batch& stage(const Batch& host, int slot) override {
    c10::cuda::CUDAGuard guard(device_);
    const int k = static_cast<int>(count_++ % 2);
    const cudaStream_t compute = c10::cuda::getCurrentCUDAStream(device_.index()).stream();
    check_cuda(cudaEventRecord(released_[k ^ 1], compute), "cudaEventRecord");
    if (count_ > 2) {
      check_cuda(cudaStreamWaitEvent(copy_stream_.stream(), released_[k], 0),
                 "cudaStreamWaitEvent");
    }
    Batch& out = buffers_[k];
    {
      c10::cuda::CUDAStreamGuard on_copy_stream(copy_stream_);
      for (size_t v = 0; v < host.images.size(); ++v) {
        out.images[v].copy_(host.images[v], /*non_blocking=*/true);
      }
    }
    check_cuda(cudaEventRecord(copied_[k], copy_stream_.stream()), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(compute, copied_[k], 0), "cudaStreamWaitEvent");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check_cuda(cudaEventRecord(host_free_[static_cast<size_t>(slot)], copy_stream_.stream()),
                 "cudaEventRecord");
    }
    out.step = host.step;
    out.labels = host.labels;
    return out;
  }

  void wait_host_slot(int slot) override {
    cudaEvent_t e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      e = host_free_[static_cast<size_t>(slot)];
    }
    check_cuda(cudaEventSynchronize(e), "cudaEventSynchronize");
  }

 private:
  at::Device device_;
  c10::cuda::CUDAStream copy_stream_;
  Batch buffers_[2];
  cudaEvent_t released_[2] = {nullptr, nullptr};
  cudaEvent_t copied_[2] = {nullptr, nullptr};
  std::vector<cudaEvent_t> host_free_;
  std::mutex mutex_;
  uint64_t count_ = 0;
};

}  // namespace

std::unique_ptr<DeviceStager> make_device_stager(at::Device device, int host_slots,
                                                 const std::vector<int64_t>& view_rows,
                                                 int64_t image_size) {
  FFC_CHECK(device.is_cuda(), "the loader hands batches to CUDA devices only, not " + device.str());
  return std::make_unique<CudaStager>(device, host_slots, view_rows, image_size);
}

}  // namespace ffc::data
