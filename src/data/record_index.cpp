#include "data/record_index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/atomic_file.h"
#include "common/crc32.h"
#include "common/error.h"

namespace ffc::data {
namespace {

constexpr char kMagic[8] = {'F', 'F', 'C', 'I', 'D', 'X', 0, 1};
constexpr uint64_t kHeaderBytes = 256;

// The header as stored; 256 bytes with padding.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t rec_size;
  int64_t rec_mtime_ns;
  uint64_t idx_size;
  int64_t idx_mtime_ns;
  int64_t num_entries;
  int64_t first_key;
  int64_t num_images;
  int64_t image_first_key;
  int64_t identity_begin;
  int64_t identity_end;
  int64_t num_classes;
  uint64_t off_offsets;
  uint64_t off_keys;  // 0: contiguous keys
  uint64_t off_class_begin;
  uint64_t off_class_images;  // 0: classes are ranges
  uint64_t file_bytes;
  uint32_t sections_crc;
  uint32_t header_crc;  // of the 256 header bytes with this field 0
  uint8_t reserved[256 - 152];
};
static_assert(sizeof(Header) == kHeaderBytes, "the index header is 256 bytes");

uint64_t align8(uint64_t x) {
  return (x + 7) & ~uint64_t{7};
}

uint32_t header_crc(Header h) {
  h.header_crc = 0;
  return crc32(&h, sizeof(h));
}

struct Section {
  uint64_t offset;
  uint64_t bytes;
};

std::vector<Section> sections_of(const Header& h) {
  std::vector<Section> s;
  s.push_back({h.off_offsets, static_cast<uint64_t>(h.num_entries) * 8});
  if (h.off_keys != 0) {
    s.push_back({h.off_keys, static_cast<uint64_t>(h.num_entries) * 8});
  }
  s.push_back({h.off_class_begin, static_cast<uint64_t>(h.num_classes + 1) * 8});
  if (h.off_class_images != 0) {
    s.push_back({h.off_class_images, static_cast<uint64_t>(h.num_images) * 4});
  }
  return s;
}

}  // namespace

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return {};
  }
  return {static_cast<uint64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string record_index_path(const std::string& rec_path) {
  std::string p = rec_path;
  if (p.size() > 4 && p.compare(p.size() - 4, 4, ".rec") == 0) {
    p.resize(p.size() - 4);
  }
  return p + ".ffcidx";
}

void write_record_index(const std::string& path, const IndexTables& t, const FileStamp& rec,
                        const FileStamp& idx) {
  FFC_CHECK(t.offsets != nullptr && t.class_begin != nullptr, "index without its tables");
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kRecordIndexVersion;
  h.header_bytes = kHeaderBytes;
  h.rec_size = rec.size;
  h.rec_mtime_ns = rec.mtime_ns;
  h.idx_size = idx.size;
  h.idx_mtime_ns = idx.mtime_ns;
  h.num_entries = t.num_entries;
  h.first_key = t.first_key;
  h.num_images = t.num_images;
  h.image_first_key = t.image_first_key;
  h.identity_begin = t.identity_begin;
  h.identity_end = t.identity_end;
  h.num_classes = t.num_classes;
  uint64_t at = kHeaderBytes;
  h.off_offsets = at;
  at = align8(at + static_cast<uint64_t>(t.num_entries) * 8);
  if (t.keys != nullptr) {
    h.off_keys = at;
    at = align8(at + static_cast<uint64_t>(t.num_entries) * 8);
  }
  h.off_class_begin = at;
  at = align8(at + static_cast<uint64_t>(t.num_classes + 1) * 8);
  if (t.class_images != nullptr) {
    h.off_class_images = at;
    at = align8(at + static_cast<uint64_t>(t.num_images) * 4);
  }
  h.file_bytes = at;
  const void* data[] = {t.offsets, t.keys, t.class_begin, t.class_images};
  const uint64_t offs[] = {h.off_offsets, h.off_keys, h.off_class_begin, h.off_class_images};
  const uint64_t sizes[] = {
      static_cast<uint64_t>(t.num_entries) * 8, static_cast<uint64_t>(t.num_entries) * 8,
      static_cast<uint64_t>(t.num_classes + 1) * 8, static_cast<uint64_t>(t.num_images) * 4};
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) {
    if (data[i] != nullptr) {
      crc = crc32(data[i], sizes[i], crc);
    }
  }
  h.sections_crc = crc;
  h.header_crc = header_crc(h);

  AtomicFile file(path);
  const std::string& tmp = file.temp();
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    throw IoError(tmp + ": cannot create the dataset index (" + std::strerror(errno) +
                  "); the dataset folder must be writable for `ffc data index`");
  }
  bool ok = std::fwrite(&h, sizeof(h), 1, f) == 1;
  static const char zeros[8] = {};
  uint64_t pos = kHeaderBytes;
  for (int i = 0; i < 4 && ok; ++i) {
    if (data[i] == nullptr) {
      continue;
    }
    ok = pos == offs[i] && std::fwrite(data[i], 1, sizes[i], f) == sizes[i];
    pos += sizes[i];
    const uint64_t pad = align8(pos) - pos;
    ok = ok && (pad == 0 || std::fwrite(zeros, 1, pad, f) == pad);
    pos += pad;
  }
  ok = ok && pos == h.file_bytes && std::fflush(f) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    throw IoError(path + ": cannot write the dataset index (" + std::strerror(errno) + ")");
  }
  file.commit();
}

