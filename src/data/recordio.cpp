#include "data/recordio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/error.h"

namespace ffc::data {
namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::string base_name(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

float ImageRecordView::label_at(size_t i) const {
  float v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(labels) + 4 * i, 4);
  return v;
}

void ImageRecordView::key_range(int64_t& start, int64_t& end, const std::string& where) const {
  if (header.flag < 2) {
    throw FormatError(where + ": a key-range record needs two labels [start, end), it has " +
                      std::to_string(header.flag));
  }
  if (header.id2 & kExactLabelBit) {
    start = static_cast<int64_t>(header.id);
    end = static_cast<int64_t>(header.id2 & ~kExactLabelBit);
    return;
  }
  start = static_cast<int64_t>(label_at(0));
  end = static_cast<int64_t>(label_at(1));
}

ImageRecordHeader key_range_header(int64_t start, int64_t end, std::vector<float>& labels) {
  labels = {static_cast<float>(start), static_cast<float>(end)};
  ImageRecordHeader h;
  h.id = static_cast<uint64_t>(start);
  h.id2 = kExactLabelBit | static_cast<uint64_t>(end);
  return h;
}

int64_t ImageRecordView::class_label(const std::string& where) const {
  if (header.id2 & kExactLabelBit) {
    return static_cast<int64_t>(header.id2 & ~kExactLabelBit);
  }
  const float f = header.flag > 0 ? label_at(0) : header.label;
  if (!(f >= 0.0f) || f != std::floor(f) || f > 9.0e15f) {
    throw FormatError(where + ": label " + std::to_string(f) +
                      " is not a non-negative integer; the record is corrupt or not an image "
                      "record of a classification dataset");
  }
  return static_cast<int64_t>(f);
}

ImageRecordView parse_image_record(const uint8_t* data, size_t size, const std::string& where) {
  if (size < kImageHeaderBytes) {
    throw FormatError(where + ": record of " + std::to_string(size) +
                      " bytes is shorter than the 24-byte image header; not an image record");
  }
  ImageRecordView v;
  std::memcpy(&v.header.flag, data, 4);
  std::memcpy(&v.header.label, data + 4, 4);
  std::memcpy(&v.header.id, data + 8, 8);
  std::memcpy(&v.header.id2, data + 16, 8);
  const uint64_t label_bytes = uint64_t{4} * v.header.flag;
  if (label_bytes > size - kImageHeaderBytes) {
    throw FormatError(where + ": header announces " + std::to_string(v.header.flag) +
                      " labels but the record has only " +
                      std::to_string(size - kImageHeaderBytes) + " bytes after the header");
  }
  v.labels = reinterpret_cast<const float*>(data + kImageHeaderBytes);
  v.payload = data + kImageHeaderBytes + label_bytes;
  v.payload_size = size - kImageHeaderBytes - label_bytes;
  return v;
}

void build_image_record(const ImageRecordHeader& header, const std::vector<float>& labels,
                        const uint8_t* payload, size_t payload_size, std::vector<uint8_t>& out) {
  ImageRecordHeader h = header;
  h.flag = static_cast<uint32_t>(labels.size());
  if (!labels.empty()) {
    h.label = 0.0f;  // MXNet's pack() zeroes the scalar label when an array is given
  }
  out.resize(kImageHeaderBytes + 4 * labels.size() + payload_size);
  uint8_t* p = out.data();
  std::memcpy(p, &h.flag, 4);
  std::memcpy(p + 4, &h.label, 4);
  std::memcpy(p + 8, &h.id, 8);
  std::memcpy(p + 16, &h.id2, 8);
  if (!labels.empty()) {
    std::memcpy(p + kImageHeaderBytes, labels.data(), 4 * labels.size());
  }
  if (payload_size > 0) {
    std::memcpy(p + kImageHeaderBytes + 4 * labels.size(), payload, payload_size);
  }
}

// ---------------------------------------------------------------- RecordFile

RecordFile::RecordFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw IoError(path + ": cannot open (" + std::strerror(errno) +
                  "); check the dataset path (config key rec)");
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    throw IoError(path + ": cannot stat (" + std::strerror(e) + ")");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

RecordFile::~RecordFile() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::string RecordFile::where(uint64_t offset, int64_t key) const {
  std::string s = base_name(path_) + ": record ";
  s += key >= 0 ? std::to_string(key) + " " : std::string();
  return s + "at byte " + std::to_string(offset);
}

void RecordFile::will_need(uint64_t begin, uint64_t end) const {
  if (end > begin && begin < size_) {
    (void)posix_fadvise(fd_, static_cast<off_t>(begin),
                        static_cast<off_t>(std::min(end, size_) - begin), POSIX_FADV_WILLNEED);
  }
}

void RecordFile::drop_cached() const {
  (void)posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
}

void RecordFile::pread_exact(void* buf, size_t n, uint64_t offset, uint64_t record_offset,
                             int64_t key) const {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw IoError(where(record_offset, key) + ": read failed (" + std::strerror(errno) + ")");
    }
    if (r == 0) {
      throw FormatError(where(record_offset, key) + ": the file ends at byte " +
                        std::to_string(offset + done) +
                        " inside the record; the file is truncated");
    }
    done += static_cast<size_t>(r);
  }
}

