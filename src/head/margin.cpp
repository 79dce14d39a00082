#include "head/margin.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "common/methods.h"

namespace ffc::head {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kEps = 1e-7;

// Parameters of the angular form cos(m1*theta + m2) - m3 for the types that have one.
void angular(const MarginSpec& s, double& m1, double& m2, double& m3) {
  switch (s.type) {
    case MarginType::kCombined:
      m1 = s.m1;
      m2 = s.m2;
      m3 = s.m3;
      return;
    case MarginType::kArc:
      m1 = 1.0;
      m2 = s.m2;
      m3 = 0.0;
      return;
    default:
      FFC_CHECK(false, "not an angular margin");
  }
}

}  // namespace

std::string MarginSpec::describe() const {
  std::ostringstream o;
  switch (type) {
    case MarginType::kCombined:
      o << "combined margin cos(" << m1 << "*theta + " << m2 << ") - " << m3;
      break;
    case MarginType::kAm:
      o << "AM (CosFace) cos - " << m3;
      break;
    case MarginType::kArc:
      o << "ArcFace cos(theta + " << m2 << ")";
      break;
    case MarginType::kSv:
      o << "SV: cos - " << m3 << " if cos > " << m3 << ", hard negatives " << (1 + sv_t)
        << "*cos + " << sv_t;
      break;
  }
  o << ", scale " << scale;
  return o.str();
}

at::Tensor MarginSpec::apply(const at::Tensor& t) const {
  if (type == MarginType::kAm) {
    return t - m3;
  }
  if (type == MarginType::kSv) {
    return at::where(t > m3, t - m3, t);
  }
  double a = 0, b = 0, c = 0;
  angular(*this, a, b, c);
  if (a == 1.0 && b == 0.0) {
    return t - c;  // pure CosFace written as a combined margin
  }
  const at::Tensor theta = at::acos(t.clamp(-1.0 + kEps, 1.0 - kEps));
  const at::Tensor angle = theta * a + b;
  const at::Tensor margin = at::cos(angle) - c;
  // Guard: beyond pi the cosine would increase again; continue monotonically instead.
  const at::Tensor fallback = t - c - b * std::sin(b);
  return at::where(angle <= kPi, margin, fallback);
}

at::Tensor MarginSpec::derivative(const at::Tensor& t) const {
  if (type == MarginType::kAm || type == MarginType::kSv) {
    return at::ones_like(t);
  }
  double a = 0, b = 0, c = 0;
  angular(*this, a, b, c);
  (void)c;
  if (a == 1.0 && b == 0.0) {
    return at::ones_like(t);
  }
  const at::Tensor tc = t.clamp(-1.0 + kEps, 1.0 - kEps);
  const at::Tensor theta = at::acos(tc);
  const at::Tensor angle = theta * a + b;
  // d cos(a*theta + b) / d cos(theta) = a * sin(a*theta + b) / sin(theta)
  const at::Tensor d = at::sin(angle) * a / at::sqrt(1.0 - tc * tc);
  return at::where(angle <= kPi, d, at::ones_like(t));
}

MarginSpec margin_from_config(const Config& config) {
  MarginSpec s;
  std::string type = config.loss_type;
  if (type == "auto") {
    const MethodInfo* method = find_method(config.method);
    FFC_CHECK(method != nullptr, "margin: unknown method '" + config.method + "'");
    type = method->default_loss;
  }
  const double m = config.margin > 0 ? config.margin : 0.5;
  if (type == "combined") {
    s.type = MarginType::kCombined;
    s.m1 = config.margin_list.at(0);
    s.m2 = config.margin_list.at(1);
    s.m3 = config.margin_list.at(2);
  } else if (type == "am") {
    s.type = MarginType::kAm;
    s.m1 = 1.0;
    s.m2 = 0.0;
    s.m3 = m;
  } else if (type == "arc") {
    s.type = MarginType::kArc;
    s.m1 = 1.0;
    s.m2 = m;
    s.m3 = 0.0;
  } else if (type == "sv") {
    s.type = MarginType::kSv;
    s.m1 = 1.0;
    s.m2 = 0.0;
    s.m3 = m;
  } else {
    throw ConfigError("loss_type '" + config.loss_type + "' is not auto, combined, am, arc or sv");
  }
  const bool insightface = s.type == MarginType::kCombined;
  s.scale = config.scale > 0 ? config.scale : (insightface ? 64.0 : 32.0);
  return s;
}

}  // namespace ffc::head
