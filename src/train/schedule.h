#pragma once
// Learning-rate schedules, as functions of the global step (so a resumed run recomputes them).
//   poly:      linear warm-up over warmup_epoch epochs from 0, then base * (1 - t)^1 to 0 at the
//   end
//              (insightface's PolyScheduler, power 1)
//   multistep: base * 0.1^(number of lr_steps epochs <= the current epoch), warm-up as above
//              (the FFC authors: steps 8, 14, 17 over 19 epochs, no warm-up)

#include <cstdint>
#include <string>
#include <vector>

namespace ffc::train {

struct ScheduleSpec {
  std::string kind = "poly";
  double base_lr = 0.1;
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;
  std::vector<int64_t> milestones_epochs;  // multistep
};

double learning_rate(const ScheduleSpec& s, int64_t step);

}  // namespace ffc::train