RecordFile::Part RecordFile::part_at(uint64_t pos, uint64_t offset, int64_t key, bool first) const {
  if (pos + 8 > size_) {
    throw FormatError(where(offset, key) + ": the part header at byte " + std::to_string(pos) +
                      " runs past the end of the file (" + std::to_string(size_) +
                      " bytes); the file is truncated or the .idx offset is wrong");
  }
  uint32_t head[2];
  pread_exact(head, 8, pos, offset, key);
  if (head[0] != kRecordMagic) {
    throw FormatError(where(offset, key) + ": bad magic " + hex32(head[0]) + " at byte " +
                      std::to_string(pos) +
                      " (expected 0xced7230a); the .idx offset is wrong, or the file is corrupt "
                      "or not RecordIO");
  }
  Part part{head[1] >> 29, head[1] & kMaxPartBytes, 0};
  if (first && (part.cflag == 2 || part.cflag == 3)) {
    throw FormatError(where(offset, key) + ": starts with a continuation part (cflag " +
                      std::to_string(part.cflag) +
                      "); the .idx offset points into the middle of a record");
  }
  if (!first && (part.cflag == 0 || part.cflag == 1)) {
    throw FormatError(where(offset, key) + ": a split record ends without its last part (the " +
                      "part at byte " + std::to_string(pos) + " has cflag " +
                      std::to_string(part.cflag) + "); the file is corrupt");
  }
  if (part.cflag > 3) {
    throw FormatError(where(offset, key) + ": invalid cflag " + std::to_string(part.cflag) +
                      " at byte " + std::to_string(pos) + "; the file is corrupt");
  }
  part.padded = (uint64_t{part.len} + 3) & ~uint64_t{3};
  if (pos + 8 + part.padded > size_) {
    throw FormatError(where(offset, key) + ": part length " + std::to_string(part.len) +
                      " at byte " + std::to_string(pos) + " runs past the end of the file (" +
                      std::to_string(size_) + " bytes); the file is truncated or corrupt");
  }
  return part;
}

uint64_t RecordFile::read(uint64_t offset, std::vector<uint8_t>& out, int64_t key) const {
  out.clear();
  uint64_t pos = offset;
  for (bool first = true;; first = false) {
    const Part part = part_at(pos, offset, key, first);
    const size_t old = out.size();
    out.resize(old + part.len);
    if (part.len > 0) {
      pread_exact(out.data() + old, part.len, pos + 8, offset, key);
    }
    pos += 8 + part.padded;
    if (part.cflag == 0 || part.cflag == 3) {
      return pos;
    }
    // The writer dropped a magic here when it split the record: put it back.
    const uint32_t magic = kRecordMagic;
    const size_t at = out.size();
    out.resize(at + 4);
    std::memcpy(out.data() + at, &magic, 4);
  }
}

uint64_t RecordFile::skip(uint64_t offset, int64_t key) const {
  uint64_t pos = offset;
  for (bool first = true;; first = false) {
    const Part part = part_at(pos, offset, key, first);
    pos += 8 + part.padded;
    if (part.cflag == 0 || part.cflag == 3) {
      return pos;
    }
  }
}

// ---------------------------------------------------------------- RecordWriter

RecordWriter::RecordWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) {
    throw IoError(path + ": cannot create (" + std::strerror(errno) + ")");
  }
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
}

RecordWriter::~RecordWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

void RecordWriter::put(const void* data, size_t n) {
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) {
    throw IoError(path_ + ": write failed (" + std::strerror(errno) + ")");
  }
  offset_ += n;
}

