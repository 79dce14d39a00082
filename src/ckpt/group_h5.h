#pragma once
// Named tensors (a state dict) in a group of an HDF5 file: the datasets directly in the group,
// named by their keys as they are ("layer1.0.bn1.weight", flat names), e.g. the probe net of a
// checkpoint under "/probe" and the gallery net under "/gallery". The root-level functions of
// ckpt/state_dict_h5.h are the same with the group "/".

#include <string>

#include "ckpt/state_dict_h5.h"

namespace ffc::ckpt {

// Every dataset directly in `group` ("/probe", "probe" or "/" for the root), as CPU tensors, in
// creation order where the file tracks it. Throws FormatError when the group does not exist.
NamedTensors read_group_tensors_h5(const std::string& path, const std::string& group);

// Strict load of `group` into existing tensors, as load_tensors_h5: the group must hold exactly
// the names of `into` (sub-groups are ignored), each with the same shape and element type; all is
// checked before anything is written. Throws FormatError naming the file, the group, the tensor
// and both shapes.
void load_group_tensors_h5(const std::string& path, const std::string& group,
                           const NamedTensors& into);

// Whether `path` holds a group of that name.
bool has_group_h5(const std::string& path, const std::string& group);

}  // namespace ffc::ckpt
