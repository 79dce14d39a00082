// Verification set files: write and read back, ranges of images, decoding, and bad files.

#include "eval/verification_set.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ckpt/h5.h"
#include "comm/communicator.h"
#include "common/config.h"
#include "common/error.h"
#include "eval/validation.h"
#include "model/backbone.h"
#include "support/temp_dir.h"

namespace ffc::eval {
namespace {

namespace h5 = ckpt::h5;

data::SyntheticSpec spec32() {
  data::SyntheticSpec spec;
  spec.num_classes = 200;
  spec.image_size = 32;
  spec.seed = 4;
  return spec;
}

TEST(VerificationSet, WriteReadRoundTrip) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  const SyntheticPairs pairs = heldout_pairs(source.spec(), 12);
  const VerificationSet set = synthetic_set(source, pairs, "heldout", 95);
  ASSERT_EQ(set.pairs(), 12);
  ASSERT_EQ(set.images(), 24);
  const std::string path = dir.file("heldout.h5");
  write_verification_set(path, set);

  const VerificationSetFile file(path);
  EXPECT_EQ(file.name(), "heldout");
  EXPECT_EQ(file.image_size(), 32);
  EXPECT_EQ(file.pairs(), 12);
  EXPECT_EQ(file.issame(), pairs.same);
  EXPECT_EQ(file.offsets(), set.offsets);
  const VerificationSet back = file.read_all();
  EXPECT_EQ(back.bytes, set.bytes);
  // A range: images 3 .. 6.
  const std::vector<uint8_t> part = file.read_bytes(3, 7);
  const std::vector<uint8_t> want(set.bytes.begin() + set.offsets[3],
                                  set.bytes.begin() + set.offsets[7]);
  EXPECT_EQ(part, want);
  EXPECT_TRUE(file.read_bytes(5, 5).empty());
  EXPECT_THROW(file.read_bytes(20, 25), Error);
}

TEST(VerificationSet, DecodesCloseToTheRenderedImages) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  const SyntheticPairs pairs = heldout_pairs(source.spec(), 10);
  const std::string path = dir.file("s.h5");
  write_verification_set(path, synthetic_set(source, pairs, "s", 95));
  const VerificationSetFile file(path);
  const ImageFiller fill = set_file_filler(file, 32, data::ColorOrder::kRgb);
  at::Tensor decoded = at::empty({20, 3, 32, 32});
  fill(0, 20, decoded);
  const at::Tensor a = render_side(source, pairs, 0, 0, 10);
  const at::Tensor b = render_side(source, pairs, 1, 0, 10);
  const at::Tensor even = at::arange(0, 20, 2, at::kLong);
  const at::Tensor odd = at::arange(1, 20, 2, at::kLong);
  // JPEG at quality 95 with 4:2:0 chroma on noisy 32x32 images: about 5.5 grey levels on average
  // (1/128 per level; 4.9 even at quality 100, from the chroma subsampling).
  EXPECT_LT((decoded.index_select(0, even) - a).abs().mean().item<double>(), 8.0 / 128);
  EXPECT_LT((decoded.index_select(0, odd) - b).abs().mean().item<double>(), 8.0 / 128);
  // BGR swaps the channels; another size is resized.
  at::Tensor bgr = at::empty({1, 3, 32, 32});
  set_file_filler(file, 32, data::ColorOrder::kBgr)(0, 1, bgr);
  EXPECT_TRUE(at::equal(bgr[0][0], decoded[0][2]));
  at::Tensor small = at::empty({2, 3, 16, 16});
  set_file_filler(file, 16, data::ColorOrder::kRgb)(4, 6, small);
  EXPECT_LT((small - at::upsample_bilinear2d(decoded.narrow(0, 4, 2), {16, 16}, false))
                .abs()
                .mean()
                .item<double>(),
            0.1);
}

TEST(VerificationSet, FileAndHeldOutScoresAgree) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  const std::string path = dir.file("h.h5");
  write_verification_set(path, synthetic_set(source, heldout_pairs(source.spec(), 20), "h", 95));
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = 16;
  spec.image_size = 32;
  at::manual_seed(2);
  auto net = model::make_backbone(spec);
  const auto comm = comm::make_single_process_communicator();
  EvalOptions options;
  options.batch = 16;
  const VerificationSetFile file(path);
  const VerificationReport from_file =
      evaluate_set_file(*net, file, data::ColorOrder::kRgb, *comm, options);
  const VerificationReport rendered = evaluate_heldout(*net, source, 20, *comm, options);
  EXPECT_EQ(from_file.name, "h");
  EXPECT_EQ(rendered.name, "heldout");
  EXPECT_EQ(from_file.result.pairs, 20);
  EXPECT_EQ(from_file.result.positives, 10);
  EXPECT_TRUE(from_file.has_noflip);
  EXPECT_EQ(from_file.roc.front().far, 0.0);
  EXPECT_EQ(from_file.roc.back().far, 1.0);
  // The same pairs, JPEG-compressed or not: similar embeddings (an untrained net amplifies the
  // compression noise: XNorm moves by about 8%).
  EXPECT_NEAR(from_file.xnorm, rendered.xnorm, 0.15 * rendered.xnorm);
  EXPECT_NEAR(from_file.auc, rendered.auc, 0.1);
  // The log lines follow insightface's format.
  const std::vector<std::string> lines = report_lines(from_file, 2000);
  bool flip_line = false;
  for (const std::string& l : lines) {
    flip_line |= l.rfind("[h][2000] Accuracy-Flip: ", 0) == 0 && l.find("+-") != std::string::npos;
  }
  EXPECT_TRUE(flip_line);
  const auto j = to_json(from_file);
  EXPECT_EQ(j["target"], "h");
  EXPECT_EQ(j["pairs"], 20);
  EXPECT_TRUE(j.contains("accuracy_noflip"));
  EXPECT_TRUE(j.contains("tar@far=1e-01"));
}

