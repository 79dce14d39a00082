#pragma once
// MXNet RecordIO, the container of insightface's train.rec (docs/data.md has the byte layout).
//
// A file is a sequence of parts: uint32 magic 0xced7230a, uint32 lrec (top 3 bits cflag, low 29
// bits length), `length` payload bytes, zero padding to a multiple of 4. A logical record is one
// part (cflag 0) or a chain 1, 2, ..., 3 of parts: the writer splits a record wherever the magic
// appears at a 4-byte-aligned offset of its payload and drops those 4 bytes; the reader puts them
// back. Image records start with an IRHeader {uint32 flag; float label; uint64 id; uint64 id2},
// then `flag` float labels, then the image bytes.
//
// Torch-free and MPI-free, so that it builds in the sanitizer fuzz build (tests/data/fuzz).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ffc::data {

inline constexpr uint32_t kRecordMagic = 0xced7230a;
inline constexpr size_t kImageHeaderBytes = 24;
// Largest part payload the format can describe (29-bit length).
inline constexpr uint32_t kMaxPartBytes = (1u << 29) - 1;
// id2 with this bit set carries the exact 64-bit label in its low 63 bits (ffc's writer sets it
// for every record; labels above 2^24 are not exact in the float32 label field).
inline constexpr uint64_t kExactLabelBit = uint64_t{1} << 63;

struct ImageRecordHeader {
  uint32_t flag = 0;  // number of float labels that follow the header
  float label = 0;
  uint64_t id = 0;
  uint64_t id2 = 0;
};

// A parsed image record, pointing into the record's bytes (no copy).
struct ImageRecordView {
  ImageRecordHeader header;
  const float* labels = nullptr;  // `header.flag` floats (unaligned-safe: copied by label(i))
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;

  float label_at(size_t i) const;
  // A header or identity record's key range [start, end) (its two labels): exact from id and id2
  // where ffc's writer stored them there (id2's bit 63 set), else from the float labels, which
  // are exact only below 2^24. Throws FormatError for a record with fewer than two labels.
  void key_range(int64_t& start, int64_t& end, const std::string& where) const;
  // The record's class label: the exact id2 label when present, else label[0] when flag > 0,
  // else the float label. Throws FormatError when the float is not a non-negative integer.
  int64_t class_label(const std::string& where) const;
};

// Parses a logical record as an image record. `where` prefixes error messages ("train.rec:
// record 12 at byte 3456").
ImageRecordView parse_image_record(const uint8_t* data, size_t size, const std::string& where);

// The header of a key-range record (insightface's record 0 and identity records): two float
// labels [start, end) and, for readers that know it, the exact values in id and id2 (bit 63 set).
ImageRecordHeader key_range_header(int64_t start, int64_t end, std::vector<float>& labels);

// Builds the bytes of an image record: header (flag = labels.size(), label field = `label`
// unless labels are given, as MXNet's pack does), labels, payload.
void build_image_record(const ImageRecordHeader& header, const std::vector<float>& labels,
                        const uint8_t* payload, size_t payload_size, std::vector<uint8_t>& out);

// Random-access reader of one .rec file (pread; safe to share between threads).
class RecordFile {
 public:
  explicit RecordFile(const std::string& path);
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  // Reads the logical record that starts at byte `offset` into `out` (resized; its capacity is
  // reused, so a per-thread buffer allocates only while records grow). Returns the offset just
  // past the record. `key` (or -1) names the record in error messages.
  uint64_t read(uint64_t offset, std::vector<uint8_t>& out, int64_t key = -1) const;

  // Offset just past the record at `offset`, reading only part headers (validated as read()).
  uint64_t skip(uint64_t offset, int64_t key = -1) const;

  // Asks the kernel to start reading bytes [begin, end) into the page cache (a hint; errors
  // are ignored: reading works without it).
  void will_need(uint64_t begin, uint64_t end) const;
  // Drops the file's clean pages from the page cache (a hint, as will_need).
  void drop_cached() const;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // "train.rec: record 12 at byte 3456"
  std::string where(uint64_t offset, int64_t key) const;

 private:
  struct Part {
    uint32_t cflag;
    uint32_t len;
    uint64_t padded;
  };
  // Reads and validates the part header at `pos` of the record that starts at `offset`.
  Part part_at(uint64_t pos, uint64_t offset, int64_t key, bool first) const;
  void pread_exact(void* buf, size_t n, uint64_t offset, uint64_t record_offset, int64_t key) const;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Appends records byte-for-byte as MXNet's (dmlc-core) RecordIOWriter does.
class RecordWriter {
 public:
  explicit RecordWriter(const std::string& path);
  ~RecordWriter();
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  // Writes one logical record; returns the byte offset where it starts (what .idx stores).
  uint64_t write(const uint8_t* data, size_t size);
  uint64_t tell() const { return offset_; }
  // Flushes and closes; throws IoError on failure. Called by the destructor if needed (errors
  // then only logged).
  void close();

 private:
  void put(const void* data, size_t n);
  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
};

// One line of an .idx file: "key\toffset".
struct IndexEntry {
  int64_t key;
  uint64_t offset;
};

// Reads an .idx file (throws FormatError naming the line for anything but "<int>\t<int>").
std::vector<IndexEntry> read_index(const std::string& path);
// Builds the index by one sequential scan of a .rec file (keys 0, 1, 2, ... in file order, as
// MXNet's im2rec assigns them). `progress` is called every ~1% with (bytes done, bytes total).
std::vector<IndexEntry> scan_index(const RecordFile& file,
                                   void (*progress)(uint64_t, uint64_t) = nullptr);
void write_index(const std::string& path, const std::vector<IndexEntry>& entries);

}  // namespace ffc::data
