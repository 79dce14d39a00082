#pragma once
// Verification sets as HDF5 files (docs/eval.md, "Verification set files"): the pairs of an
// insightface .bin (tools/bin2ffc.py converts them) or of procedural held-out identities.
//
//   images   uint8 [total bytes]   the encoded images (JPEG), concatenated
//   offsets  int64 [2P + 1]        image i is images[offsets[i] : offsets[i + 1]]
//   issame   uint8 [P]             1 for a genuine pair; pair k is images 2k and 2k + 1
//   root attributes: format = "ffc-verification-set", format_version = 1, name, image_size
//   (side of the stored images; 0 if they differ), pairs, source, producer.

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

  int64_t pairs() const { return static_cast<int64_t>(issame.size()); }
  int64_t images() const { return static_cast<int64_t>(offsets.size()) - 1; }
  void add_image(const std::vector<uint8_t>& encoded);
};

// Writes the set atomically (temporary file in the same folder, then rename). Throws IoError,
// or Error for an inconsistent set (offsets, 2 images per pair).
void write_verification_set(const std::string& path, const VerificationSet& set);

// An open set file: attributes, offsets and labels are read and checked when it opens; the image
// bytes are read on demand, a range at a time. Throws IoError / FormatError naming the file.
class VerificationSetFile {
 public:
  explicit VerificationSetFile(const std::string& path);
  ~VerificationSetFile();
  VerificationSetFile(const VerificationSetFile&) = delete;
  VerificationSetFile& operator=(const VerificationSetFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }
  int64_t image_size() const { return image_size_; }
  int64_t pairs() const { return static_cast<int64_t>(issame_.size()); }
  int64_t images() const { return 2 * pairs(); }
  const std::vector<uint8_t>& issame() const { return issame_; }
  const std::vector<int64_t>& offsets() const { return offsets_; }

  // The encoded bytes of images [begin, end), concatenated (offsets_[begin] .. offsets_[end]).
  std::vector<uint8_t> read_bytes(int64_t begin, int64_t end) const;
  // The whole set in memory.
  VerificationSet read_all() const;

 private:
  struct Handle;
  std::string path_;
  std::string name_;
  int64_t image_size_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<uint8_t> issame_;
  std::unique_ptr<Handle> handle_;
};

// An ImageFiller over the images of an open set file: decodes them (JPEG) in `order`, resized
// bilinearly to `image_size` where they have another size, normalised as in training. Not
// thread-safe (one decoder).
ImageFiller set_file_filler(const VerificationSetFile& file, int64_t image_size,
                            data::ColorOrder order, const InputNorm& norm = legacy_input_norm());

// The procedural held-out pairs as a set: each image rendered (RGB) and JPEG-encoded at `quality`.
VerificationSet synthetic_set(const data::SyntheticSource& source, const SyntheticPairs& pairs,
                              const std::string& name, int quality);

}  // namespace ffc::eval
