#pragma once
// `ffc embed`: the embeddings of a set of images written to HDF5 (docs/eval.md, "Embeddings").
// Inputs: an image folder (one sub-folder per identity, or flat), a RecordIO dataset folder
// (train.rec + train.idx) or a verification set file (.h5, tools/bin2ffc.py). Each rank embeds a
// contiguous block of the images in chunks and writes its rows collectively (parallel HDF5), so no
// rank holds more than a chunk of embeddings. The file, EMB.h5:
//   embeddings  float32 [n, D]  the network's raw output, the mirror image's added with the flip
//                               test (insightface's flip-sum), not L2-normalised
//   labels      int64 [n]       where the input has them (identity folders, RecordIO)
//   paths       string [n]      for a folder: each image's path relative to it
// and root attributes format = "ffc-embeddings", format_version, count, flip, the network's
// (network, embedding_size, image_size, input_norm, input_mean, input_std), source, source_kind,
// network_file, net, step, producer. Written under OUT.partial and renamed when complete.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "common/input_norm.h"
#include "data/jpeg.h"
#include "eval/embed.h"
#include "h5/h5.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::eval {

inline constexpr const char* kEmbeddingsFormat = "ffc-embeddings";
inline constexpr int64_t kEmbeddingsFormatVersion = 1;

// The images to embed, opened: how many, a filler that decodes and normalises them, and what the
// input says about them.
struct EmbedInput {
  std::string kind;  // "folder", "recordio" or "set"
  std::string path;
  std::string description;  // for logs
  int64_t count = 0;
  ImageFiller fill;  // images [begin, end) normalised for the network (not thread-safe)
  bool has_labels = false;
  // Folder: from the layout. RecordIO: filled by `fill` for the images it reads.
  std::shared_ptr<std::vector<int64_t>> labels;
  std::vector<std::string> paths;    // folder only
  std::shared_ptr<void> keep_alive;  // what the filler reads from
};

// Opens `path` as a folder, RecordIO dataset or set file (decided by what it is); images are
// decoded in `order` and resized bilinearly to `image_size` where they have another size. Throws
// IoError / FormatError naming the path and what was expected.
EmbedInput open_embed_input(const std::string& path, int64_t image_size, data::ColorOrder order,
                            const InputNorm& norm);

struct EmbedFileOptions {
  int64_t batch = 256;   // images per forward
  bool flip = true;      // add the mirror image's embedding
  int64_t chunk = 8192;  // images per collective write
};

// Embeds every image of `input` (the work split over the ranks in contiguous blocks) and writes
// OUT (collective). `attrs`: the root attributes besides format, format_version, count and flip.
// A failure on any rank ends the write on every rank; OUT is then untouched.
void write_embeddings_h5(model::Backbone& net, const EmbedInput& input, comm::Communicator& comm,
                         const std::string& out, const h5::Attributes& attrs,
                         const EmbedFileOptions& options);

}  // namespace ffc::eval
