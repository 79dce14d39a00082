#pragma once
// Per-phase timings, the progress line and metrics.jsonl.

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

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
// device, so a phase's time is the host's unless a synchronisation hook is set (sync_phases),
// which makes every phase boundary wait for the device: device times, at the cost of speed.
class PhaseTimer {
 public:
  PhaseTimer() { times_.fill(0.0); }
  void set_sync(std::function<void()> sync) { sync_ = std::move(sync); }
  void start(Phase p);
  void stop();
  void add(Phase p, double seconds) { times_[static_cast<int>(p)] += seconds; }
  // Seconds per phase since the last take(), and reset.
  std::array<double, static_cast<int>(Phase::kCount)> take();

 private:
  using Clock = std::chrono::steady_clock;
  std::array<double, static_cast<int>(Phase::kCount)> times_;
  int current_ = -1;
  Clock::time_point since_;
  std::function<void()> sync_;
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