MappedRecordIndex::~MappedRecordIndex() {
  if (base_ != nullptr) {
    ::munmap(base_, size_);
  }
}

std::unique_ptr<MappedRecordIndex> MappedRecordIndex::open(const std::string& path,
                                                           const FileStamp& rec,
                                                           const FileStamp& idx, std::string& why) {
  why.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      why = path + ": cannot open (" + std::strerror(errno) + ")";
    }
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < kHeaderBytes) {
    ::close(fd);
    why = path + ": shorter than its header; rebuild it with `ffc data index`";
    return nullptr;
  }
  void* base = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    why = path + ": cannot map (" + std::strerror(errno) + ")";
    return nullptr;
  }
  std::unique_ptr<MappedRecordIndex> m(new MappedRecordIndex());
  m->path_ = path;
  m->base_ = base;
  m->size_ = static_cast<uint64_t>(st.st_size);
  Header h{};
  std::memcpy(&h, base, sizeof(h));
  const std::string rebuild = "; rebuild it with `ffc data index DIR`";
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    why = path + ": not an ffc dataset index (bad magic)" + rebuild;
  } else if (h.version != kRecordIndexVersion || h.header_bytes != kHeaderBytes) {
    why = path + ": index version " + std::to_string(h.version) + ", this ffc reads " +
          std::to_string(kRecordIndexVersion) + rebuild;
  } else if (header_crc(h) != h.header_crc) {
    why = path + ": the header's checksum does not match (damaged)" + rebuild;
  } else if (h.file_bytes != m->size_) {
    why = path + ": " + std::to_string(m->size_) + " bytes but the header says " +
          std::to_string(h.file_bytes) + " (truncated or damaged)" + rebuild;
  } else if (h.rec_size != rec.size || h.rec_mtime_ns != rec.mtime_ns || h.idx_size != idx.size ||
             h.idx_mtime_ns != idx.mtime_ns) {
    why = path + ": stale, the .rec or .idx changed since it was built" + rebuild;
  }
  for (const Section& s : sections_of(h)) {
    if (why.empty() &&
        (s.offset < kHeaderBytes || s.offset % 8 != 0 || s.offset + s.bytes > m->size_)) {
      why = path + ": a section lies outside the file (damaged)" + rebuild;
    }
  }
  if (!why.empty()) {
    return nullptr;
  }
  const auto* bytes = static_cast<const uint8_t*>(base);
  IndexTables& t = m->tables_;
  t.num_entries = h.num_entries;
  t.first_key = h.first_key;
  t.offsets = reinterpret_cast<const uint64_t*>(bytes + h.off_offsets);
  t.keys = h.off_keys ? reinterpret_cast<const int64_t*>(bytes + h.off_keys) : nullptr;
  t.num_images = h.num_images;
  t.image_first_key = h.image_first_key;
  t.identity_begin = h.identity_begin;
  t.identity_end = h.identity_end;
  t.num_classes = h.num_classes;
  t.class_begin = reinterpret_cast<const int64_t*>(bytes + h.off_class_begin);
  t.class_images =
      h.off_class_images ? reinterpret_cast<const int32_t*>(bytes + h.off_class_images) : nullptr;
  return m;
}

std::string MappedRecordIndex::check_sections() const {
  Header h{};
  std::memcpy(&h, base_, sizeof(h));
  uint32_t crc = 0;
  for (const Section& s : sections_of(h)) {
    crc = crc32(static_cast<const uint8_t*>(base_) + s.offset, s.bytes, crc);
  }
  return crc == h.sections_crc ? std::string()
                               : path_ +
                                     ": the sections' checksum does not match (damaged); "
                                     "rebuild it with `ffc data index DIR`";
}

}  // namespace ffc::data
