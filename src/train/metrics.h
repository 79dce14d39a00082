#pragma once
// Per-phase timings, the progress line and metrics.jsonl.

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/device.h"

namespace ffc::train {

enum class Phase {
  kData,
  kProbeForward,
  kGalleryForward,
  kHead,
  kBackward,
  kComm,
  kOptimizer,
  kCount
};
const char* phase_name(Phase p);

// Accumulates wall time per phase between take() calls. Phases are timed one after another by
// the training loop: start(phase) ends the previous phase. On a GPU the host runs ahead of the
// device, so a phase's host time is when its work was enqueued. Two ways to the device's times:
// device marks (use_device_marks: events on the device's stream, read without waiting, the
// default on a GPU) or a synchronisation hook (sync_phases: every phase boundary waits for the
// device, at the cost of speed).
class PhaseTimer {
 public:
  using Times = std::array<double, static_cast<int>(Phase::kCount)>;
  PhaseTimer() {
    times_.fill(0.0);
    device_times_.fill(0.0);
  }
  void set_sync(std::function<void()> sync) { sync_ = std::move(sync); }
  // Times the phases on `device` too (nothing on the CPU, where device_clock() stays false).
  void use_device_marks(at::Device device);
  bool device_clock() const { return marks_ != nullptr; }
  void start(Phase p);
  void stop();
  void add(Phase p, double seconds) { times_[static_cast<int>(p)] += seconds; }
  // Host seconds per phase since the last take(), and reset.
  Times take();
  // Device seconds per phase since the last take_device(), once the device has passed every
  // phase started so far (the only wait), and reset. Zeros without device marks.
  Times take_device();

 private:
  using Clock = std::chrono::steady_clock;
  void end_host_phase();
  Times times_;
  Times device_times_;
  int current_ = -1;
  Clock::time_point since_;
  std::function<void()> sync_;
  std::unique_ptr<comm::PhaseMarks> marks_;
};

// Figures of one step for metrics.jsonl and the progress line, in the order added: values known
// on the host, and device scalars that stay on the device until resolve() copies them all to
// the host at once (the only wait for the device a progress line costs).
class StepFigures {
 public:
  void add(const std::string& name, double value);
  void add(const std::string& name, int64_t value) { add(name, static_cast<double>(value)); }
  void add(const std::string& name, const at::Tensor& device_scalar);
  void append(const StepFigures& other);
  bool empty() const { return entries_.empty(); }
  // name -> value (integral figures known on the host as integers).
  nlohmann::ordered_json resolve() const;

 private:
  struct Entry {
    std::string name;
    double value = 0;
    bool integral = false;
    at::Tensor tensor;
  };
  std::vector<Entry> entries_;
};

// Writes one JSON object per line to <output>/metrics.jsonl (rank 0 only; other ranks hold a
// disabled writer). A new run starts the file afresh; a resumed run appends to it.
class MetricsWriter {
 public:
  MetricsWriter() = default;
  MetricsWriter(const std::string& path, bool enabled, bool append);
  void write(const nlohmann::ordered_json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// "4m12s", "1h03m", "38s"
std::string format_duration(double seconds);

}  // namespace ffc::train
