#pragma once
// Set files: images for evaluation as HDF5 files (docs/eval.md). Verification sets ("Verification
// set files"): the pairs of an insightface .bin (tools/bin2ffc.py converts them) or of procedural
// held-out identities; long-tail sets ("Long-tail set files"), below.
//
//   images   uint8 [total bytes]   the encoded images (JPEG), concatenated
//   offsets  int64 [2P + 1]        image i is images[offsets[i] : offsets[i + 1]]
//   issame   uint8 [P]             1 for a genuine pair; pair k is images 2k and 2k + 1
//   root attributes: format = "ffc-verification-set", format_version = 1, name, image_size
//   (side of the stored images; 0 if they differ), pairs, source, producer, and optionally flip
//   (0: never scored with the flip test).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/jpeg.h"
#include "data/synthetic.h"
#include "eval/embed.h"

namespace ffc::eval {

inline constexpr const char* kVerificationSetFormat = "ffc-verification-set";
inline constexpr int64_t kVerificationSetFormatVersion = 1;

// A whole set in memory.
struct VerificationSet {
  std::string name;
  int64_t image_size = 0;
  std::string source;          // where the pairs came from (a .bin file, "synthetic ...")
  std::vector<uint8_t> bytes;  // encoded images, concatenated
  std::vector<int64_t> offsets = {0};
  std::vector<uint8_t> issame;
  bool flip = true;  // false: the file says so (attribute flip = 0)

  int64_t pairs() const { return static_cast<int64_t>(issame.size()); }
  int64_t images() const { return static_cast<int64_t>(offsets.size()) - 1; }
  void add_image(const std::vector<uint8_t>& encoded);
};

// Writes the set atomically (temporary file in the same folder, then rename). Throws IoError,
// or Error for an inconsistent set (offsets, 2 images per pair).
void write_verification_set(const std::string& path, const VerificationSet& set);

// What every set file shares: the encoded images (`images`, `offsets`), read and checked when
// it opens, the image bytes read on demand, a range at a time (each rank reads only its own
// images); the root attributes name, image_size and flip (0: a mirrored image is another
// identity, so the set is scored without the flip test; absent: 1). Throws IoError / FormatError
// naming the file.
class SetFile {
 public:
  virtual ~SetFile();
  SetFile(const SetFile&) = delete;
  SetFile& operator=(const SetFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  int64_t image_size() const { return image_size_; }
  bool flip_allowed() const { return flip_allowed_; }
  int64_t images() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  const std::vector<int64_t>& offsets() const { return offsets_; }
  // For error messages: "image 7 (pair 3)".
  virtual std::string image_note(int64_t image) const;

  // The encoded bytes of images [begin, end), concatenated (offsets_[begin] .. offsets_[end]).
  std::vector<uint8_t> read_bytes(int64_t begin, int64_t end) const;

 protected:
  // Opens `path`, checks its format attribute against `format` (`hint`: what makes such files)
  // and reads the offsets.
  SetFile(const std::string& path, const char* format, int64_t version, const std::string& hint);
  // A 1-d dataset of the file, read whole (FormatError if missing or of another type).
  std::vector<int64_t> read_int64(const std::string& dataset) const;
  std::vector<uint8_t> read_uint8(const std::string& dataset) const;
  int64_t int_attribute(const std::string& name, int64_t fallback) const;
  // Checks the offsets against `expected` images (`why`: "two images per pair").
  void check_images(int64_t expected, const std::string& why) const;

 private:
  struct Handle;
  std::string path_;
  std::string name_;
  int64_t image_size_ = 0;
  bool flip_allowed_ = true;
  std::vector<int64_t> offsets_;
  std::unique_ptr<Handle> handle_;
};

// The format attribute of an HDF5 file's root ("" if it has none): which set file it is.
std::string set_file_format(const std::string& path);

// An open verification set file (`issame` beside the images).
class VerificationSetFile final : public SetFile {
 public:
  explicit VerificationSetFile(const std::string& path);

  int64_t pairs() const { return static_cast<int64_t>(issame_.size()); }
  const std::vector<uint8_t>& issame() const { return issame_; }
  std::string image_note(int64_t image) const override;
  // The whole set in memory.
  VerificationSet read_all() const;

 private:
  std::vector<uint8_t> issame_;
};

// A long-tail set file (docs/eval.md, "Long-tail set files"; tools/ffc_longtail.py writes them):
// for the long-tail breakdown of a dataset on disk, M identities, each with two images never
// trained on, its gallery image 2k and its probe image 2k + 1:
//   labels        int64 [M]   the identity's label (>= the set's classes if never trained)
//   train_images  int64 [M]   its training images (0: never trained)
//   population    int64 [5]   trained identities of the dataset per bucket (unseen, 1, 2-5,
//                             6-20, >20; the first 0)
//   root attributes: format = "ffc-longtail-set", format_version = 1, seed (orders the pairs of
//   the row "trained"), and those of every set file.
inline constexpr const char* kLongtailSetFormat = "ffc-longtail-set";
inline constexpr int64_t kLongtailSetFormatVersion = 1;

// A whole long-tail set in memory (for writing: tests, tools).
struct LongtailSet {
  std::string name;
  int64_t image_size = 0;
  std::string source;
  bool flip = true;
  uint64_t seed = 0;
  std::vector<uint8_t> bytes;  // encoded images, concatenated: identity k's are 2k and 2k + 1
  std::vector<int64_t> offsets = {0};
  std::vector<int64_t> labels, train_images;
  std::vector<int64_t> population = std::vector<int64_t>(5, 0);
  void add_image(const std::vector<uint8_t>& encoded);
};
void write_longtail_set(const std::string& path, const LongtailSet& set);

class LongtailSetFile final : public SetFile {
 public:
  explicit LongtailSetFile(const std::string& path);

  int64_t identities() const { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<int64_t>& train_images() const { return train_images_; }
  const std::vector<int64_t>& population() const { return population_; }
  uint64_t seed() const { return seed_; }
  std::string image_note(int64_t image) const override;

 private:
  std::vector<int64_t> labels_;
  std::vector<int64_t> train_images_;
  std::vector<int64_t> population_;
  uint64_t seed_ = 0;
};

// An ImageFiller over the images of an open set file: decodes them (JPEG) in `order`, resized
// bilinearly to `image_size` where they have another size, normalised as in training. Not
// thread-safe (one decoder).
ImageFiller set_file_filler(const SetFile& file, int64_t image_size, data::ColorOrder order,
                            const InputNorm& norm = legacy_input_norm());

// The procedural held-out pairs as a set: each image rendered (RGB) and JPEG-encoded at `quality`.
VerificationSet synthetic_set(const data::SyntheticSource& source, const SyntheticPairs& pairs,
                              const std::string& name, int quality);

}  // namespace ffc::eval
