#include "train/loss_scaler.h"

#include "common/error.h"

namespace ffc::train {

LossScaler::LossScaler(const LossScalerOptions& options)
    : options_(options), scale_(options.init_scale) {
  FFC_CHECK(options.init_scale > 0 && options.growth_factor > 1 && options.backoff_factor > 0 &&
                options.backoff_factor < 1 && options.growth_interval >= 1,
            "loss scaler: init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
            "growth_interval >= 1 are required");
}

void LossScaler::update(bool found_non_finite) {
  if (!options_.enabled) {
    return;
  }
  if (found_non_finite) {
    scale_ *= options_.backoff_factor;
    growth_tracker_ = 0;
    ++skipped_;
    return;
  }
  if (++growth_tracker_ == options_.growth_interval) {
    scale_ *= options_.growth_factor;
    growth_tracker_ = 0;
  }
}

void LossScaler::restore(double scale, int64_t growth_tracker) {
  FFC_CHECK(scale > 0 && growth_tracker >= 0, "loss scaler: bad saved state (scale " +
                                                  std::to_string(scale) + ", tracker " +
                                                  std::to_string(growth_tracker) + ")");
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace ffc::train
