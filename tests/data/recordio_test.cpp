// RecordIO: MXNet's byte layout (split records included), round trips, index, and the errors bad
// files produce.

#include "data/recordio.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/error.h"
#include "data/recordio_dataset.h"
#include "support/temp_dir.h"

namespace ffc::data {
namespace {

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  const auto* p = reinterpret_cast<const uint8_t*>(&x);
  v.insert(v.end(), p, p + 4);
}

std::vector<uint8_t> magic_bytes() {
  std::vector<uint8_t> m;
  put_u32(m, kRecordMagic);
  return m;
}

// The expected file bytes of one record, following dmlc-core's RecordIOWriter::WriteRecord
// literally: split at aligned magics, lrec = cflag << 29 | length, zero padding at the end only.
std::vector<uint8_t> mxnet_layout(const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out;
  const uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t dptr = 0;
  for (uint32_t i = 0; i + 4 <= (len & ~3u); i += 4) {
    uint32_t w;
    std::memcpy(&w, payload.data() + i, 4);
    if (w == kRecordMagic) {
      put_u32(out, kRecordMagic);
      put_u32(out, ((dptr == 0 ? 1u : 2u) << 29) | (i - dptr));
      out.insert(out.end(), payload.begin() + dptr, payload.begin() + i);
      dptr = i + 4;
    }
  }
  put_u32(out, kRecordMagic);
  put_u32(out, ((dptr != 0 ? 3u : 0u) << 29) | (len - dptr));
  out.insert(out.end(), payload.begin() + dptr, payload.end());
  while (out.size() % 4 != 0) {
    out.push_back(0);
  }
  return out;
}

std::vector<uint8_t> payload_with_magics() {
  // 30 bytes: the magic at aligned offsets 0, 8 and 12 (adjacent), at unaligned offset 21 (not a
  // split point) and a length that needs padding.
  std::vector<uint8_t> p(30);
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] = static_cast<uint8_t>(i * 7 + 1);
  }
  const auto m = magic_bytes();
  for (size_t at : {0, 8, 12, 21}) {
    std::copy(m.begin(), m.end(), p.begin() + at);
  }
  return p;
}

TEST(RecordIO, WriterMatchesMxnetLayout) {
  test::TempDir dir;
  const std::string path = dir.file("a.rec");
  const std::vector<std::vector<uint8_t>> payloads = {
      payload_with_magics(), {}, {1, 2, 3}, magic_bytes(), {9, 9, 9, 9, 9, 9, 9, 9}};
  std::vector<uint8_t> expected;
  {
    RecordWriter w(path);
    for (const auto& p : payloads) {
      EXPECT_EQ(w.write(p.data(), p.size()), expected.size());
      const auto bytes = mxnet_layout(p);
      expected.insert(expected.end(), bytes.begin(), bytes.end());
    }
    w.close();
  }
  EXPECT_EQ(file_bytes(path), expected);
  // The record with magics is stored as 4 parts: cflag 1, 2, 2, 3.
  const auto first = mxnet_layout(payloads[0]);
  uint32_t lrec;
  std::memcpy(&lrec, first.data() + 4, 4);
  EXPECT_EQ(lrec >> 29, 1u);
  EXPECT_EQ(lrec & kMaxPartBytes, 0u);
}

