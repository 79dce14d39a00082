#pragma once
// Dataset inspection and packing: `ffc data stat`, `ffc data verify`, `ffc pack`. Torch-free.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/image_source.h"
#include "data/jpeg.h"
#include "data/recordio_dataset.h"

namespace ffc::data {

struct DatasetStats {
  int64_t images = 0;
  int64_t classes = 0;
  int image_size = 0;
  int64_t min_per_class = 0;
  int64_t median_per_class = 0;
  int64_t max_per_class = 0;
  double mean_per_class = 0;
  // Classes with 1, 2-5, 6-20, 21-100 and more than 100 images.
  int64_t buckets[5] = {0, 0, 0, 0, 0};
  bool flip = true;  // false: mirrored images are other identities (dataset.json)
};
DatasetStats dataset_stats(const ImageSource& source);
std::string stats_json(const DatasetStats& stats, const std::string& path);

struct BadRecord {
  int64_t image;
  std::string reason;  // the FormatError/IoError message: names file, record, byte offset
};
// Reads and decodes every image (and checks identity records against image labels where the
// dataset has them). Calls `progress(done, total)` now and then. Never throws for bad records:
// they are returned.
std::vector<BadRecord> verify_dataset(const ImageSource& source,
                                      const std::function<void(int64_t, int64_t)>& progress);

// Writes insightface's layout into folder `out` (created if needed): train.rec, train.idx,
// property, with a header record 0 and one identity record per class, records byte-identical to
// MXNet's writer, exact 64-bit labels in id2. Files are written under temporary names and
// renamed at the end, so an interrupted pack leaves no half dataset behind.
struct PackReport {
  int64_t images = 0;
  int64_t classes = 0;
  int image_size = 0;
  uint64_t bytes = 0;
};
// The JPEG files (.jpg/.jpeg) of an image folder, sorted by name: with one sub-folder per identity
// (identity k is the k-th sub-folder, its files labelled k), or flat (files directly in the
// folder, no labels). Paths are relative to the folder. Throws FormatError when the folder holds
// neither, or an identity sub-folder holds no JPEG file.
struct ImageFolder {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;          // empty for a flat folder
  std::vector<std::string> identities;  // the sub-folders in label order (empty if flat)
};
ImageFolder list_image_folder(const std::string& folder, bool allow_flat);
std::vector<uint8_t> read_whole_file(const std::string& path);

// From a folder with one sub-folder per identity holding JPEG files (sorted by name: identity k
// is the k-th sub-folder). All images must share one size (it goes into property).
// `info` goes into out/dataset.json where it differs from the defaults (a stale dataset.json is
// removed otherwise).
PackReport pack_folder(const std::string& folder, const std::string& out,
                       const DatasetInfo& info = {});
// From any image source (procedural identities): each image encoded as JPEG at `quality`.
PackReport pack_source(const ImageSource& source, const std::string& out, int quality,
                       const std::function<void(int64_t, int64_t)>& progress);

}  // namespace ffc::data
