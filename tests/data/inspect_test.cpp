// ffc pack / data stat / data verify building blocks: folder packing, statistics, verification.

#include "data/inspect.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/config.h"
#include "common/error.h"
#include "data/dataset.h"
#include "data/recordio_dataset.h"
#include "data/synthetic.h"
#include "support/temp_dir.h"

namespace ffc::data {
namespace {

void write_jpeg(const std::string& path, int size, uint8_t shade) {
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * 3, shade);
  JpegEncoder enc;
  std::vector<uint8_t> jpeg;
  enc.encode(px.data(), size, size, 90, jpeg);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

TEST(Pack, FromFolderRoundTrip) {
  test::TempDir dir;
  const std::string images = dir.file("faces");
  ::mkdir(images.c_str(), 0755);
  const std::vector<std::pair<std::string, int>> ids = {{"alice", 3}, {"bob", 1}, {"carol", 2}};
  uint8_t shade = 10;
  for (const auto& [name, n] : ids) {
    ::mkdir((images + "/" + name).c_str(), 0755);
    for (int k = 0; k < n; ++k) {
      write_jpeg(images + "/" + name + "/" + std::to_string(k) + ".jpg", 20, shade);
      shade = static_cast<uint8_t>(shade + 40);
    }
  }
  std::ofstream(images + "/bob/notes.txt") << "not an image";
  const PackReport r = pack_folder(images, dir.file("out"));
  EXPECT_EQ(r.images, 6);
  EXPECT_EQ(r.classes, 3);
  EXPECT_EQ(r.image_size, 20);

  RecordDatasetOptions o;
  o.image_size = 20;
  RecordDataset ds(dir.file("out"), o);
  EXPECT_EQ(ds.num_images(), 6);
  EXPECT_EQ(ds.class_size(0), 3);  // alice: sub-folders are classes in name order
  EXPECT_EQ(ds.class_size(1), 1);
  EXPECT_EQ(ds.class_size(2), 2);
  auto reader = ds.make_reader();
  std::vector<uint8_t> px(20 * 20 * 3);
  EXPECT_EQ(reader->read(3, px.data()), 1);  // bob's image
  EXPECT_NEAR(px[0], 130, 2);                // its shade survived
  EXPECT_TRUE(verify_dataset(ds, nullptr).empty());
  const DatasetStats st = dataset_stats(ds);
  EXPECT_EQ(st.max_per_class, 3);
  EXPECT_EQ(st.median_per_class, 2);
  EXPECT_EQ(st.buckets[0], 1);
  EXPECT_EQ(st.buckets[1], 2);
}

TEST(Pack, FolderErrorsLeaveNothingBehind) {
  test::TempDir dir;
  const std::string images = dir.file("faces");
  ::mkdir(images.c_str(), 0755);
  ::mkdir((images + "/a").c_str(), 0755);
  ::mkdir((images + "/b").c_str(), 0755);
  write_jpeg(images + "/a/1.jpg", 20, 5);
  write_jpeg(images + "/b/1.jpg", 24, 5);  // another size
  try {
    pack_folder(images, dir.file("out"));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("b/1.jpg: 24x24"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists(dir.file("out/train.rec")));
  EXPECT_FALSE(exists(dir.file("out/.train.rec.partial")));
  ::mkdir((images + "/c").c_str(), 0755);  // an identity without images
  EXPECT_THROW(pack_folder(images, dir.file("out2")), FormatError);
  EXPECT_THROW(pack_folder(dir.file("nope"), dir.file("out3")), IoError);
}

TEST(Verify, ListsEveryBadRecord) {
  test::TempDir dir;
  SyntheticSpec s;
  s.num_classes = 30;
  s.max_images = 3;
  s.image_size = 16;
  const SyntheticSource src(s);
  pack_source(src, dir.path(), 90, nullptr);
  RecordDatasetOptions o;
  o.image_size = 16;
  uint64_t offset = 0;
  {
    RecordDataset ds(dir.path(), o);
    offset = ds.offset_of_key(ds.image_key(4));
  }
  // Replace image 4's JPEG start-of-image marker: that record, and only it, goes bad.
  {
    std::fstream f(dir.file("train.rec"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset + 8 + 24));
    f.write("\x00\x00", 2);
  }
  RecordDataset ds(dir.path(), o);
  const auto bad = verify_dataset(ds, nullptr);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].image, 4);
  EXPECT_NE(bad[0].reason.find("record 5 at byte " + std::to_string(offset)), std::string::npos)
      << bad[0].reason;
  EXPECT_NE(bad[0].reason.find("not a JPEG"), std::string::npos);
}

// A glyph set's dataset.json ("flip": false): packed with the folder, read back by the dataset,
// reported by stat, and training with flip: true is refused while flip: false trains.
TEST(Pack, NoFlipDatasetInfo) {
  test::TempDir dir;
  const std::string images = dir.file("glyphs");
  ::mkdir(images.c_str(), 0755);
  for (const char* name : {"a", "b"}) {
    ::mkdir((images + "/" + name).c_str(), 0755);
    write_jpeg(images + "/" + name + "/0.jpg", 16, 100);
    write_jpeg(images + "/" + name + "/1.jpg", 16, 150);
  }
  DatasetInfo info;
  info.flip = false;
  pack_folder(images, dir.file("out"), info);
  ASSERT_TRUE(exists(dir.file("out") + "/dataset.json"));
  EXPECT_FALSE(read_dataset_info(dir.file("out")).flip);
  RecordDatasetOptions o;
  o.image_size = 16;
  const RecordDataset ds(dir.file("out"), o);
  EXPECT_FALSE(ds.mirror_allowed());
  EXPECT_NE(ds.describe().find("no mirroring"), std::string::npos);
  EXPECT_FALSE(dataset_stats(ds).flip);
  EXPECT_NE(stats_json(dataset_stats(ds), "out").find("\"flip\": false"), std::string::npos);

  Config config;
  config.rec = dir.file("out");
  config.image_size = 16;
  config.batch_size = 2;
  config.flip = true;
  try {
    make_planner(config, ds, 0, 1);
    FAIL() << "flip: true on a no-flip set must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("set flip: false"), std::string::npos) << e.what();
  }
  config.flip = false;
  EXPECT_NO_THROW(make_planner(config, ds, 0, 1));
  config.method = "ffc";
  EXPECT_NO_THROW(make_planner(config, ds, 0, 1));

  // Packing the same folder again without the flag removes the stale file: flips allowed.
  pack_folder(images, dir.file("out"));
  EXPECT_FALSE(exists(dir.file("out") + "/dataset.json"));
  EXPECT_TRUE(RecordDataset(dir.file("out"), o).mirror_allowed());
}

TEST(Pack, DatasetInfoErrorsNameTheFileAndTheKey) {
  test::TempDir dir;
  EXPECT_TRUE(read_dataset_info(dir.path()).flip);  // no file: insightface's sets
  const auto expect_error = [&](const std::string& text, const std::string& want) {
    std::ofstream(dir.file("dataset.json")) << text;
    try {
      read_dataset_info(dir.path());
      FAIL() << "accepted: " << text;
    } catch (const FormatError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(dir.file("dataset.json")), std::string::npos) << m;
      EXPECT_NE(m.find(want), std::string::npos) << m;
    }
  };
  expect_error("not json", "not a JSON object");
  expect_error("{\"flip\": false}", "'format'");
  expect_error("{\"format\": \"ffc-dataset\", \"format_version\": 2}", "'format_version'");
  expect_error("{\"format\": \"ffc-dataset\", \"format_version\": 1, \"flip\": 0}", "'flip'");
  std::ofstream(dir.file("dataset.json"))
      << "{\"format\": \"ffc-dataset\", \"format_version\": 1, \"flip\": false}";
  EXPECT_FALSE(read_dataset_info(dir.path()).flip);
}

}  // namespace
}  // namespace ffc::data
