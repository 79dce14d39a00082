#pragma once
// How a network's input is made from 8-bit pixels: (pixel - mean) / std per channel, CHW, float32.
// It belongs to the network: training, validation, `ffc eval` and `ffc embed` must use the
// constants the network was trained with, so checkpoints and backbone files record them (root
// attributes input_norm, input_mean, input_std; docs/models.md, "Input normalisation").
//   ffc          (x - 127.5) / 128    the FFC authors' loader; ffc's default
//   insightface  (x - 127.5) / 127.5  insightface's arcface_torch, (x / 255 - 0.5) / 0.5
// Files written before ffc recorded it hold no input_norm and were trained with "ffc".

#include <cstdint>
#include <optional>
#include <string>

namespace ffc {

struct InputNorm {
  std::string name;  // "ffc" or "insightface"
  double mean = 127.5;
  double stddev = 128.0;
};

// The normalisation of that name; throws ConfigError naming the known ones.
InputNorm input_norm_named(const std::string& name);

// The normalisation of files that record none (written before ffc recorded it).
inline InputNorm legacy_input_norm() {
  return input_norm_named("ffc");
}

// "ffc: (x - 127.5) / 128", for logs and summaries.
std::string describe(const InputNorm& norm);

// The normalisation a run uses for `input_norm` (auto, ffc or insightface): auto takes the one
// recorded in the init_backbone file (`from_init`), else ffc's.
InputNorm resolve_input_norm(const std::string& key, const std::optional<InputNorm>& from_init);

// Root attributes as a file records them. `mean` and `std`, when present, must match the name's
// constants; returns nullopt when the file records no input_norm. Throws FormatError naming
// `path` and the attribute otherwise.
std::optional<InputNorm> input_norm_from_attributes(const std::optional<std::string>& name,
                                                    const std::optional<double>& mean,
                                                    const std::optional<double>& stddev,
                                                    const std::string& path);

// One image: `hwc` size x size x 3 bytes; writes 3 planes of size x size floats to `chw`,
// mirrored left-right when `mirror`. No allocation.
void normalize_pixels(const uint8_t* hwc, int size, bool mirror, const InputNorm& norm, float* chw);

}  // namespace ffc
