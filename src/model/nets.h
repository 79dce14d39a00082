#pragma once
// Internal to src/model: the network families behind the registry (model/registry.cpp).

#include <array>
#include <cstdint>
#include <memory>

#include "model/model.h"

namespace ffc::model::detail {

// insightface's IResNet: a 3x3 stem (stride 1), four stages of IBasicBlocks (stride 2 in the
// first block of each), BatchNorm2d, flatten, fc, BatchNorm1d `features`. The r-series uses
// stem 64, widths {64, 128, 256, 512}; ffc's small CPU nets are narrower and shallower.
struct IResNetShape {
  int64_t stem = 64;
  std::array<int64_t, 4> widths{64, 128, 256, 512};
  std::array<int64_t, 4> blocks{3, 4, 14, 3};
};
std::shared_ptr<Backbone> make_iresnet(const BackboneSpec& spec, const IResNetShape& shape);

// insightface's MobileFaceNet (mbf: scale 2, blocks {1, 4, 6, 2}; mbf_large: 4, {2, 8, 12, 4}).
struct MobileFaceNetShape {
  int64_t scale = 2;
  std::array<int64_t, 4> blocks{1, 4, 6, 2};
};
std::shared_ptr<Backbone> make_mobilefacenet(const BackboneSpec& spec,
                                             const MobileFaceNetShape& shape);

}  // namespace ffc::model::detail
