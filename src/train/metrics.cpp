#include "train/metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>

#include "comm/watchdog.h"
#include "common/error.h"

namespace ffc::train {

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kData:
      return "data";
    case Phase::kProbeForward:
      return "fwd";
    case Phase::kGalleryForward:
      return "gallery";
    case Phase::kHead:
      return "head";
    case Phase::kBackward:
      return "bwd";
    case Phase::kComm:
      return "comm";
    case Phase::kOptimizer:
      return "opt";
    case Phase::kCount:
      break;
  }
  return "?";
}

void PhaseTimer::use_device_marks(at::Device device) {
  auto marks = std::make_unique<comm::PhaseMarks>(device);
  marks_ = marks->enabled() ? std::move(marks) : nullptr;
}

void PhaseTimer::start(Phase p) {
  if (sync_) {
    sync_();
  }
  end_host_phase();
  current_ = static_cast<int>(p);
  since_ = Clock::now();
  comm::watch_stage(phase_name(p));  // where a stalled collective was, in the watchdog's message
  if (marks_) {
    marks_->mark(current_);  // ends the previous phase on the device too
  }
}

void PhaseTimer::end_host_phase() {
  if (current_ >= 0) {
    times_[current_] += std::chrono::duration<double>(Clock::now() - since_).count();
    current_ = -1;
  }
}

void PhaseTimer::stop() {
  const bool running = current_ >= 0;
  end_host_phase();
  if (running && marks_) {
    marks_->mark(-1);
  }
}

PhaseTimer::Times PhaseTimer::take() {
  if (sync_ && current_ >= 0) {
    sync_();
  }
  stop();
  if (marks_) {
    marks_->collect(device_times_.data(), /*wait=*/false);
  }
  auto t = times_;
  times_.fill(0.0);
  return t;
}

PhaseTimer::Times PhaseTimer::take_device() {
  if (marks_) {
    marks_->collect(device_times_.data(), /*wait=*/true);
  }
  auto t = device_times_;
  device_times_.fill(0.0);
  return t;
}

void StepFigures::add(const std::string& name, double value) {
  Entry e;
  e.name = name;
  e.value = value;
  e.integral = std::floor(value) == value && std::abs(value) < 9e15;
  entries_.push_back(std::move(e));
}

void StepFigures::add(const std::string& name, const at::Tensor& device_scalar) {
  Entry e;
  e.name = name;
  e.tensor = device_scalar.detach().reshape({});
  entries_.push_back(std::move(e));
}

void StepFigures::append(const StepFigures& other) {
  entries_.insert(entries_.end(), other.entries_.begin(), other.entries_.end());
}

nlohmann::ordered_json StepFigures::resolve() const {
  std::vector<at::Tensor> device;
  for (const auto& e : entries_) {
    if (e.tensor.defined()) {
      device.push_back(e.tensor.to(at::kDouble));
    }
  }
  at::Tensor values;
  if (!device.empty()) {
    values = at::stack(device).cpu();
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  size_t k = 0;
  for (const auto& e : entries_) {
    if (e.tensor.defined()) {
      out[e.name] = values[static_cast<int64_t>(k++)].item<double>();
    } else if (e.integral) {
      out[e.name] = static_cast<int64_t>(e.value);
    } else {
      out[e.name] = e.value;
    }
  }
  return out;
}

MetricsWriter::MetricsWriter(const std::string& path, bool enabled, bool append) : path_(path) {
  if (enabled) {
    out_.open(path, append ? std::ios::app : std::ios::trunc);
    if (!out_) {
      throw IoError(path +
                    ": cannot open for writing; check the output folder (config key output)");
    }
  }
}

void MetricsWriter::write(const nlohmann::ordered_json& record) {
  if (out_.is_open()) {
    out_ << record.dump() << "\n";
    out_.flush();
  }
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  }
  return buf;
}

}  // namespace ffc::train
