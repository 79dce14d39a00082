// The binary dataset index (data/record_index.h): built once, mapped on every open with the same
// dataset as the in-memory index from train.idx, ignored (never trusted) when stale or damaged.

#include "data/record_index.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <utime.h>

#include <fstream>
#include <vector>

#include "data/inspect.h"
#include "data/recordio_dataset.h"
#include "data/synthetic.h"
#include "support/temp_dir.h"

namespace ffc::data {
namespace {

RecordDatasetOptions options16() {
  RecordDatasetOptions o;
  o.image_size = 16;
  return o;
}

// A packed set of 40 identities with 1 to 5 images each, and no binary index.
void pack(const test::TempDir& dir) {
  SyntheticSpec s;
  s.num_classes = 40;
  s.max_images = 5;
  s.image_size = 16;
  pack_source(SyntheticSource(s), dir.path(), 90, nullptr);
  std::remove(dir.file("train.ffcidx").c_str());
}

void expect_same(const RecordDataset& a, const RecordDataset& b) {
  ASSERT_EQ(a.num_images(), b.num_images());
  ASSERT_EQ(a.num_classes(), b.num_classes());
  for (int64_t i = 0; i < a.num_images(); ++i) {
    ASSERT_EQ(a.image_key(i), b.image_key(i));
    ASSERT_EQ(a.offset_of_key(a.image_key(i)), b.offset_of_key(b.image_key(i)));
  }
  for (int64_t y = 0; y < a.num_classes(); ++y) {
    ASSERT_EQ(a.class_size(y), b.class_size(y));
    for (int64_t j = 0; j < a.class_size(y); ++j) {
      ASSERT_EQ(a.class_image(y, j), b.class_image(y, j));
    }
  }
  auto ra = a.make_reader();
  auto rb = b.make_reader();
  std::vector<uint8_t> pa(16 * 16 * 3), pb(16 * 16 * 3);
  for (int64_t i = 0; i < a.num_images(); ++i) {
    ASSERT_EQ(ra->read(i, pa.data()), rb->read(i, pb.data()));
    ASSERT_EQ(pa, pb);
  }
}

bool mapped(const RecordDataset& ds) {
  return ds.mapped_index_bytes() > 0;
}

TEST(RecordIndex, BuiltOnceThenMappedWithTheSameDataset) {
  test::TempDir dir;
  pack(dir);
  const RecordDataset memory(dir.path(), options16());
  EXPECT_FALSE(mapped(memory));
  EXPECT_GT(memory.table_bytes(), 0);
  EXPECT_EQ(memory.write_index(), dir.file("train.ffcidx"));
  const RecordDataset reused(dir.path(), options16());
  EXPECT_TRUE(mapped(reused));
  EXPECT_EQ(reused.table_bytes(), 0);  // nothing per image in private memory
  EXPECT_NE(reused.describe().find("binary index"), std::string::npos) << reused.describe();
  expect_same(memory, reused);
  std::string why;
  auto m = MappedRecordIndex::open(dir.file("train.ffcidx"), stamp_of(dir.file("train.rec")),
                                   stamp_of(dir.file("train.idx")), why);
  ASSERT_TRUE(m) << why;
  EXPECT_EQ(m->check_sections(), "");
}

TEST(RecordIndex, StaleWhenTheRecChanges) {
  test::TempDir dir;
  pack(dir);
  RecordDataset(dir.path(), options16()).write_index();
  struct utimbuf t {};
  t.actime = t.modtime = 1000000000;  // another modification time, same bytes
  ASSERT_EQ(::utime(dir.file("train.rec").c_str(), &t), 0);
  const RecordDataset ds(dir.path(), options16());
  EXPECT_FALSE(mapped(ds));
  std::string why;
  EXPECT_FALSE(MappedRecordIndex::open(dir.file("train.ffcidx"), stamp_of(dir.file("train.rec")),
                                       stamp_of(dir.file("train.idx")), why));
  EXPECT_NE(why.find("stale"), std::string::npos) << why;
  // Rebuilt, it is used again.
  ds.write_index();
  EXPECT_TRUE(mapped(RecordDataset(dir.path(), options16())));
}

TEST(RecordIndex, DamageIsDetectedAndNeverTrusted) {
  test::TempDir dir;
  pack(dir);
  const RecordDataset memory(dir.path(), options16());
  memory.write_index();
  const std::string path = dir.file("train.ffcidx");
  const FileStamp rec = stamp_of(dir.file("train.rec"));
  const FileStamp idx = stamp_of(dir.file("train.idx"));
  const std::vector<uint8_t> good = read_whole_file(path);
  auto write = [&](const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  };
  std::string why;
  // A flipped byte in the header: refused by the header checksum.
  std::vector<uint8_t> bad = good;
  bad[40] ^= 1;
  write(bad);
  EXPECT_FALSE(MappedRecordIndex::open(path, rec, idx, why));
  EXPECT_NE(why.find("checksum"), std::string::npos) << why;
  EXPECT_FALSE(mapped(RecordDataset(dir.path(), options16())));
  // Truncated: refused by its size.
  write(std::vector<uint8_t>(good.begin(), good.end() - 8));
  EXPECT_FALSE(MappedRecordIndex::open(path, rec, idx, why));
  EXPECT_NE(why.find("truncated"), std::string::npos) << why;
  // Not an index at all.
  write(std::vector<uint8_t>(300, 'x'));
  EXPECT_FALSE(MappedRecordIndex::open(path, rec, idx, why));
  EXPECT_NE(why.find("magic"), std::string::npos) << why;
  // A flipped byte in a section: the full check finds it.
  bad = good;
  bad[good.size() - 12] ^= 1;
  write(bad);
  auto m = MappedRecordIndex::open(path, rec, idx, why);
  ASSERT_TRUE(m) << why;
  EXPECT_NE(m->check_sections().find("damaged"), std::string::npos);
  // The dataset falls back to the in-memory index with a damaged header; with the original back
  // everything is mapped and equal.
  write(good);
  expect_same(memory, RecordDataset(dir.path(), options16()));
}

}  // namespace
}  // namespace ffc::data
