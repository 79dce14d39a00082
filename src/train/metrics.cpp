#include "train/metrics.h"

#include <cstdio>

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

void PhaseTimer::start(Phase p) {
  stop();
  current_ = static_cast<int>(p);
  since_ = Clock::now();
}

void PhaseTimer::stop() {
  if (current_ >= 0) {
    times_[current_] += std::chrono::duration<double>(Clock::now() - since_).count();
    current_ = -1;
  }
}

std::array<double, static_cast<int>(Phase::kCount)> PhaseTimer::take() {
  stop();
  auto t = times_;
  times_.fill(0.0);
  return t;
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
