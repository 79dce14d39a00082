#include "train/schedule.h"

#include <algorithm>

#include "common/error.h"

namespace ffc::train {

double learning_rate(const ScheduleSpec& s, int64_t step) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) {
    return s.base_lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  }
  if (s.kind == "multistep") {
    const int64_t epoch = step / std::max<int64_t>(s.steps_per_epoch, 1);
    double lr = s.base_lr;
    for (int64_t m : s.milestones_epochs) {
      if (epoch >= m) {
        lr *= 0.1;
      }
    }
    return lr;
  }
  FFC_CHECK(s.kind == "poly", "unknown learning-rate schedule '" + s.kind + "'");
  const double span = static_cast<double>(std::max<int64_t>(s.total_steps - s.warmup_steps, 1));
  const double t = static_cast<double>(step - s.warmup_steps) / span;
  return s.base_lr * std::max(0.0, 1.0 - t);
}

}  // namespace ffc::train
