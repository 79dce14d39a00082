#pragma once
// The statistics and number formats of the benchmark reports: medians of windows, the mean and
// range over a configuration's seeds, differences in points.

#include <cmath>
#include <string>
#include <vector>

namespace ffc::bench {

// NaN for none.
double median(std::vector<double> v);

// `v` with `digits` decimals; "-" for NaN.
std::string fmt_num(double v, int digits = 3);

// A difference of accuracies in points: +1.25 for 0.0125.
std::string points(double v);

// Mean and range over values (a configuration's seeds); NaNs are left out.
struct Stat {
  double mean = std::nan("");
  double lo = std::nan("");
  double hi = std::nan("");
  int n = 0;
  void add(double v);
  double range() const { return n > 0 ? hi - lo : std::nan(""); }
  // "0.9512 (0.9498–0.9526)", the value alone for one, "-" for none.
  std::string text(int digits) const;
};

// The Stat of f(item) over `items` (pointers).
template <typename T, typename F>
Stat over(const std::vector<const T*>& items, F f) {
  Stat s;
  for (const T* item : items) {
    s.add(f(*item));
  }
  return s;
}

}  // namespace ffc::bench
