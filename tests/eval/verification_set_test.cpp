// Verification set files: write and read back, ranges of images, decoding, and bad files.

#include "eval/verification_set.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "comm/communicator.h"
#include "common/config.h"
#include "common/error.h"
#include "eval/longtail.h"
#include "eval/validation.h"
#include "h5/h5.h"
#include "model/backbone.h"
#include "support/temp_dir.h"

namespace ffc::eval {
namespace {

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

std::shared_ptr<model::Backbone> tiny_net() {
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = 16;
  spec.image_size = 32;
  at::manual_seed(2);
  return model::make_backbone(spec);
}

// A set that says a mirrored image is another identity (glyphs) is scored without the flip test,
// whatever the options ask: the same figures as an evaluation without flip.
TEST(VerificationSet, NoFlipFileIsScoredWithoutFlip) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  VerificationSet set = synthetic_set(source, heldout_pairs(source.spec(), 20), "g", 95);
  write_verification_set(dir.file("flip.h5"), set);
  set.flip = false;
  write_verification_set(dir.file("noflip.h5"), set);
  const VerificationSetFile with(dir.file("flip.h5"));
  const VerificationSetFile without(dir.file("noflip.h5"));
  EXPECT_TRUE(with.flip_allowed());
  EXPECT_FALSE(without.flip_allowed());
  EXPECT_FALSE(without.read_all().flip);
  auto net = tiny_net();
  const auto comm = comm::make_single_process_communicator();
  EvalOptions flip;
  flip.batch = 16;
  EvalOptions plain = flip;
  plain.flip = false;
  const VerificationReport asked =
      evaluate_set_file(*net, without, data::ColorOrder::kRgb, *comm, flip);
  const VerificationReport reference =
      evaluate_set_file(*net, with, data::ColorOrder::kRgb, *comm, plain);
  const VerificationReport flipped =
      evaluate_set_file(*net, with, data::ColorOrder::kRgb, *comm, flip);
  EXPECT_FALSE(asked.flip);
  EXPECT_FALSE(asked.has_noflip);
  EXPECT_TRUE(flipped.flip);
  EXPECT_EQ(asked.result.accuracy, reference.result.accuracy);
  EXPECT_EQ(asked.auc, reference.auc);
  EXPECT_EQ(asked.xnorm, reference.xnorm);
  EXPECT_NE(asked.xnorm, flipped.xnorm);  // the flip test would have mirrored the images
  bool plain_line = false;
  for (const std::string& l : report_lines(asked, 7)) {
    plain_line |= l.rfind("[g][7] Accuracy: ", 0) == 0;
    EXPECT_EQ(l.find("Accuracy-Flip"), std::string::npos) << l;
  }
  EXPECT_TRUE(plain_line);
}

// The long-tail breakdown from a file: the procedural sample written as JPEG images, read back
// and scored; its structure is the procedural breakdown's, its figures close to them (JPEG), and
// the file's flip = 0 turns the flip test off.
LongtailSet longtail_set_of(const data::SyntheticSource& source, int64_t per_bucket, bool flip) {
  data::SyntheticSpec rgb_spec = source.spec();
  rgb_spec.color_order = data::ColorOrder::kRgb;
  const data::SyntheticSource rgb(rgb_spec);
  const LongtailSample sample = sample_longtail(rgb, per_bucket);
  LongtailSet set;
  set.name = "lt";
  set.image_size = rgb.image_size();
  set.source = "test";
  set.flip = flip;
  set.seed = rgb.spec().seed;
  set.labels = sample.labels;
  set.train_images = sample.train_images;
  set.population = sample.population;
  const int s = rgb.image_size();
  std::vector<uint8_t> px(static_cast<size_t>(s) * s * 3);
  std::vector<float> scratch;
  std::vector<uint8_t> jpeg;
  data::JpegEncoder encoder;
  for (size_t i = 0; i < sample.labels.size(); ++i) {
    for (int64_t k = 0; k < 2; ++k) {
      rgb.render(sample.labels[i], sample.train_images[i] + k, px.data(), scratch);
      encoder.encode(px.data(), s, s, 95, jpeg);
      set.add_image(jpeg);
    }
  }
  return set;
}

TEST(LongtailSet, WriteReadAndScore) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  const LongtailSet set = longtail_set_of(source, 8, true);
  write_longtail_set(dir.file("lt.h5"), set);
  EXPECT_EQ(set_file_format(dir.file("lt.h5")), kLongtailSetFormat);
  const LongtailSetFile file(dir.file("lt.h5"));
  EXPECT_EQ(file.name(), "lt");
  EXPECT_EQ(file.image_size(), 32);
  EXPECT_EQ(file.labels(), set.labels);
  EXPECT_EQ(file.train_images(), set.train_images);
  EXPECT_EQ(file.population(), set.population);
  EXPECT_EQ(file.seed(), set.seed);
  EXPECT_TRUE(file.flip_allowed());
  EXPECT_EQ(file.images(), 2 * file.identities());

