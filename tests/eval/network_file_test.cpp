// The networks `ffc eval` reads: an exported backbone, and the probe or gallery net of a
// checkpoint (state dict in the group /probe or /gallery, network spec in root attributes),
// checked on a file written here with that layout through the HDF5 C API.

#include "eval/network_file.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "h5/h5.h"
#include "h5/state_dict.h"
#include "model/backbone.h"
#include "model/export.h"
#include "model/state_dict.h"
#include "support/temp_dir.h"

namespace ffc::eval {
namespace {

std::shared_ptr<model::Backbone> tiny(uint64_t seed) {
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = 16;
  spec.image_size = 32;
  at::manual_seed(seed);
  auto net = model::make_backbone(spec);
  net->forward(at::randn({4, 3, 32, 32}));  // non-trivial running statistics
  return net;
}

void write_group(h5::File& file, const std::string& name, const model::Backbone& net) {
  h5::Group group(FFC_H5_CHECK(
      H5Gcreate2(file.root().id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  for (const auto& [key, tensor] : model::state_dict(net)) {
    const at::Tensor t = tensor.detach().contiguous();
    const h5::ElementType type =
        t.scalar_type() == at::kLong ? h5::ElementType::kInt64 : h5::ElementType::kFloat32;
    h5::Dataset ds = group.create_dataset(key, type, t.sizes().vec());
    ds.write(type, t.data_ptr());
    ds.close();
  }
  group.close();
}

// A checkpoint as the trainer will write it: root attributes, /probe, /gallery, and other groups.
void write_checkpoint(const std::string& path, const model::Backbone& probe,
                      const model::Backbone& gallery) {
  h5::File file = h5::File::create(path);
  h5::write_attribute(file.root().id(), "network", std::string("tiny"));
  h5::write_attribute(file.root().id(), "embedding_size", int64_t{16});
  h5::write_attribute(file.root().id(), "image_size", int64_t{32});
  h5::write_attribute(file.root().id(), "step", int64_t{1234});
  write_group(file, "probe", probe);
  write_group(file, "gallery", gallery);
  h5::Group opt(FFC_H5_CHECK(
      H5Gcreate2(file.root().id(), "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  h5::Dataset d = opt.create_dataset("momentum.fc.weight", h5::ElementType::kFloat32, {2});
  const float zeros[2] = {0, 0};
  d.write(h5::ElementType::kFloat32, zeros);
  d.close();
  opt.close();
  file.close();
}

bool same_state(const model::Backbone& a, const model::Backbone& b) {
  const auto sa = model::state_dict(a);
  const auto sb = model::state_dict(b);
  if (sa.size() != sb.size()) {
    return false;
  }
  for (size_t i = 0; i < sa.size(); ++i) {
    if (sa[i].first != sb[i].first || !at::equal(sa[i].second, sb[i].second)) {
      return false;
    }
  }
  return true;
}

TEST(NetworkFile, CheckpointProbeAndGalleryGroups) {
  test::TempDir dir;
  const auto probe = tiny(1);
  const auto gallery = tiny(2);
  const std::string path = dir.file("ckpt.h5");
  write_checkpoint(path, *probe, *gallery);

  NetworkSource src;
  src.checkpoint = path;
  const LoadedNetwork p = load_network(src);
  EXPECT_TRUE(same_state(*p.net, *probe));
  EXPECT_FALSE(p.net->is_training());
  EXPECT_EQ(p.step, 1234);
  EXPECT_EQ(p.net->spec().name, "tiny");
  EXPECT_EQ(p.net->spec().embedding_size, 16);
  EXPECT_NE(p.description.find("probe net of"), std::string::npos);

  src.net = "gallery";
  const LoadedNetwork g = load_network(src);
  EXPECT_TRUE(same_state(*g.net, *gallery));
  EXPECT_FALSE(same_state(*g.net, *probe));

  // The generic group reader: every dataset of the group, sub-groups ignored.
  const h5::NamedTensors t = h5::read_tensors(path, "/gallery");
  EXPECT_EQ(t.size(), model::state_dict(*gallery).size());
  EXPECT_EQ(h5::read_tensors(path, "optimizer").size(), 1u);
  EXPECT_TRUE(h5::has_group(path, "probe"));
  EXPECT_FALSE(h5::has_group(path, "ema"));
}

TEST(NetworkFile, Errors) {
  test::TempDir dir;
  const auto probe = tiny(1);
  const std::string ckpt_path = dir.file("ckpt.h5");
  write_checkpoint(ckpt_path, *probe, *probe);
  const std::string backbone_path = dir.file("tiny.h5");
  model::export_backbone_h5(*probe, legacy_input_norm(), backbone_path);

  NetworkSource none;
  EXPECT_THROW(load_network(none), ConfigError);
  NetworkSource both;
  both.backbone = backbone_path;
  both.checkpoint = ckpt_path;
  EXPECT_THROW(load_network(both), ConfigError);
  NetworkSource bad_net;
  bad_net.checkpoint = ckpt_path;
  bad_net.net = "teacher";
  EXPECT_THROW(load_network(bad_net), ConfigError);

  // An exported backbone has no /probe group; the message says to use --backbone.
  NetworkSource wrong;
  wrong.checkpoint = backbone_path;
  try {
    load_network(wrong);
    ADD_FAILURE() << "an exported backbone loaded as a checkpoint";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("--backbone"), std::string::npos) << e.what();
  }

  // The exported backbone itself loads.
  NetworkSource ok;
  ok.backbone = backbone_path;
  const LoadedNetwork b = load_network(ok);
  EXPECT_TRUE(same_state(*b.net, *probe));
  EXPECT_EQ(b.step, 0);

  // A group with a tensor of the wrong shape: the error names it; nothing is loaded.
  const std::string bad = dir.file("bad.h5");
  {
    h5::File file = h5::File::create(bad);
    h5::write_attribute(file.root().id(), "network", std::string("tiny"));
    h5::write_attribute(file.root().id(), "embedding_size", int64_t{16});
    h5::write_attribute(file.root().id(), "image_size", int64_t{32});
    h5::Group group(
        FFC_H5_CHECK(H5Gcreate2(file.root().id(), "probe", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    for (const auto& [key, tensor] : model::state_dict(*probe)) {
      const bool wrong_shape = key == "fc.weight";
      const at::Tensor t = wrong_shape ? at::zeros({3}) : tensor.detach().contiguous();
      const h5::ElementType type =
          t.scalar_type() == at::kLong ? h5::ElementType::kInt64 : h5::ElementType::kFloat32;
      h5::Dataset ds = group.create_dataset(key, type, t.sizes().vec());
      ds.write(type, t.data_ptr());
      ds.close();
    }
    group.close();
    file.close();
  }
  NetworkSource shape;
  shape.checkpoint = bad;
  try {
    load_network(shape);
    ADD_FAILURE() << "a wrong shape loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("fc.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[3]"), std::string::npos) << e.what();
  }
  // Missing spec attributes.
  const std::string bare = dir.file("bare.h5");
  {
    h5::File file = h5::File::create(bare);
    file.close();
  }
  EXPECT_THROW(read_network_spec_h5(bare), FormatError);
}

}  // namespace
}  // namespace ffc::eval