uint64_t RecordWriter::write(const uint8_t* data, size_t size) {
  FFC_CHECK(file_ != nullptr, path_ + ": write after close");
  if (size >= (size_t{1} << 29)) {
    throw FormatError(path_ + ": a record of " + std::to_string(size) +
                      " bytes exceeds RecordIO's limit of 2^29 bytes");
  }
  const uint64_t start = offset_;
  const uint32_t magic = kRecordMagic;
  const auto len = static_cast<uint32_t>(size);
  const uint32_t lower_align = len & ~3u;
  const uint32_t upper_align = (len + 3u) & ~3u;
  uint32_t dptr = 0;
  // Split wherever the magic sits at an aligned offset, dropping it (the reader re-inserts it).
  for (uint32_t i = 0; i < lower_align; i += 4) {
    if (load_u32(data + i) == magic) {
      const uint32_t lrec = ((dptr == 0 ? 1u : 2u) << 29) | (i - dptr);
      put(&magic, 4);
      put(&lrec, 4);
      put(data + dptr, i - dptr);
      dptr = i + 4;
    }
  }
  const uint32_t lrec = ((dptr != 0 ? 3u : 0u) << 29) | (len - dptr);
  put(&magic, 4);
  put(&lrec, 4);
  put(data + dptr, len - dptr);
  const uint32_t zero = 0;
  put(&zero, upper_align - len);
  return start;
}

void RecordWriter::close() {
  if (file_ == nullptr) {
    return;
  }
  std::FILE* f = file_;
  file_ = nullptr;
  const bool ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  const int e = errno;
  if (std::fclose(f) != 0 || !ok) {
    throw IoError(path_ + ": could not flush to disk (" + std::strerror(ok ? errno : e) + ")");
  }
}

// ---------------------------------------------------------------- index

std::vector<IndexEntry> read_index(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) {
    throw IoError(path + ": cannot open (" + std::strerror(errno) + ")");
  }
  std::FILE* f = file.get();
  std::vector<IndexEntry> entries;
  std::vector<char> buf(1 << 22);
  std::string carry;
  int64_t line_no = 0;
  auto parse_line = [&](const char* b, const char* e) {
    ++line_no;
    while (e > b && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) {
      --e;
    }
    if (b == e) {
      return;  // blank line (e.g. at the end)
    }
    IndexEntry entry{};
    auto r1 = std::from_chars(b, e, entry.key);
    const char* p = r1.ptr;
    bool ok = r1.ec == std::errc() && entry.key >= 0 && p < e && (*p == '\t' || *p == ' ');
    if (ok) {
      while (p < e && (*p == '\t' || *p == ' ')) {
        ++p;
      }
      auto r2 = std::from_chars(p, e, entry.offset);
      ok = r2.ec == std::errc() && r2.ptr == e;
    }
    if (!ok) {
      throw FormatError(path + ": line " + std::to_string(line_no) + ": '" +
                        std::string(b, std::min<size_t>(e - b, 60)) +
                        "' is not 'key<TAB>offset'; rebuild the index with `ffc data index` or "
                        "delete the .idx to scan the .rec");
    }
    entries.push_back(entry);
  };
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    const char* b = buf.data();
    const char* end = b + n;
    const char* nl = nullptr;
    while ((nl = static_cast<const char*>(std::memchr(b, '\n', end - b))) != nullptr) {
      if (!carry.empty()) {
        carry.append(b, nl);
        parse_line(carry.data(), carry.data() + carry.size());
        carry.clear();
      } else {
        parse_line(b, nl);
      }
      b = nl + 1;
    }
    carry.append(b, end);
  }
  if (std::ferror(f) != 0) {
    throw IoError(path + ": read failed");
  }
  if (!carry.empty()) {
    parse_line(carry.data(), carry.data() + carry.size());
  }
  return entries;
}

std::vector<IndexEntry> scan_index(const RecordFile& file, void (*progress)(uint64_t, uint64_t)) {
  std::vector<IndexEntry> entries;
  uint64_t pos = 0;
  uint64_t next_report = file.size() / 100;
  for (int64_t key = 0; pos < file.size(); ++key) {
    entries.push_back({key, pos});
    pos = file.skip(pos, key);  // part headers only; payloads are not read
    if (progress != nullptr && pos >= next_report) {
      progress(pos, file.size());
      next_report = pos + file.size() / 100;
    }
  }
  return entries;
}

void write_index(const std::string& path, const std::vector<IndexEntry>& entries) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    throw IoError(path + ": cannot create (" + std::strerror(errno) + ")");
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  bool ok = true;
  for (const auto& e : entries) {
    ok = ok && std::fprintf(f, "%lld\t%llu\n", static_cast<long long>(e.key),
                            static_cast<unsigned long long>(e.offset)) > 0;
  }
  ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0 && ok;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) {
    throw IoError(path + ": write failed (" + std::strerror(errno) + ")");
  }
}

}  // namespace ffc::data