  auto net = tiny_net();
  const auto comm = comm::make_single_process_communicator();
  const LongtailReport from_file =
      evaluate_longtail_file(*net, file, data::ColorOrder::kRgb, *comm, 16, true);
  const LongtailReport rendered = evaluate_longtail(*net, source, 8, *comm, 16, true);
  EXPECT_EQ(from_file.name, "lt");
  EXPECT_TRUE(from_file.flip);
  EXPECT_EQ(from_file.per_bucket, 8);
  EXPECT_EQ(from_file.gallery_identities, rendered.gallery_identities);
  ASSERT_EQ(from_file.rows.size(), rendered.rows.size());
  for (size_t r = 0; r < rendered.rows.size(); ++r) {
    EXPECT_EQ(from_file.rows[r].bucket, rendered.rows[r].bucket);
    EXPECT_EQ(from_file.rows[r].population, rendered.rows[r].population);
    EXPECT_EQ(from_file.rows[r].identities, rendered.rows[r].identities);
    EXPECT_EQ(from_file.rows[r].verified, rendered.rows[r].verified);
    EXPECT_NEAR(from_file.rows[r].verification.accuracy, rendered.rows[r].verification.accuracy,
                0.25);
  }
  const auto j = to_json(from_file);
  EXPECT_EQ(j["target"], "lt");
  EXPECT_NE(report_lines(from_file, 3).front().find("[lt][3] bucket"), std::string::npos);

  // flip = 0: scored on the plain embeddings, as an evaluation without flip.
  write_longtail_set(dir.file("noflip.h5"), longtail_set_of(source, 8, false));
  const LongtailSetFile noflip(dir.file("noflip.h5"));
  EXPECT_FALSE(noflip.flip_allowed());
  const LongtailReport asked =
      evaluate_longtail_file(*net, noflip, data::ColorOrder::kRgb, *comm, 16, true);
  const LongtailReport plain =
      evaluate_longtail_file(*net, file, data::ColorOrder::kRgb, *comm, 16, false);
  EXPECT_FALSE(asked.flip);
  ASSERT_EQ(asked.rows.size(), plain.rows.size());
  for (size_t r = 0; r < plain.rows.size(); ++r) {
    EXPECT_EQ(asked.rows[r].identification.top1, plain.rows[r].identification.top1);
    EXPECT_EQ(asked.rows[r].verification.accuracy, plain.rows[r].verification.accuracy);
  }
}

TEST(LongtailSet, BadFiles) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  LongtailSet set = longtail_set_of(source, 3, true);
  // A verification set is not a long-tail set, and the message says what makes one.
  write_verification_set(dir.file("v.h5"),
                         synthetic_set(source, heldout_pairs(source.spec(), 4), "v", 95));
  try {
    LongtailSetFile f(dir.file("v.h5"));
    ADD_FAILURE() << "accepted a verification set";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not an ffc long-tail set"), std::string::npos)
        << e.what();
  }
  // Inconsistent sets are refused before anything is written.
  LongtailSet short_counts = set;
  short_counts.train_images.pop_back();
  EXPECT_THROW(write_longtail_set(dir.file("a.h5"), short_counts), Error);
  LongtailSet missing_image = set;
  missing_image.offsets.pop_back();
  EXPECT_THROW(write_longtail_set(dir.file("b.h5"), missing_image), Error);
  LongtailSet population = set;
  population.population.pop_back();
  EXPECT_THROW(write_longtail_set(dir.file("c.h5"), population), Error);
  // A file whose population has 4 entries (written by hand): the reader names the dataset.
  write_longtail_set(dir.file("d.h5"), set);
  {
    h5::File f = h5::File::open_write(dir.file("d.h5"));
    FFC_H5_CHECK(H5Ldelete(f.root().id(), "population", H5P_DEFAULT));
    h5::Dataset ds = f.root().create_dataset("population", h5::ElementType::kInt64, {4});
    const int64_t four[4] = {0, 1, 2, 3};
    ds.write(h5::ElementType::kInt64, four);
    ds.close();
    f.close();
  }
  try {
    LongtailSetFile f(dir.file("d.h5"));
    ADD_FAILURE() << "accepted 4 population entries";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'population' has 4 entries"), std::string::npos)
        << e.what();
  }
}

