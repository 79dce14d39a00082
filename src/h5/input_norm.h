#pragma once
// A network's input normalisation (common/input_norm.h) as HDF5 root attributes of backbone files
// and checkpoints: input_norm (its name, a string), input_mean and input_std (doubles).

#include <optional>
#include <string>

#include "common/input_norm.h"
#include "h5/h5.h"

namespace ffc::h5 {

h5::Attributes input_norm_attributes(const InputNorm& norm);

// The normalisation recorded in root attributes `attrs` of the file `path`; nullopt when none is
// recorded (files written before ffc recorded it). Throws FormatError for attributes of the wrong
// kind or inconsistent values.
std::optional<InputNorm> recorded_input_norm(const h5::Attributes& attrs, const std::string& path);

// The same from an open file (a CheckpointReader: has_attribute(name), attribute(name)).
template <typename Reader>
std::optional<InputNorm> recorded_input_norm_of(const Reader& file, const std::string& path) {
  h5::Attributes attrs;
  for (const char* key : {"input_norm", "input_mean", "input_std"}) {
    if (file.has_attribute(key)) {
      attrs.emplace_back(key, file.attribute(key));
    }
  }
  return recorded_input_norm(attrs, path);
}

}  // namespace ffc::h5