TEST(VerificationSet, BadFiles) {
  test::TempDir dir;
  EXPECT_THROW(VerificationSetFile(dir.file("missing.h5")), IoError);
  // An exported-backbone-like file: another format.
  const std::string other = dir.file("other.h5");
  {
    h5::File f = h5::File::create(other);
    h5::write_attribute(f.root().id(), "format", std::string("ffc-backbone"));
    f.close();
  }
  try {
    VerificationSetFile file(other);
    ADD_FAILURE() << "accepted another format";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bin2ffc"), std::string::npos) << e.what();
  }
  // Offsets that do not match the pairs.
  VerificationSet set;
  set.name = "x";
  set.add_image({0xFF, 0xD8, 1});
  set.add_image({0xFF, 0xD8, 2});
  set.issame = {1, 0};  // 2 pairs need 4 images
  EXPECT_THROW(write_verification_set(dir.file("x.h5"), set), FormatError);
  set.issame = {1};
  write_verification_set(dir.file("x.h5"), set);
  const VerificationSetFile ok(dir.file("x.h5"));
  EXPECT_EQ(ok.pairs(), 1);
  // Not a JPEG inside: the decoder names the file and the image.
  at::Tensor out = at::empty({2, 3, 8, 8});
  try {
    set_file_filler(ok, 8, data::ColorOrder::kRgb)(0, 2, out);
    ADD_FAILURE() << "decoded garbage";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("x.h5: image 0"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_verification_set(dir.file("no/such/dir/x.h5"), set), IoError);
}

TEST(ValTargets, ParseAndResolve) {
  ConfigLoader loader;
  loader.set("val_targets=[lfw, cfp_fp, sets/agedb_30.h5]");
  loader.set("rec=/data/ms1m,/data/extra");
  const Config c = loader.finish();
  ASSERT_EQ(c.val_targets.size(), 3u);
  EXPECT_EQ(resolve_val_target(c, "lfw"), "/data/ms1m/lfw.h5");
  EXPECT_EQ(resolve_val_target(c, "sets/agedb_30.h5"), "sets/agedb_30.h5");
  EXPECT_EQ(resolve_val_target(c, "x.h5"), "x.h5");
  Config synthetic = c;
  synthetic.rec = "synthetic";
  EXPECT_EQ(resolve_val_target(synthetic, "lfw"), "lfw.h5");
  // The dump loads back equal.
  ConfigLoader again;
  again.load_string(dump_config(c), "dump");
  EXPECT_EQ(again.finish().val_targets, c.val_targets);
  ConfigLoader bad;
  EXPECT_THROW(bad.set("val_targets=lfw"), ConfigError);
  EXPECT_THROW(bad.set("val_targets=[lfw, '']"), ConfigError);
}

TEST(ValTargets, RunValidationSkipsMissingFilesAndWritesRecords) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  write_verification_set(dir.file("h.h5"),
                         synthetic_set(source, heldout_pairs(source.spec(), 20), "mine", 95));
  ConfigLoader loader;
  loader.set("val_targets=[" + dir.file("h.h5") + ", " + dir.file("missing.h5") + "]");
  loader.set("rec=synthetic");
  loader.set("num_classes=200");
  loader.set("image_size=32");
  loader.set("seed=4");
  loader.set("val_pairs=20");
  loader.set("val_identities=6");
  const Config c = loader.finish();
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = 16;
  spec.image_size = 32;
  at::manual_seed(2);
  auto net = model::make_backbone(spec);
  const auto comm = comm::make_single_process_communicator();
  std::vector<nlohmann::ordered_json> records;
  const ValidationResults r = run_validation(
      c, *net, *comm, 2000, [&](const nlohmann::ordered_json& j) { records.push_back(j); });
  ASSERT_EQ(r.verification.size(), 2u);  // the file (named by its attribute), then heldout
  EXPECT_EQ(r.verification[0].name, "mine");
  EXPECT_EQ(r.verification[1].name, "heldout");
  EXPECT_TRUE(r.has_longtail);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["event"], "eval");
  EXPECT_EQ(records[0]["step"], 2000);
  EXPECT_EQ(records[0]["target"], "mine");
  EXPECT_EQ(records[1]["target"], "heldout");
  EXPECT_EQ(records[2]["target"], "longtail");
  EXPECT_TRUE(records[2]["buckets"].is_array());
}

}  // namespace
}  // namespace ffc::eval
