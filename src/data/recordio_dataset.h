#pragma once
// insightface's dataset layout: a folder with train.rec, train.idx ("key\toffset" lines) and
// property ("num_classes,height,width"). Record 0 may carry, in its float labels, the key range
// [first identity record, end): images are then keys 1 .. first-1, and identity record k holds,
// in its labels, the key range [start, end) of the images of class k - first. Without that header
// every indexed record is an image, in key order. Torch-free.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/image_source.h"
#include "data/jpeg.h"
#include "data/record_index.h"
#include "data/recordio.h"

namespace ffc::data {

struct RecordDatasetOptions {
  int image_size = 112;  // expected square size
  ColorOrder color_order = ColorOrder::kRgb;
  bool resize = false;  // resize images of another size instead of failing
};

// The property file of a dataset folder: "num_classes,height,width". Throws IoError / FormatError
// naming the file.
struct DatasetProperty {
  int64_t num_classes = 0;
  int height = 0;
  int width = 0;
};
DatasetProperty read_property(const std::string& dir);

// ffc's own facts about a dataset, in the optional file dataset.json beside property
// (docs/data.md, "dataset.json"): {"format": "ffc-dataset", "format_version": 1, "flip": false}.
// flip false: a mirrored image is another identity (glyphs), so training refuses flip: true and
// evaluation never mirrors. Without the file every default holds (insightface's sets).
struct DatasetInfo {
  bool flip = true;
  bool operator==(const DatasetInfo& o) const { return flip == o.flip; }
};
inline constexpr const char* kDatasetInfoFile = "dataset.json";
// Throws FormatError naming the file and the key for a malformed file.
DatasetInfo read_dataset_info(const std::string& dir);
// The file's text for `info`.
std::string dataset_info_json(const DatasetInfo& info);
// The folder of a dataset path (the folder itself, or the folder of its train.rec).
std::string dataset_folder(const std::string& path);

class RecordDataset final : public ImageSource {
 public:
  // `path`: the dataset folder, or its train.rec (train.idx and property beside it). Without an
  // .idx the .rec is scanned once (with a progress line) and the index kept in memory.
  RecordDataset(const std::string& path, const RecordDatasetOptions& options);

  std::string describe() const override;
  int64_t num_images() const override { return num_images_; }
  int64_t num_classes() const override { return num_classes_; }
  int image_size() const override { return options_.image_size; }
  int64_t class_size(int64_t label) const override;
  int64_t class_image(int64_t label, int64_t j) const override;
  std::unique_ptr<ImageReader> make_reader() const override;
  void will_read(int64_t first, int64_t count) const override;
  void drop_cached() const override { file_->drop_cached(); }
  int64_t stored_bytes() const override { return static_cast<int64_t>(file_->size()); }
  bool mirror_allowed() const override { return info_.flip; }
  const std::string& folder() const { return dir_; }

  // The record key of image `image`, and the byte offset of record `key` in train.rec.
  int64_t image_key(int64_t image) const;
  uint64_t offset_of_key(int64_t key) const;
  const RecordFile& file() const { return *file_; }
  const std::string& idx_path() const { return idx_path_; }  // train.idx (may not exist)
  bool has_identity_records() const { return identity_begin_ >= 0; }
  // Image size from the property file.
  int property_height() const { return height_; }
  int property_width() const { return width_; }
  // Bytes of in-memory tables (index, class table once built); 0 with a mapped binary index.
  int64_t table_bytes() const;
  // Bytes of the mapped binary index (0 without one).
  int64_t mapped_index_bytes() const;
  // Writes the binary index (record_index_path of the .rec), building the class table first.
  // Returns its path.
  std::string write_index() const;

 private:
  void build_class_table() const;
  void build_class_table_from_identity_records() const;
  void build_class_table_by_scan() const;

  std::string dir_;
  std::string rec_path_;
  std::string idx_path_;
  RecordDatasetOptions options_;
  DatasetInfo info_;
  std::shared_ptr<RecordFile> file_;
  int64_t num_classes_ = 0;
  int height_ = 0;
  int width_ = 0;

  // Index. Contiguous keys (the common case) store only offsets: key k at offs_[k - first_key_].
  // The tables are read through pointers into the mapped binary index (data/record_index.h) or,
  // without one, into the vectors below, built from train.idx.
  int64_t first_key_ = 0;
  int64_t num_entries_ = 0;
  const uint64_t* offs_ = nullptr;
  const int64_t* keys_ = nullptr;  // nullptr when keys are contiguous
  std::vector<uint64_t> offsets_;
  std::vector<int64_t> sparse_keys_;  // non-empty when keys are not contiguous (sorted)
  std::shared_ptr<MappedRecordIndex> index_;
  std::string index_note_;  // how the index was obtained, for describe()

  // Images: keys image_first_key_ + i for i < num_images_ (insightface layout), or the i-th
  // indexed key in key order.
  int64_t num_images_ = 0;
  int64_t image_first_key_ = -1;  // -1: images are all indexed keys in order
  int64_t identity_begin_ = -1;   // first identity record key, -1 if none
  int64_t identity_end_ = -1;

  // Class -> images, built on first use (the identity sampler needs it; the instance sampler
  // does not). Either ranges (images of a class are contiguous) or a CSR list.
  mutable std::once_flag class_table_once_;
  mutable std::vector<int64_t> class_begin_;   // num_classes + 1 entries
  mutable std::vector<int32_t> class_images_;  // CSR list when images are not grouped
  mutable const int64_t* cbegin_ = nullptr;    // the class table in use
  mutable const int32_t* cimages_ = nullptr;   // nullptr when classes are ranges
};

// Several datasets as one: images and labels of dataset k follow those of datasets 0..k-1
// (labels offset by the classes before). All must have the same image size.
class ConcatSource final : public ImageSource {
 public:
  explicit ConcatSource(std::vector<std::shared_ptr<ImageSource>> parts);
  std::string describe() const override;
  int64_t num_images() const override { return image_offsets_.back(); }
  int64_t num_classes() const override { return class_offsets_.back(); }
  int image_size() const override { return parts_.front()->image_size(); }
  int64_t class_size(int64_t label) const override;
  int64_t class_image(int64_t label, int64_t j) const override;
  std::unique_ptr<ImageReader> make_reader() const override;
  void will_read(int64_t first, int64_t count) const override;
  bool mirror_allowed() const override {
    for (const auto& p : parts_) {
      if (!p->mirror_allowed()) {
        return false;
      }
    }
    return true;
  }
  void drop_cached() const override {
    for (const auto& p : parts_) {
      p->drop_cached();
    }
  }
  int64_t stored_bytes() const override {
    int64_t sum = 0;
    for (const auto& p : parts_) {
      sum += p->stored_bytes();
    }
    return sum;
  }

 private:
  friend class ConcatReader;
  std::vector<std::shared_ptr<ImageSource>> parts_;
  std::vector<int64_t> image_offsets_;  // parts + 1 entries
  std::vector<int64_t> class_offsets_;
};

}  // namespace ffc::data
