#pragma once
// Dynamic loss scaling for float16 mixed precision, as torch.cuda.amp.GradScaler: the loss is
// multiplied by `scale` before backward so that small float16 gradients do not flush to zero;
// gradients are divided by it before the optimiser step. A step whose gradients are not finite is
// skipped and the scale multiplied by backoff_factor; after growth_interval finite steps in a row
// the scale is multiplied by growth_factor. The state (scale, finite steps in a row) is saved in
// checkpoints, so a resumed run continues with the same scale. Host-side: the trainer reads the
// gradients' finiteness once per step anyway (the non-finite guard), so the scale needs no
// device-side update.

#include <cstdint>

namespace ffc::train {

struct LossScalerOptions {
  bool enabled = false;  // float16 autocast on a device
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& options);
  bool enabled() const { return options_.enabled; }
  // The factor the loss is multiplied by (1 when disabled).
  double scale() const { return options_.enabled ? scale_ : 1.0; }
  // After a step's gradients were checked.
  void update(bool found_non_finite);
  int64_t growth_tracker() const { return growth_tracker_; }
  // Steps skipped because of non-finite gradients, since the start of this process.
  int64_t skipped() const { return skipped_; }
  void restore(double scale, int64_t growth_tracker);
  // The scale has collapsed: every step overflows whatever the scale (a diverged run).
  bool collapsed() const { return options_.enabled && scale_ < kMinScale; }
  static constexpr double kMinScale = 1.0 / (1 << 24);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace ffc::train
