// Margins on hand-computed cases, their derivatives against finite differences, the ArcFace guard.

#include "head/margin.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/config.h"

namespace ffc::head {
namespace {

double apply1(const MarginSpec& m, double t) {
  return m.apply(at::tensor({t}, at::kDouble)).item<double>();
}
double deriv1(const MarginSpec& m, double t) {
  return m.derivative(at::tensor({t}, at::kDouble)).item<double>();
}

MarginSpec spec(MarginType type, double m1, double m2, double m3) {
  MarginSpec s;
  s.type = type;
  s.m1 = m1;
  s.m2 = m2;
  s.m3 = m3;
  return s;
}

TEST(Margin, HandComputedValues) {
  const MarginSpec am = spec(MarginType::kAm, 1, 0, 0.5);
  EXPECT_NEAR(apply1(am, 0.8), 0.3, 1e-12);
  EXPECT_NEAR(apply1(am, -0.2), -0.7, 1e-12);

  const MarginSpec arc = spec(MarginType::kArc, 1, 0.5, 0);
  EXPECT_NEAR(apply1(arc, std::cos(1.0)), std::cos(1.5), 1e-9);
  EXPECT_NEAR(apply1(arc, std::cos(0.2)), std::cos(0.7), 1e-9);

  // insightface's combined margin: ArcFace (1, 0.5, 0) and CosFace (1, 0, 0.4).
  EXPECT_NEAR(apply1(spec(MarginType::kCombined, 1, 0.5, 0), std::cos(1.0)), std::cos(1.5), 1e-9);
  EXPECT_NEAR(apply1(spec(MarginType::kCombined, 1, 0, 0.4), 0.9), 0.5, 1e-12);
  EXPECT_NEAR(apply1(spec(MarginType::kCombined, 1, 0.3, 0.2), std::cos(0.5)), std::cos(0.8) - 0.2,
              1e-9);

  // SV: the margin applies only when the target cosine exceeds m.
  const MarginSpec sv = spec(MarginType::kSv, 1, 0, 0.5);
  EXPECT_NEAR(apply1(sv, 0.7), 0.2, 1e-12);
  EXPECT_NEAR(apply1(sv, 0.3), 0.3, 1e-12);
}

TEST(Margin, ArcFaceGuardBeyondPi) {
  const double m = 0.5;
  const MarginSpec arc = spec(MarginType::kArc, 1, m, 0);
  // theta = 3.0: theta + m > pi, where cos(theta + m) would grow again.
  const double t = std::cos(3.0);
  EXPECT_NEAR(apply1(arc, t), t - m * std::sin(m), 1e-9);
  EXPECT_GT(std::cos(3.0 + m), std::cos(3.0));  // what an unguarded margin would give
  EXPECT_NEAR(deriv1(arc, t), 1.0, 1e-12);
  // The margin is monotone in the cosine over the whole range.
  double prev = -1e9;
  for (double th = 3.14; th >= 0.0; th -= 0.01) {
    const double v = apply1(arc, std::cos(th));
    EXPECT_GE(v, prev - 1e-9) << th;
    prev = v;
  }
}

TEST(Margin, DerivativeMatchesFiniteDifference) {
  const double h = 1e-6;
  for (const MarginSpec& s :
       {spec(MarginType::kAm, 1, 0, 0.35), spec(MarginType::kArc, 1, 0.5, 0),
        spec(MarginType::kCombined, 1, 0.3, 0.2), spec(MarginType::kCombined, 1.2, 0.1, 0.0)}) {
    for (double t : {-0.9, -0.3, 0.0, 0.4, 0.85}) {
      const double fd = (apply1(s, t + h) - apply1(s, t - h)) / (2 * h);
      EXPECT_NEAR(deriv1(s, t), fd, 1e-5) << s.describe() << " at " << t;
    }
  }
}

TEST(Margin, MethodDefaults) {
  Config c;
  c.method = "ffc";
  MarginSpec s = margin_from_config(c);
  EXPECT_EQ(s.type, MarginType::kAm);  // the authors' launcher: AM, m 0.5, s 32
  EXPECT_DOUBLE_EQ(s.m3, 0.5);
  EXPECT_DOUBLE_EQ(s.scale, 32.0);
  c.method = "fc";
  s = margin_from_config(c);
  EXPECT_EQ(s.type, MarginType::kCombined);  // insightface: margin_list, s 64
  EXPECT_DOUBLE_EQ(s.m2, 0.5);
  EXPECT_DOUBLE_EQ(s.scale, 64.0);
  c.method = "vfc";
  EXPECT_EQ(margin_from_config(c).type, MarginType::kArc);
  c.method = "ffc";
  c.loss_type = "sv";
  c.margin = 0.35;
  c.scale = 30;
  s = margin_from_config(c);
  EXPECT_EQ(s.type, MarginType::kSv);
  EXPECT_DOUBLE_EQ(s.m3, 0.35);
  EXPECT_DOUBLE_EQ(s.scale, 30.0);
}

}  // namespace
}  // namespace ffc::head
