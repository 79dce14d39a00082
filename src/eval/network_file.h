#pragma once
// The network `ffc eval` evaluates, from a file:
// - an exported backbone (`ffc model export`, model/export.h): tensors at the root, the network
//   named by the root attributes network, embedding_size, image_size;
// - a checkpoint: the state dict of the probe net in the group "/probe" and of the gallery net in
//   "/gallery", the network named by the checkpoint's root attributes network, embedding_size,
//   image_size (and its step by the attribute step, where present).
// Both record the input normalisation the network was trained with (root attribute input_norm);
// files written before ffc recorded it were trained with ffc's, (x - 127.5) / 128.

#include <cstdint>
#include <memory>
#include <string>

#include "common/input_norm.h"
#include "model/model.h"

namespace ffc::eval {

struct NetworkSource {
  std::string backbone;       // an exported backbone file, or
  std::string checkpoint;     // a checkpoint file
  std::string net = "probe";  // with a checkpoint: the group, probe or gallery
  std::string input_norm;     // "": the one the file records; else ffc or insightface (override)
};

struct LoadedNetwork {
  std::shared_ptr<model::Backbone> net;  // on the CPU, in eval mode
  std::string description;               // for logs: "tiny (D 128, 32x32), probe net of F.h5"
  int64_t step = 0;                      // the checkpoint's step; 0 for a backbone
  InputNorm input_norm;                  // how its input is normalised (see input_norm_note)
  std::string input_norm_note;           // where input_norm came from, for the log
};

// The spec from root attributes network, embedding_size and image_size of any HDF5 file.
// Throws FormatError naming the file and the missing attribute.
model::BackboneSpec read_network_spec_h5(const std::string& path);

// Builds the network and loads its weights strictly. Throws ConfigError when neither or both
// files are given or `net` is neither probe nor gallery; FormatError / IoError for bad files.
LoadedNetwork load_network(const NetworkSource& source);

}  // namespace ffc::eval
