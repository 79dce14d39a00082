#pragma once
// Margins on the positive logit of a normalised softmax classifier (docs/method.md):
//
//   combined  cos(m1*theta + m2) - m3        insightface's margin_list (ArcFace 1,0.5,0; CosFace
//   1,0,0.4) am        cos - m                         CosFace / AM-softmax (the FFC authors' "AM")
//   arc       cos(theta + m)                  ArcFace (the FFC authors' "Arc")
//   sv        cos - m if cos > m, else cos;   the FFC authors' "SV": negatives with
//             cos > cos_y - m become 1.2*cos + 0.2 (hard negatives re-weighted, t = 0.2)
//
// ArcFace-type margins guard theta + m > pi (where cos(theta + m) would rise again): there the
// margin continues as cos - m*sin(m) (- m3), the standard fallback; the FFC authors have no guard.
// Logits are multiplied by the scale s after the margin. Gradients use the exact derivative of
// the margin with respect to cos.

#include <ATen/core/Tensor.h>

#include <string>

#include "common/config.h"

namespace ffc::head {

enum class MarginType { kCombined, kAm, kArc, kSv };

struct MarginSpec {
  MarginType type = MarginType::kCombined;
  double m1 = 1.0;
  double m2 = 0.5;
  double m3 = 0.0;
  double scale = 64.0;
  double sv_t = 0.2;  // hard-negative re-weighting of "sv": cos -> (1 + t) cos + t

  std::string describe() const;
  // Applies the margin to target cosines `t` (any shape): returns the new logits before scaling.
  at::Tensor apply(const at::Tensor& t) const;
  // d apply(t) / d t, element-wise.
  at::Tensor derivative(const at::Tensor& t) const;
};

// The margin of a configuration. loss_type "auto" picks the method's recipe: ffc -> am (m 0.5,
// s 32, the authors' launcher), vfc -> arc (m 0.5, s 32, the VFC authors), fc and pfc ->
// combined margin_list (s 64, insightface). margin <= 0 and scale <= 0 mean those defaults.
MarginSpec margin_from_config(const Config& config);

}  // namespace ffc::head