// Hard impostors of procedural held-out pairs: the chosen share of the impostor pairs, spread
// evenly, pairs an identity with its nearest neighbour in latent space; genuine pairs and the
// other impostors are those of the default.
TEST(HeldoutPairs, HardImpostorsAreTheNearestIdentities) {
  const data::SyntheticSpec spec = spec32();
  const SyntheticPairs plain = heldout_pairs(spec, 40);
  const SyntheticPairs none = heldout_pairs(spec, 40, 0.0);
  EXPECT_EQ(plain.label_b, none.label_b);
  const SyntheticPairs hard = heldout_pairs(spec, 40, 0.5);
  std::vector<int64_t> pool;
  for (int64_t c = 0; c < kHardImpostorPool; ++c) {
    pool.push_back(spec.num_classes + 80 + c);
  }
  auto dist = [&](int64_t a, int64_t b) {
    const auto za = data::synthetic_latent(spec, a);
    const auto zb = data::synthetic_latent(spec, b);
    double d = 0;
    for (size_t l = 0; l < za.size(); ++l) {
      d += (za[l] - zb[l]) * (za[l] - zb[l]);
    }
    return d;
  };
  int n_hard = 0;
  double hard_d = 0, random_d = 0;
  for (size_t k = 0; k < 40; ++k) {
    EXPECT_EQ(hard.same[k], plain.same[k]);
    EXPECT_EQ(hard.label_a[k], plain.label_a[k]);
    if (plain.same[k]) {
      EXPECT_EQ(hard.label_b[k], plain.label_b[k]);
      continue;
    }
    const bool is_hard = hard.label_b[k] != plain.label_b[k];
    EXPECT_EQ(is_hard, (k / 2) % 2 == 1) << "impostor " << k / 2;  // every other impostor
    random_d += dist(plain.label_a[k], plain.label_b[k]);
    if (is_hard) {
      ++n_hard;
      hard_d += dist(hard.label_a[k], hard.label_b[k]);
      // The nearest of the pool, by brute force.
      for (int64_t c : pool) {
        EXPECT_LE(dist(hard.label_a[k], hard.label_b[k]), dist(hard.label_a[k], c));
      }
    }
  }
  EXPECT_EQ(n_hard, 10);
  EXPECT_LT(hard_d / n_hard, 0.5 * random_d / 20);  // much nearer than random pairs
}

TEST(HeldoutPairs, LongtailHardPartnersStayInTheirBucket) {
  const data::SyntheticSource source(spec32());
  const LongtailSample sample = sample_longtail(source, 10);
  const std::vector<int64_t> none = longtail_hard_partners(source.spec(), sample, 0.0);
  for (int64_t p : none) {
    EXPECT_EQ(p, -1);
  }
  const std::vector<int64_t> all = longtail_hard_partners(source.spec(), sample, 1.0);
  const std::vector<int64_t> half = longtail_hard_partners(source.spec(), sample, 0.5);
  int64_t halves = 0;
  for (size_t i = 0; i < sample.labels.size(); ++i) {
    ASSERT_GE(all[i], 0);
    EXPECT_NE(all[i], static_cast<int64_t>(i));
    EXPECT_EQ(sample.bucket[static_cast<size_t>(all[i])], sample.bucket[i]);
    halves += half[i] >= 0;
    if (half[i] >= 0) {
      EXPECT_EQ(half[i], all[i]);
    }
  }
  EXPECT_NEAR(static_cast<double>(halves), 0.5 * static_cast<double>(sample.labels.size()), 3.0);
}

// A long-tail set file in val_targets: evaluated during training beside the verification sets,
// one record named by the file.
TEST(ValTargets, RunValidationEvaluatesLongtailFiles) {
  test::TempDir dir;
  const data::SyntheticSource source(spec32());
  write_longtail_set(dir.file("lt.h5"), longtail_set_of(source, 6, false));
  ConfigLoader loader;
  loader.set("val_targets=[" + dir.file("lt.h5") + "]");
  loader.set("rec=synthetic");
  loader.set("num_classes=200");
  loader.set("image_size=32");
  loader.set("seed=4");
  loader.set("val_pairs=0");
  loader.set("val_identities=0");
  const Config c = loader.finish();
  auto net = tiny_net();
  const auto comm = comm::make_single_process_communicator();
  std::vector<nlohmann::ordered_json> records;
  const ValidationResults r = run_validation(
      c, *net, *comm, 5, [&](const nlohmann::ordered_json& j) { records.push_back(j); });
  EXPECT_TRUE(r.verification.empty());
  ASSERT_EQ(r.longtail_sets.size(), 1u);
  EXPECT_EQ(r.longtail_sets[0].name, "lt");
  EXPECT_FALSE(r.longtail_sets[0].flip);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["target"], "lt");
  EXPECT_EQ(records[0]["flip"], false);
  EXPECT_TRUE(records[0]["buckets"].is_array());
}

}  // namespace
}  // namespace ffc::eval
