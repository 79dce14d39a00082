// The loader: its batches equal the directly computed images, do not depend on the number of
// threads or on where the run started, and a bad record surfaces as an error instead of a hang.

#include "data/loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "data/inspect.h"
#include "data/recordio_dataset.h"
#include "data/synthetic.h"
#include "support/temp_dir.h"

namespace ffc::data {
namespace {

std::shared_ptr<SyntheticSource> make_source() {
  SyntheticSpec s;
  s.num_classes = 200;
  s.max_images = 10;
  s.image_size = 12;
  s.seed = 11;
  return std::make_shared<SyntheticSource>(s);
}

std::shared_ptr<BatchPlanner> make_dual(const ImageSource& src) {
  PlannerOptions o;
  o.batch_size = 6;
  o.seed = 1;
  return std::make_shared<DualPlanner>(src, o, DualMode::kBoth);
}

// The expected tensor of one sample, computed without the loader.
at::Tensor expected_image(const SyntheticSource& src, const Sample& s) {
  const int size = src.image_size();
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * 3);
  std::vector<float> scratch;
  int64_t label = 0, j = 0;
  src.locate(s.image, label, j);
  src.render(label, j, px.data(), scratch);
  at::Tensor t = at::from_blob(px.data(), {size, size, 3}, at::kByte).to(at::kFloat);
  t = ((t - 127.5) / 128.0).permute({2, 0, 1}).contiguous();
  return s.flip ? t.flip({2}) : t;
}

TEST(Loader, BatchesEqualDirectComputation) {
  auto src = make_source();
  auto planner = make_dual(*src);
  Loader loader(src, planner, LoaderOptions{2, 2});
  std::vector<std::vector<Sample>> plan;
  for (int64_t step = 0; step < 5; ++step) {
    const Batch& b = loader.get(step);
    EXPECT_EQ(b.step, step);
    planner->plan(step, plan);
    ASSERT_EQ(b.images.size(), 2u);
    for (size_t v = 0; v < 2; ++v) {
      ASSERT_EQ(b.images[v].sizes(), (at::IntArrayRef{9, 3, 12, 12}));
      for (int64_t i = 0; i < 9; ++i) {
        EXPECT_TRUE(at::allclose(b.images[v][i], expected_image(*src, plan[v][i])))
            << "step " << step << " view " << v << " row " << i;
        int64_t label = 0, j = 0;
        src->locate(plan[v][i].image, label, j);
        EXPECT_EQ(b.labels[v][i].item<int64_t>(), label);
      }
    }
  }
}

TEST(Loader, IndependentOfThreadsAndOfTheStartingStep) {
  auto src = make_source();
  auto planner = make_dual(*src);
  Loader one(src, planner, LoaderOptions{1, 1});
  Loader three(src, planner, LoaderOptions{3, 4});
  std::vector<at::Tensor> reference;
  for (int64_t step = 0; step < 8; ++step) {
    const Batch& a = one.get(step);
    const Batch& b = three.get(step);
    EXPECT_TRUE(at::equal(a.images[0], b.images[0]));
    EXPECT_TRUE(at::equal(a.labels[1], b.labels[1]));
    reference.push_back(a.images[1].clone());
  }
  // A resumed run starts at step 5 and sees the same batches; a jump back restarts too.
  Loader resumed(src, planner, LoaderOptions{2, 2});
  EXPECT_TRUE(at::equal(resumed.get(5).images[1], reference[5]));
  EXPECT_TRUE(at::equal(resumed.get(6).images[1], reference[6]));
  EXPECT_TRUE(at::equal(resumed.get(2).images[1], reference[2]));
  EXPECT_TRUE(at::equal(resumed.get(3).images[1], reference[3]));
}

TEST(Loader, BadRecordIsAnErrorNotAHang) {
  test::TempDir dir;
  SyntheticSpec s;
  s.num_classes = 20;
  s.max_images = 4;
  s.image_size = 8;
  pack_source(SyntheticSource(s), dir.path(), 90, nullptr);
  // Corrupt the middle of the file: some record's JPEG data or framing breaks.
  {
    std::fstream f(dir.file("train.rec"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0, std::ios::end);
    const auto size = static_cast<int64_t>(f.tellp());
    std::vector<char> junk(size / 2, 0x5a);
    f.seekp(size / 4);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  RecordDatasetOptions o;
  o.image_size = 8;
  auto ds = std::make_shared<RecordDataset>(dir.path(), o);
  PlannerOptions po;
  po.batch_size = ds->num_images() / 2;
  auto planner = std::make_shared<InstancePlanner>(*ds, po);
  Loader loader(ds, planner, LoaderOptions{2, 2});
  try {
    loader.get(0);
    loader.get(1);
    FAIL() << "a corrupt record went unnoticed";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("train.rec: record"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ffc::data
