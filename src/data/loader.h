#pragma once
// The loader: worker threads read images (JPEG decode or procedural rendering), mirror them when
// the plan says so, and normalise them (LoaderOptions::norm, CHW order) straight into
// preallocated batch tensors. A bounded number of batches is prepared ahead; nothing is allocated
// per sample or per step once the first batches have been made (readers reuse their buffers).
// Batches are deterministic: a batch depends only on its step number, not on thread timing.
//
// On a GPU (LoaderOptions::device) the host slots are page-locked and get() hands out the images
// on the device: copied asynchronously on a copy stream into one of two device buffers, the
// compute stream waiting for the copy by an event, so the copy of step s overlaps the compute of
// step s - 1 and the host never waits. A worker refills a host slot only once the copy that
// reads it has completed (a per-slot event). Labels stay on the host (host-side bookkeeping).

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/input_norm.h"
#include "data/image_source.h"
#include "data/sampler.h"

namespace ffc::data {

struct LoaderOptions {
  int threads = 2;                       // worker threads (config num_workers)
  int prefetch = 2;                      // batches prepared ahead of the one being consumed
  at::Device device = at::kCPU;          // where get() hands out the images (comm.device())
  InputNorm norm = legacy_input_norm();  // the network's input normalisation
};

// One step's data: per view, images [rows, 3, S, S] float32 (on the loader's device) and labels
// [rows] int64 (on the host).
struct Batch {
  int64_t step = -1;
  std::vector<at::Tensor> images;
  std::vector<at::Tensor> labels;
};

// Moves host batches to a device (data/device_stager_cuda.cpp); see the header comment.
class DeviceStager {
 public:
  virtual ~DeviceStager() = default;
  // Enqueues the copy of host slot `slot`'s images and returns the batch with its images on the
  // device (the compute stream waits for them) and the host's labels; valid until the next call.
  virtual const Batch& stage(const Batch& host, int slot) = 0;
  // Blocks until no copy reads host slot `slot` any more (a worker calls it before refilling).
  virtual void wait_host_slot(int slot) = 0;
};
// Throws ffc::Error when this build cannot reach `device` (a LibTorch without CUDA).
std::unique_ptr<DeviceStager> make_device_stager(at::Device device, int host_slots,
                                                 const std::vector<int64_t>& view_rows,
                                                 int64_t image_size);

class Loader {
 public:
  Loader(std::shared_ptr<const ImageSource> source, std::shared_ptr<const BatchPlanner> planner,
         const LoaderOptions& options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The batch of global step `step`. Steps must be asked in increasing order (a jump, e.g. after
  // a resume, restarts the prefetch there). The returned batch stays valid until the next call.
  // A worker's error (bad record, ...) is rethrown here.
  const Batch& get(int64_t step);
  const BatchPlanner& planner() const { return *planner_; }

 private:
  struct Slot {
    Batch batch;
    std::vector<std::vector<Sample>> plan;
    int64_t step = -1;
    bool ready = false;
    bool claimed = false;
    std::exception_ptr error;
  };
  void worker_main(int worker);
  void fill(Slot& slot, int64_t step, ImageReader& reader, std::vector<uint8_t>& pixels,
            std::vector<ItemRange>& ahead);
  void restart(std::unique_lock<std::mutex>& lock, int64_t step);

  std::shared_ptr<const ImageSource> source_;
  std::shared_ptr<const BatchPlanner> planner_;
  LoaderOptions options_;
  std::unique_ptr<DeviceStager> stager_;  // null on the CPU
  std::vector<Slot> slots_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable ready_cv_;
  // Workers fill steps [base_, base_ + slots): base_ is the step the caller holds (or waits for);
  // -1 until the first get() and during a restart.
  int64_t base_ = -1;
  int64_t next_to_schedule_ = 0;
  uint64_t generation_ = 0;  // bumped by a restart, so that stale fills are not marked ready
  bool stop_ = false;
};

}  // namespace ffc::data
