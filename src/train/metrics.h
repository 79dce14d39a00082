#pragma once
// Per-phase timings, the progress line and metrics.jsonl.

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>

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
// the training loop: start(phase) ends the previous phase.
class PhaseTimer {
 public:
  PhaseTimer() { times_.fill(0.0); }
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
