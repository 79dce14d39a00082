#pragma once
// Named tensors (a PyTorch-style state dict) in an HDF5 file: one dataset per tensor in a group,
// named by its key exactly ("layer1.0.bn1.weight": a flat name with dots, not nested groups, so
// h5py users read f["layer1.0.bn1.weight"] and the keys are the state-dict keys as they are),
// written in the given order (the file tracks creation order), plus attributes on the root. The
// group is the root "/" in exported backbones, "/probe" and "/gallery" in checkpoints.
// Element types: float32, float64, int64; any shape, including 0-dim tensors
// (num_batches_tracked), which become scalar datasets.

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "h5/h5.h"

namespace ffc::h5 {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes `tensors` (any device; copied to the CPU) at the root of `path` with `root_attributes`,
// atomically (common/atomic_file.h): a crash never leaves a half-written file at `path`. Throws
// IoError / LibraryError; on failure the temporary file is removed.
void write_tensors(const std::string& path, const NamedTensors& tensors,
                   const Attributes& root_attributes);

// Every dataset directly in `group` ("/", "probe" or "/probe"), as CPU tensors, in creation
// order where the file tracks it. Throws FormatError when the group does not exist.
NamedTensors read_tensors(const std::string& path, const std::string& group = "/");

// The root attributes.
Attributes read_root_attributes(const std::string& path);

// Strict load of `group` into existing tensors (parameters and buffers of a model, on any
// device): the group must hold exactly the names of `into` (sub-groups are ignored), each with
// the same shape and element type. Everything is checked before anything is written, so on error
// `into` is unchanged. Throws FormatError naming the file (and the group), the tensor and both
// shapes (or the missing / unexpected name).
void load_tensors(const std::string& path, const NamedTensors& into,
                  const std::string& group = "/");

// Whether `path` holds a group of that name ("/" always).
bool has_group(const std::string& path, const std::string& group);

// "[512, 25088]", "[]" for a 0-dim tensor.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace ffc::h5
