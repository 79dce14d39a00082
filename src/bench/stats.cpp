#include "bench/stats.h"

#include <algorithm>
#include <sstream>

namespace ffc::bench {

double median(std::vector<double> v) {
  if (v.empty()) {
    return std::nan("");
  }
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt_num(double v, int digits) {
  if (std::isnan(v)) {
    return "-";
  }
  std::ostringstream o;
  o.precision(digits);
  o << std::fixed << v;
  return o.str();
}

std::string points(double v) {
  std::ostringstream o;
  o.precision(2);
  o << std::fixed << (v >= 0 ? "+" : "") << 100 * v;
  return o.str();
}

void Stat::add(double v) {
  if (std::isnan(v)) {
    return;
  }
  mean = n == 0 ? v : (mean * n + v) / (n + 1);
  lo = n == 0 ? v : std::min(lo, v);
  hi = n == 0 ? v : std::max(hi, v);
  ++n;
}

std::string Stat::text(int digits) const {
  if (n == 0) {
    return "-";
  }
  if (n == 1) {
    return fmt_num(mean, digits);
  }
  return fmt_num(mean, digits) + " (" + fmt_num(lo, digits) + "–" + fmt_num(hi, digits) + ")";
}

}  // namespace ffc::bench
