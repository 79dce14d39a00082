#pragma once
// A backbone in an HDF5 file that PyTorch users can load (docs/models.md, "Export format"):
// one dataset per state-dict entry at the root, named by its PyTorch key
// ("layer1.0.bn1.weight"), in state-dict order, float32 (num_batches_tracked: int64 scalar);
// root attributes format = "ffc-backbone", format_version, network, embedding_size, image_size,
// producer. tools/ffc_h5.py turns such a file into a PyTorch state dict that insightface's model
// of the same name loads with strict=True.

#include <string>

#include "common/input_norm.h"
#include "model/model.h"

namespace ffc::model {

inline constexpr const char* kBackboneFormat = "ffc-backbone";
inline constexpr int64_t kBackboneFormatVersion = 1;

// Writes the backbone (any device) atomically (temporary file, then rename), with the input
// normalisation it was trained with.
void export_backbone_h5(const Backbone& net, const InputNorm& norm, const std::string& path);

// The spec recorded in a file written by export_backbone_h5 (name, embedding and image size).
// Throws FormatError when the file is not such a file or of a newer format version.
BackboneSpec read_backbone_spec_h5(const std::string& path);

// Strict load into an existing backbone (its device): every tensor must be present with the same
// shape; on error the backbone is unchanged and the message names the tensor, both shapes and
// what the file holds.
void load_backbone_h5(Backbone& net, const std::string& path);

}  // namespace ffc::model
