#include "data/loader.h"

#include <ATen/ATen.h>

#include "common/error.h"

namespace ffc::data {

Loader::Loader(std::shared_ptr<const ImageSource> source,
               std::shared_ptr<const BatchPlanner> planner, const LoaderOptions& options)
    : source_(std::move(source)), planner_(std::move(planner)), options_(options) {
  FFC_CHECK(options_.threads >= 1, "the loader needs at least one worker thread");
  FFC_CHECK(options_.prefetch >= 1, "the loader needs a prefetch depth of at least one batch");
  const int64_t size = source_->image_size();
  auto image_options = at::TensorOptions().dtype(at::kFloat);
  auto label_options = at::TensorOptions().dtype(at::kLong);
  if (!options_.device.is_cpu()) {
    // Page-locked, so that the copies to the device are asynchronous DMA.
    image_options = image_options.pinned_memory(true);
    stager_ =
        make_device_stager(options_.device, options_.prefetch + 1, planner_->view_rows(), size);
  }
  slots_.resize(options_.prefetch + 1);
  for (auto& slot : slots_) {
    for (int64_t rows : planner_->view_rows()) {
      // Zero-filled once here, so that the first touch of the pages is not paid in a step.
      slot.batch.images.push_back(at::zeros({rows, 3, size, size}, image_options));
      slot.batch.labels.push_back(at::zeros({rows}, label_options));
    }
  }
  for (int w = 0; w < options_.threads; ++w) {
    workers_.emplace_back([this, w] { worker_main(w); });
  }
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) {
    t.join();
  }
}

void Loader::restart(std::unique_lock<std::mutex>& lock, int64_t step) {
  // Stop handing out steps of the old window, wait for fills in flight (they write into slot
  // tensors), then open the window at `step`.
  ++generation_;
  base_ = -1;
  ready_cv_.wait(lock, [this] {
    for (const auto& s : slots_) {
      if (s.claimed) {
        return false;
      }
    }
    return true;
  });
  for (auto& s : slots_) {
    s.ready = false;
    s.step = -1;
    s.error = nullptr;
  }
  next_to_schedule_ = step;
  base_ = step;
  work_cv_.notify_all();
}

const Batch& Loader::get(int64_t step) {
  FFC_CHECK(step >= 0, "negative step");
  std::unique_lock<std::mutex> lock(mutex_);
  if (base_ >= 0 && step == base_ + 1) {
    base_ = step;  // releases the previous batch's slot
    work_cv_.notify_all();
  } else if (step != base_) {
    restart(lock, step);
  }
  const auto index = static_cast<int>(step % static_cast<int64_t>(slots_.size()));
  Slot& slot = slots_[index];
  ready_cv_.wait(lock, [&] { return slot.step == step && slot.ready; });
  if (slot.error) {
    std::rethrow_exception(slot.error);
  }
  return stager_ ? stager_->stage(slot.batch, index) : slot.batch;
}

void Loader::worker_main(int /*worker*/) {
  std::unique_ptr<ImageReader> reader;
  std::vector<uint8_t> pixels;
  std::vector<ItemRange> ahead;
  const auto nslots = static_cast<int64_t>(slots_.size());
  while (true) {
    std::unique_lock<std::mutex> lock(mutex_);
    work_cv_.wait(lock,
                  [&] { return stop_ || (base_ >= 0 && next_to_schedule_ < base_ + nslots); });
    if (stop_) {
      return;
    }
    const int64_t step = next_to_schedule_++;
    const uint64_t generation = generation_;
    const auto index = static_cast<int>(step % nslots);
    Slot& slot = slots_[index];
    slot.step = step;
    slot.ready = false;
    slot.claimed = true;
    slot.error = nullptr;
    lock.unlock();

    std::exception_ptr error;
    try {
      if (stager_) {
        stager_->wait_host_slot(index);  // the copy of its previous batch may be in flight
      }
      if (!reader) {
        reader = source_->make_reader();
        const size_t s = static_cast<size_t>(source_->image_size());
        pixels.resize(s * s * 3);
      }
      fill(slot, step, *reader, pixels, ahead);
    } catch (...) {
      error = std::current_exception();
    }

    lock.lock();
    slot.claimed = false;
    if (generation == generation_ && slot.step == step) {
      slot.ready = true;
      slot.error = error;
    }
    lock.unlock();
    ready_cv_.notify_all();
  }
}

void Loader::fill(Slot& slot, int64_t step, ImageReader& reader, std::vector<uint8_t>& pixels,
                  std::vector<ItemRange>& ahead) {
  planner_->plan(step, slot.plan);
  ahead.clear();
  planner_->read_ahead(step, ahead);  // block order: the next window's blocks, in large reads
  for (const ItemRange& run : ahead) {
    source_->will_read(run.first, run.count);
  }
  slot.batch.step = step;
  const int size = source_->image_size();
  const int64_t plane = static_cast<int64_t>(size) * size;
  for (size_t v = 0; v < slot.plan.size(); ++v) {
    float* images = slot.batch.images[v].data_ptr<float>();
    int64_t* labels = slot.batch.labels[v].data_ptr<int64_t>();
    const auto& samples = slot.plan[v];
    for (size_t i = 0; i < samples.size(); ++i) {
      const Sample& sample = samples[i];
      const int64_t label = reader.read(sample.image, pixels.data());
      if (sample.label >= 0 && label != sample.label) {
        throw FormatError("image " + std::to_string(sample.image) + " belongs to class " +
                          std::to_string(label) + " by its record, but to class " +
                          std::to_string(sample.label) +
                          " by the dataset's class table (identity records); the dataset is "
                          "inconsistent: run `ffc data verify`");
      }
      labels[i] = label;
      normalize_pixels(pixels.data(), size, sample.flip, options_.norm,
                       images + static_cast<int64_t>(i) * 3 * plane);
    }
  }
}

#if !defined(FFC_TORCH_HAS_CUDA)
std::unique_ptr<DeviceStager> make_device_stager(at::Device device, int /*host_slots*/,
                                                 const std::vector<int64_t>& /*view_rows*/,
                                                 int64_t /*image_size*/) {
  throw Error("the loader cannot hand batches to " + device.str() +
              ": this ffc was built with a LibTorch without CUDA (docs/gpu.md)");
}
#endif

}  // namespace ffc::data