TEST(RecordIO, RoundTripReinsertsMagics) {
  test::TempDir dir;
  const std::string path = dir.file("b.rec");
  std::vector<std::vector<uint8_t>> payloads = {payload_with_magics(), {}, {42}, magic_bytes()};
  std::vector<uint8_t> big(100000);
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  }
  const auto m = magic_bytes();
  for (size_t at = 4; at + 4 <= big.size(); at += 4096) {
    std::copy(m.begin(), m.end(), big.begin() + at);
  }
  payloads.push_back(big);
  std::vector<uint64_t> offsets;
  {
    RecordWriter w(path);
    for (const auto& p : payloads) {
      offsets.push_back(w.write(p.data(), p.size()));
    }
    w.close();
  }
  RecordFile file(path);
  std::vector<uint8_t> out;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const uint64_t end = file.read(offsets[i], out, static_cast<int64_t>(i));
    EXPECT_EQ(out, payloads[i]) << "record " << i;
    EXPECT_EQ(end, i + 1 < offsets.size() ? offsets[i + 1] : file.size());
    EXPECT_EQ(file.skip(offsets[i]), end);
  }
  // Scanning without an index finds the same record starts.
  const auto scanned = scan_index(file);
  ASSERT_EQ(scanned.size(), payloads.size());
  for (size_t i = 0; i < scanned.size(); ++i) {
    EXPECT_EQ(scanned[i].key, static_cast<int64_t>(i));
    EXPECT_EQ(scanned[i].offset, offsets[i]);
  }
}

TEST(RecordIO, IndexRoundTripAndErrors) {
  test::TempDir dir;
  std::vector<IndexEntry> entries = {{0, 0}, {1, 40}, {2, 123456789012ULL}};
  write_index(dir.file("x.idx"), entries);
  const auto back = read_index(dir.file("x.idx"));
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[2].offset, 123456789012ULL);
  { std::ofstream(dir.file("crlf.idx")) << "0\t0\r\n1\t40\r\n\n"; }
  EXPECT_EQ(read_index(dir.file("crlf.idx")).size(), 2u);
  { std::ofstream(dir.file("bad.idx")) << "0\t0\n1\tforty\n"; }
  try {
    read_index(dir.file("bad.idx"));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.idx: line 2"), std::string::npos) << e.what();
  }
}

TEST(RecordIO, ImageRecordHeaderAndLabels) {
  std::vector<uint8_t> bytes;
  const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xD9};
  ImageRecordHeader h;
  h.label = 7.0f;
  h.id = 3;
  build_image_record(h, {}, jpeg, sizeof(jpeg), bytes);
  ASSERT_EQ(bytes.size(), 24u + 4u);
  auto v = parse_image_record(bytes.data(), bytes.size(), "t");
  EXPECT_EQ(v.header.flag, 0u);
  EXPECT_EQ(v.class_label("t"), 7);
  EXPECT_EQ(v.payload_size, 4u);
  // An array label: flag = count, scalar label zeroed, label[0] is the class.
  build_image_record(h, {12.0f, 99.0f}, jpeg, sizeof(jpeg), bytes);
  v = parse_image_record(bytes.data(), bytes.size(), "t");
  EXPECT_EQ(v.header.flag, 2u);
  EXPECT_EQ(v.header.label, 0.0f);
  EXPECT_EQ(v.class_label("t"), 12);
  EXPECT_EQ(v.label_at(1), 99.0f);
  // 64-bit labels beyond float32's exact range travel in id2.
  h.label = 16777217.0f;  // rounds to 16777216 in float32
  h.id2 = kExactLabelBit | 16777217ULL;
  build_image_record(h, {}, jpeg, sizeof(jpeg), bytes);
  EXPECT_EQ(parse_image_record(bytes.data(), bytes.size(), "t").class_label("t"), 16777217);
  // Key ranges beyond 2^24 (a set of 2 x 10^7 images): exact through id/id2; a range record
  // written by another tool (id2 0) falls back to its float labels.
  std::vector<float> range;
  const ImageRecordHeader rh = key_range_header(20142147, 28842147, range);
  build_image_record(rh, range, nullptr, 0, bytes);
  v = parse_image_record(bytes.data(), bytes.size(), "t");
  EXPECT_NE(static_cast<int64_t>(v.label_at(0)), 20142147);  // the float rounds
  int64_t start = 0;
  int64_t end = 0;
  v.key_range(start, end, "t");
  EXPECT_EQ(start, 20142147);
  EXPECT_EQ(end, 28842147);
  build_image_record(ImageRecordHeader{}, {5.0f, 9.0f}, nullptr, 0, bytes);
  parse_image_record(bytes.data(), bytes.size(), "t").key_range(start, end, "t");
  EXPECT_EQ(start, 5);
  EXPECT_EQ(end, 9);
  build_image_record(ImageRecordHeader{}, {}, jpeg, sizeof(jpeg), bytes);
  EXPECT_THROW(parse_image_record(bytes.data(), bytes.size(), "t").key_range(start, end, "t"),
               FormatError);
  // A header that announces more labels than the record holds.
  build_image_record(ImageRecordHeader{}, {}, jpeg, sizeof(jpeg), bytes);
  const uint32_t flag = 5;
  std::memcpy(bytes.data(), &flag, 4);
  EXPECT_THROW(parse_image_record(bytes.data(), bytes.size(), "t"), FormatError);
  EXPECT_THROW(parse_image_record(bytes.data(), 10, "t"), FormatError);
}

