#pragma once
// The loader: worker threads read images (JPEG decode or procedural rendering), mirror them when
// the plan says so, and normalise them, (x - 127.5) / 128 in CHW order, straight into
// preallocated batch tensors. A bounded number of batches is prepared ahead; nothing is allocated
// per sample or per step once the first batches have been made (readers reuse their buffers).
// Batches are deterministic: a batch depends only on its step number, not on thread timing.

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/image_source.h"
#include "data/sampler.h"

namespace ffc::data {

struct LoaderOptions {
  int threads = 2;          // worker threads (config num_workers)
  int prefetch = 2;         // batches prepared ahead of the one being consumed
  bool pin_memory = false;  // page-locked host tensors, for asynchronous copies to a GPU
};

// One step's data: per view, images [rows, 3, S, S] float32 and labels [rows] int64.
struct Batch {
  int64_t step = -1;
  std::vector<at::Tensor> images;
  std::vector<at::Tensor> labels;
};

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
  void fill(Slot& slot, int64_t step, ImageReader& reader, std::vector<uint8_t>& pixels);
  void restart(std::unique_lock<std::mutex>& lock, int64_t step);

  std::shared_ptr<const ImageSource> source_;
  std::shared_ptr<const BatchPlanner> planner_;
  LoaderOptions options_;
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
