#include "h5/input_norm.h"

#include "common/error.h"

namespace ffc::h5 {

h5::Attributes input_norm_attributes(const InputNorm& norm) {
  return {{"input_norm", norm.name}, {"input_mean", norm.mean}, {"input_std", norm.stddev}};
}

std::optional<InputNorm> recorded_input_norm(const h5::Attributes& attrs, const std::string& path) {
  std::optional<std::string> name;
  std::optional<double> mean;
  std::optional<double> stddev;
  for (const auto& [key, value] : attrs) {
    if (key == "input_norm") {
      const auto* v = std::get_if<std::string>(&value);
      if (v == nullptr) {
        throw FormatError(path + ": root attribute 'input_norm' is not a string");
      }
      name = *v;
    } else if (key == "input_mean" || key == "input_std") {
      double x = 0;
      if (const auto* d = std::get_if<double>(&value)) {
        x = *d;
      } else if (const auto* i = std::get_if<int64_t>(&value)) {
        x = static_cast<double>(*i);
      } else {
        throw FormatError(path + ": root attribute '" + key + "' is not a number");
      }
      (key == "input_mean" ? mean : stddev) = x;
    }
  }
  return input_norm_from_attributes(name, mean, stddev, path);
}

}  // namespace ffc::h5