// The error for reading record `key` at `offset` of `path`, or "" if it reads.
std::string read_error(const std::string& path, uint64_t offset, int64_t key) {
  try {
    RecordFile f(path);
    std::vector<uint8_t> out;
    f.read(offset, out, key);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RecordIO, BadFilesNameFileRecordAndOffset) {
  test::TempDir dir;
  const std::string path = dir.file("c.rec");
  std::vector<uint8_t> payload(64, 5);
  uint64_t second = 0;
  {
    RecordWriter w(path);
    w.write(payload.data(), payload.size());
    second = w.write(payload.data(), payload.size());
    w.close();
  }
  // Wrong offset: bad magic.
  std::string e = read_error(path, 4, 0);
  EXPECT_NE(e.find("c.rec: record 0 at byte 4"), std::string::npos) << e;
  EXPECT_NE(e.find("bad magic"), std::string::npos) << e;
  // Truncated: the second record's payload runs past the end.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(second + 20)), 0);
  e = read_error(path, second, 1);
  EXPECT_NE(e.find("record 1 at byte " + std::to_string(second)), std::string::npos) << e;
  EXPECT_NE(e.find("runs past the end"), std::string::npos) << e;
  // Header cut off.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(second + 3)), 0);
  e = read_error(path, second, 1);
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // An offset into the middle of a split record (continuation part).
  const std::string split = dir.file("d.rec");
  std::vector<uint8_t> p = payload_with_magics();
  {
    RecordWriter w(split);
    w.write(p.data(), p.size());
    w.close();
  }
  e = read_error(split, 8, 3);  // the second part
  EXPECT_NE(e.find("continuation part"), std::string::npos) << e;
  EXPECT_NE(read_error(dir.file("missing.rec"), 0, 0).find("cannot open"), std::string::npos);
}

// A small dataset in insightface's layout, written by hand with the low-level writer.
void write_dataset(const std::string& dir, const std::vector<int>& labels, int classes,
                   const std::string& property) {
  RecordWriter w(dir + "/train.rec");
  std::vector<IndexEntry> index;
  std::vector<uint8_t> rec;
  const auto n = static_cast<float>(labels.size());
  build_image_record({}, {n + 1, n + 1 + classes}, nullptr, 0, rec);
  index.push_back({0, w.write(rec.data(), rec.size())});
  const uint8_t not_jpeg[] = {0x89, 'P', 'N', 'G', 0, 0};
  for (size_t i = 0; i < labels.size(); ++i) {
    ImageRecordHeader h;
    h.label = static_cast<float>(labels[i]);
    build_image_record(h, {}, not_jpeg, sizeof(not_jpeg), rec);
    index.push_back({static_cast<int64_t>(i + 1), w.write(rec.data(), rec.size())});
  }
  int start = 1;
  for (int y = 0; y < classes; ++y) {
    int end = start;
    while (end - 1 < static_cast<int>(labels.size()) && labels[end - 1] == y) {
      ++end;
    }
    build_image_record({}, {static_cast<float>(start), static_cast<float>(end)}, nullptr, 0, rec);
    index.push_back({static_cast<int64_t>(labels.size() + 1 + y), w.write(rec.data(), rec.size())});
    start = end;
  }
  w.close();
  write_index(dir + "/train.idx", index);
  if (!property.empty()) {
    std::ofstream(dir + "/property") << property << "\n";
  }
}

std::string open_error(const std::string& dir, int image_size = 4) {
  try {
    RecordDatasetOptions o;
    o.image_size = image_size;
    RecordDataset ds(dir, o);
    std::vector<uint8_t> px(image_size * image_size * 3);
    auto reader = ds.make_reader();
    for (int64_t i = 0; i < ds.num_images(); ++i) {
      reader->read(i, px.data());
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RecordDataset, LayoutAndClassTable) {
  test::TempDir dir;
  write_dataset(dir.path(), {0, 0, 1, 2, 2, 2}, 3, "3,4,4");
  RecordDatasetOptions o;
  o.image_size = 4;
  RecordDataset ds(dir.path(), o);
  EXPECT_EQ(ds.num_images(), 6);
  EXPECT_EQ(ds.num_classes(), 3);
  EXPECT_TRUE(ds.has_identity_records());
  EXPECT_EQ(ds.class_size(0), 2);
  EXPECT_EQ(ds.class_size(1), 1);
  EXPECT_EQ(ds.class_size(2), 3);
  EXPECT_EQ(ds.class_image(2, 0), 3);
  EXPECT_EQ(ds.image_key(0), 1);
}

TEST(RecordDataset, BadDatasetsExplainThemselves) {
  test::TempDir dir;
  write_dataset(dir.path(), {0, 1}, 2, "");
  std::string e = open_error(dir.path());
  EXPECT_NE(e.find("property: missing"), std::string::npos) << e;

  write_dataset(dir.path(), {0, 1}, 2, "2,4,4");
  e = open_error(dir.path());  // payloads are PNG signatures
  EXPECT_NE(e.find("record 1 at byte"), std::string::npos) << e;
  EXPECT_NE(e.find("not a JPEG"), std::string::npos) << e;
  EXPECT_NE(e.find("a PNG"), std::string::npos) << e;

  write_dataset(dir.path(), {0, 1}, 2, "2,4,4");
  e = open_error(dir.path(), 8);
  EXPECT_NE(e.find("image_size is 8"), std::string::npos) << e;

  write_dataset(dir.path(), {5, 0}, 2, "2,4,4");  // label 5 of 2 classes
  e = open_error(dir.path());
  EXPECT_NE(e.find("label 5 is outside [0, 2)"), std::string::npos) << e;

  write_dataset(dir.path(), {0, 1}, 2, "two,4,4");
  e = open_error(dir.path());
  EXPECT_NE(e.find("num_classes,height,width"), std::string::npos) << e;

  write_dataset(dir.path(), {0, 1}, 2, "2,4,4");
  { std::ofstream(dir.path() + "/train.idx") << ""; }
  e = open_error(dir.path());
  EXPECT_NE(e.find("empty"), std::string::npos) << e;

  write_dataset(dir.path(), {0, 1}, 2, "2,4,4");
  { std::ofstream(dir.path() + "/train.idx") << "0\t0\n1\t999999\n"; }
  e = open_error(dir.path());
  EXPECT_NE(e.find("past the end"), std::string::npos) << e;
}

TEST(RecordDataset, NoIndexScansTheFile) {
  test::TempDir dir;
  write_dataset(dir.path(), {0, 0, 1}, 2, "2,4,4");
  std::remove((dir.path() + "/train.idx").c_str());
  RecordDatasetOptions o;
  o.image_size = 4;
  RecordDataset ds(dir.path(), o);
  EXPECT_EQ(ds.num_images(), 3);
  EXPECT_EQ(ds.class_size(0), 2);
}

}  // namespace
}  // namespace ffc::data
