#include "common/input_norm.h"

#include <cmath>
#include <sstream>

#include "common/error.h"

namespace ffc {

InputNorm input_norm_named(const std::string& name) {
  if (name == "ffc") {
    return {"ffc", 127.5, 128.0};
  }
  if (name == "insightface") {
    return {"insightface", 127.5, 127.5};
  }
  throw ConfigError("unknown input normalisation '" + name +
                    "'; known: ffc ((x - 127.5) / 128, the FFC authors'), insightface ((x - "
                    "127.5) / 127.5, insightface's arcface_torch)");
}

std::string describe(const InputNorm& norm) {
  std::ostringstream s;
  s << norm.name << ": (x - " << norm.mean << ") / " << norm.stddev;
  return s.str();
}

InputNorm resolve_input_norm(const std::string& key, const std::optional<InputNorm>& from_init) {
  if (key == "auto") {
    return from_init ? *from_init : legacy_input_norm();
  }
  return input_norm_named(key);
}

std::optional<InputNorm> input_norm_from_attributes(const std::optional<std::string>& name,
                                                    const std::optional<double>& mean,
                                                    const std::optional<double>& stddev,
                                                    const std::string& path) {
  if (!name) {
    if (mean || stddev) {
      throw FormatError(path +
                        ": root attributes input_mean/input_std without input_norm; add "
                        "input_norm (ffc or insightface) or remove them");
    }
    return std::nullopt;
  }
  InputNorm norm;
  try {
    norm = input_norm_named(*name);
  } catch (const ConfigError& e) {
    throw FormatError(path + ": root attribute input_norm: " + e.what());
  }
  const auto check = [&](const std::optional<double>& v, double expected, const char* attr) {
    if (v && std::abs(*v - expected) > 1e-9 * expected) {
      std::ostringstream s;
      s << path << ": root attribute " << attr << " is " << *v << ", but input_norm '" << norm.name
        << "' means " << expected << "; the file is inconsistent";
      throw FormatError(s.str());
    }
  };
  check(mean, norm.mean, "input_mean");
  check(stddev, norm.stddev, "input_std");
  return norm;
}

void normalize_pixels(const uint8_t* hwc, int size, bool mirror, const InputNorm& norm,
                      float* chw) {
  // Division, not multiplication by 1/std: (x - 127.5) / 127.5 as PyTorch computes it. For
  // std = 128 both are exact.
  const float mean = static_cast<float>(norm.mean);
  const float stddev = static_cast<float>(norm.stddev);
  const int64_t plane = static_cast<int64_t>(size) * size;
  for (int y = 0; y < size; ++y) {
    const uint8_t* row = hwc + static_cast<int64_t>(y) * size * 3;
    for (int x = 0; x < size; ++x) {
      const uint8_t* px = row + (mirror ? size - 1 - x : x) * 3;
      const int64_t o = static_cast<int64_t>(y) * size + x;
      chw[o] = (static_cast<float>(px[0]) - mean) / stddev;
      chw[plane + o] = (static_cast<float>(px[1]) - mean) / stddev;
      chw[2 * plane + o] = (static_cast<float>(px[2]) - mean) / stddev;
    }
  }
}

}  // namespace ffc
