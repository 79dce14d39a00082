#pragma once
// Named tensors (a PyTorch-style state dict) in an HDF5 file: one dataset per tensor at the root,
// named by its key exactly ("layer1.0.bn1.weight": a flat name with dots, not nested groups, so
// h5py users read f["layer1.0.bn1.weight"] and the keys are the state-dict keys as they are),
// written in the given order (the file tracks creation order), plus attributes on the root.
// Element types: float32, float64, int64; any shape, including 0-dim tensors
// (num_batches_tracked), which become scalar datasets.

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "ckpt/h5.h"

namespace ffc::ckpt {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;
using h5::Attributes;
using h5::AttributeValue;

// Writes `tensors` (any device; copied to the CPU) and `root_attributes` to `path`, atomically:
// the file is written under a temporary name in the same directory and renamed over `path` only
// once it is complete and closed, so a crash never leaves a half-written file at `path`.
// Throws IoError / LibraryError; on failure the temporary file is removed.
void write_tensors_h5(const std::string& path, const NamedTensors& tensors,
                      const Attributes& root_attributes);

// Every dataset at the root, as CPU tensors, in the order they were written.
NamedTensors read_tensors_h5(const std::string& path);

// The root attributes.
Attributes read_root_attributes_h5(const std::string& path);

// Strict load into existing tensors (parameters and buffers of a model, on any device): the file
// must hold exactly the names of `into`, each with the same shape and element type. Everything
// is checked before anything is written, so on error `into` is unchanged. Throws FormatError
// naming the file, the tensor and both shapes (or the missing / unexpected name).
void load_tensors_h5(const std::string& path, const NamedTensors& into);

// "[512, 25088]", "[]" for a 0-dim tensor.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace ffc::ckpt
