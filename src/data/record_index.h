#pragma once
// The binary index of a RecordIO dataset (docs/data.md, "The binary index"): train.ffcidx beside
// train.rec, built once (`ffc pack`, `ffc data index DIR`) and memory-mapped read-only by every
// process that opens the dataset, so the ranks of a node share one copy in the page cache and
// opening a dataset reads no per-image data: start-up does not grow with the number of images.
//
// Layout (little-endian): a 256-byte header (magic "FFCIDX\0\1", version, the size and
// modification time of the .rec and .idx it was built from, the dataset's figures, the byte
// offsets of the sections, a CRC-32 of the sections and one of the header), then 8-byte aligned
// sections: record offsets (uint64 per indexed key), the keys (int64, only when they are not
// contiguous), the class table (int64 class_begin[num_classes + 1]) and, when the images of a
// class are not contiguous, the CSR image list (int32 per image). Opening checks the header's CRC,
// the file's size and that the .rec and .idx are still those it was built from; the sections'
// CRC is checked by `ffc data index --check`. A stale or damaged index is ignored with a warning
// (the dataset is then indexed in memory, as without one): it never gives wrong records.
// Torch-free.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace ffc::data {

inline constexpr uint32_t kRecordIndexVersion = 1;

// A file's size and modification time (size UINT64_MAX when it does not exist).
struct FileStamp {
  uint64_t size = UINT64_MAX;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp& o) const { return size == o.size && mtime_ns == o.mtime_ns; }
};
FileStamp stamp_of(const std::string& path);

// The tables of an indexed dataset, wherever they live.
struct IndexTables {
  int64_t num_entries = 0;  // indexed keys
  int64_t first_key = 0;
  const uint64_t* offsets = nullptr;  // [num_entries]
  const int64_t* keys = nullptr;      // [num_entries], sorted; nullptr when keys are contiguous
  int64_t num_images = 0;
  int64_t image_first_key = -1;
  int64_t identity_begin = -1;
  int64_t identity_end = -1;
  int64_t num_classes = 0;
  const int64_t* class_begin = nullptr;   // [num_classes + 1]
  const int32_t* class_images = nullptr;  // [num_images], nullptr when classes are ranges
};

// "DIR/train.rec" -> "DIR/train.ffcidx".
std::string record_index_path(const std::string& rec_path);

// Writes the index atomically (temporary name, then rename). Throws IoError naming the file.
void write_record_index(const std::string& path, const IndexTables& tables, const FileStamp& rec,
                        const FileStamp& idx);

// A mapped index: the tables point into the mapping, which lives as long as this object.
class MappedRecordIndex {
 public:
  ~MappedRecordIndex();
  MappedRecordIndex(const MappedRecordIndex&) = delete;
  MappedRecordIndex& operator=(const MappedRecordIndex&) = delete;

  // The index at `path` if it exists, is intact and was built from files with these stamps;
  // nullptr otherwise, with `why` saying what is wrong (empty when there is no index file).
  static std::unique_ptr<MappedRecordIndex> open(const std::string& path, const FileStamp& rec,
                                                 const FileStamp& idx, std::string& why);

  const IndexTables& tables() const { return tables_; }
  uint64_t bytes() const { return size_; }
  // Recomputes the CRC-32 of every section; "" when it matches, else what differs.
  std::string check_sections() const;

 private:
  MappedRecordIndex() = default;
  std::string path_;
  void* base_ = nullptr;
  uint64_t size_ = 0;
  IndexTables tables_;
};

}  // namespace ffc::data
