// Backbones in HDF5: export, read back bit for bit, strict load and its errors.

#include "model/export.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "h5/state_dict.h"
#include "model/backbone.h"
#include "model/state_dict.h"
#include "support/temp_dir.h"

namespace ffc::model {
namespace {

using test::TempDir;

std::shared_ptr<Backbone> build(const std::string& name, uint64_t seed, int64_t embedding,
                                int64_t image) {
  BackboneSpec spec;
  spec.name = name;
  spec.embedding_size = embedding;
  spec.image_size = image;
  at::manual_seed(seed);
  return make_backbone(spec);
}

TEST(Export, RoundTripIsBitwiseInStateDictOrder) {
  TempDir dir;
  const auto net = build("tiny", 1, 64, 32);
  net->forward(at::randn({2, 3, 32, 32}));  // non-trivial buffers
  const std::string path = dir.file("tiny.h5");
  export_backbone_h5(*net, legacy_input_norm(), path);
  EXPECT_EQ(dir.entries(), 1u) << "temporary file left behind";

  const NamedTensors expected = state_dict(*net);
  const h5::NamedTensors got = h5::read_tensors(path);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, expected[i].first);
    EXPECT_EQ(got[i].second.scalar_type(), expected[i].second.scalar_type()) << got[i].first;
    EXPECT_TRUE(at::equal(got[i].second, expected[i].second)) << got[i].first;
  }
  const BackboneSpec spec = read_backbone_spec_h5(path);
  EXPECT_EQ(spec.name, "tiny");
  EXPECT_EQ(spec.embedding_size, 64);
  EXPECT_EQ(spec.image_size, 32);
}

TEST(Export, LoadGivesTheSameNetwork) {
  TempDir dir;
  const auto source = build("r18", 2, 512, 112);
  const std::string path = dir.file("r18.h5");
  export_backbone_h5(*source, legacy_input_norm(), path);
  const auto target = build("r18", 3, 512, 112);
  load_backbone_h5(*target, path);
  const NamedTensors a = state_dict(*source);
  const NamedTensors b = state_dict(*target);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
  EXPECT_FALSE(b.back().second.requires_grad());  // loading keeps the flags of the model
  source->eval();
  target->eval();
  at::NoGradGuard no_grad;
  const at::Tensor images = at::randn({1, 3, 112, 112});
  EXPECT_TRUE(at::equal(source->forward(images), target->forward(images)));
}

TEST(Export, WrongShapeNamesTheTensorAndBothShapes) {
  TempDir dir;
  const std::string path = dir.file("r18_112.h5");
  export_backbone_h5(*build("r18", 4, 512, 112), legacy_input_norm(), path);
  const auto at64 = build("r18", 5, 512, 64);
  const at::Tensor before = state_dict(*at64).front().second.clone();
  try {
    load_backbone_h5(*at64, path);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    for (const char* word : {"'fc.weight'", "[512, 25088]", "[512, 8192]", "r18_112.h5",
                             "image_size 112", "image_size 64"}) {
      EXPECT_NE(msg.find(word), std::string::npos) << word << " not in: " << msg;
    }
  }
  EXPECT_TRUE(at::equal(state_dict(*at64).front().second, before)) << "model changed";
}

TEST(Export, AnotherNetworkIsRefused) {
  TempDir dir;
  const std::string path = dir.file("tiny.h5");
  export_backbone_h5(*build("tiny", 6, 512, 64), legacy_input_norm(), path);
  const auto small = build("small", 7, 512, 64);
  try {
    load_backbone_h5(*small, path);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("network tiny"), std::string::npos) << msg;
    EXPECT_NE(msg.find("network small"), std::string::npos) << msg;
  }
}

TEST(Export, OverwritesAtomicallyAndReportsBadPaths) {
  TempDir dir;
  const std::string path = dir.file("net.h5");
  export_backbone_h5(*build("tiny", 8, 16, 32), legacy_input_norm(), path);
  export_backbone_h5(*build("tiny", 9, 32, 32), legacy_input_norm(),
                     path);  // replaces the first file
  EXPECT_EQ(read_backbone_spec_h5(path).embedding_size, 32);
  EXPECT_EQ(dir.entries(), 1u);
  EXPECT_THROW(export_backbone_h5(*build("tiny", 8, 16, 32), legacy_input_norm(),
                                  dir.file("no/such/dir/x.h5")),
               IoError);
  EXPECT_THROW(read_backbone_spec_h5(dir.file("missing.h5")), IoError);
  std::ofstream(dir.file("text.h5")) << "not hdf5\n";
  EXPECT_THROW(read_backbone_spec_h5(dir.file("text.h5")), FormatError);
  // An HDF5 file that is not a backbone.
  h5::write_tensors(dir.file("other.h5"), {{"x", at::zeros({2})}}, {});
  EXPECT_THROW(read_backbone_spec_h5(dir.file("other.h5")), FormatError);
}

}  // namespace
}  // namespace ffc::model
