// Distributed embedding equals the single-process computation, at every rank count: raw
// embeddings of image sets (also with fewer images than ranks), a verification set file, the
// long-tail breakdown, and the training-time validation of ranks whose BatchNorm statistics differ.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "comm/communicator.h"
#include "common/config.h"
#include "data/dataset.h"
#include "eval/embed.h"
#include "eval/longtail.h"
#include "eval/validation.h"
#include "eval/verification_set.h"
#include "model/backbone.h"
#include "support/mpi_env.h"
#include "support/temp_dir.h"

namespace ffc::eval {
namespace {

// The same network on every rank (same seed, same warm-up batches).
std::shared_ptr<model::Backbone> tiny_net() {
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = 24;
  spec.image_size = 32;
  at::manual_seed(21);
  auto net = model::make_backbone(spec);
  for (int i = 0; i < 2; ++i) {
    net->forward(at::randn({8, 3, 32, 32}));
  }
  return net;
}

TEST(EmbedMpi, DistributedEqualsSingleProcess) {
  comm::Communicator& world = test::world();
  auto net = tiny_net();
  at::manual_seed(7);
  const at::Tensor x = at::randn({37, 3, 32, 32});
  const ImageFiller fill = [&](int64_t begin, int64_t end, const at::Tensor& out) {
    out.copy_(x.narrow(0, begin, end - begin));
  };
  for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{37}}) {
    for (const bool flip : {true, false}) {
      const RawEmbeddings d = embed_distributed(*net, n, fill, world, 5, flip);
      const RawEmbeddings s = embed_raw(*net, 0, n, fill, 5, flip);
      ASSERT_EQ(d.plain.size(0), n);
      EXPECT_TRUE(at::allclose(d.plain, s.plain, 1e-4, 1e-5)) << "n " << n << " flip " << flip;
      if (flip) {
        EXPECT_TRUE(at::allclose(d.mirror, s.mirror, 1e-4, 1e-5)) << "n " << n;
      } else {
        EXPECT_FALSE(d.mirror.defined());
      }
    }
  }
}

TEST(EmbedMpi, SetFileAndLongtailEqualSingleProcess) {
  comm::Communicator& world = test::world();
  const auto single = comm::make_single_process_communicator();
  auto net = tiny_net();
  data::SyntheticSpec spec;
  spec.num_classes = 1000;
  spec.image_size = 32;
  spec.seed = 5;
  const data::SyntheticSource source(spec);
  test::TempDir dir;  // one per rank
  const std::string path = dir.file("pairs.h5");
  write_verification_set(path, synthetic_set(source, heldout_pairs(spec, 30), "pairs", 95));
  const VerificationSetFile file(path);
  EvalOptions options;
  options.batch = 8;
  const VerificationReport d =
      evaluate_set_file(*net, file, data::ColorOrder::kRgb, world, options);
  const VerificationReport s =
      evaluate_set_file(*net, file, data::ColorOrder::kRgb, *single, options);
  EXPECT_NEAR(d.xnorm, s.xnorm, 1e-4 * s.xnorm);
  EXPECT_NEAR(d.auc, s.auc, 1e-3);
  EXPECT_NEAR(d.result.accuracy, s.result.accuracy, 1.0 / 30 + 1e-9);

  const LongtailReport ld = evaluate_longtail(*net, source, 12, world, 16, true);
  const LongtailReport ls = evaluate_longtail(*net, source, 12, *single, 16, true);
  ASSERT_EQ(ld.rows.size(), ls.rows.size());
  for (size_t i = 0; i < ld.rows.size(); ++i) {
    EXPECT_EQ(ld.rows[i].identities, ls.rows[i].identities);
    EXPECT_NEAR(ld.rows[i].identification.top1, ls.rows[i].identification.top1, 0.1)
        << ld.rows[i].bucket;
  }
}

TEST(EmbedMpi, ValidationEvaluatesRank0sNetwork) {
  comm::Communicator& world = test::world();
  auto net = tiny_net();
  const auto reference = model::clone_backbone(*net);  // rank 0's network
  // Data-parallel ranks share parameters, not running statistics: make rank r's drift.
  {
    at::NoGradGuard no_grad;
    for (at::Tensor& b : net->buffers()) {
      if (b.is_floating_point()) {
        b.mul_(1.0 + 0.5 * world.rank());
      }
    }
  }
  std::vector<at::Tensor> own;
  for (const at::Tensor& b : net->buffers()) {
    own.push_back(b.clone());
  }
  ConfigLoader loader;
  for (const char* s : {"rec=synthetic", "num_classes=500", "image_size=32", "seed=5",
                        "val_pairs=40", "val_identities=6"}) {
    loader.set(s);
  }
  const Config config = loader.finish();
  const auto single = comm::make_single_process_communicator();
  const ValidationResults d = run_validation(config, *net, world, 7, {});
  const ValidationResults s = run_validation(config, *reference, *single, 7, {});
  ASSERT_EQ(d.verification.size(), 1u);
  EXPECT_NEAR(d.verification[0].xnorm, s.verification[0].xnorm, 1e-5 * s.verification[0].xnorm);
  EXPECT_NEAR(d.verification[0].auc, s.verification[0].auc, 1e-6);
  EXPECT_EQ(d.longtail.rows.size(), s.longtail.rows.size());
  // The rank's own statistics are back.
  const std::vector<at::Tensor> after = net->buffers();
  ASSERT_EQ(after.size(), own.size());
  for (size_t i = 0; i < own.size(); ++i) {
    EXPECT_TRUE(at::equal(after[i], own[i])) << "buffer " << i;
  }
  // Without rank 0's buffers the ranks would embed with different networks.
  if (world.size() > 1) {
    const data::SyntheticSource source(data::synthetic_spec(config));
    const VerificationReport mixed = evaluate_heldout(*net, source, 40, world, EvalOptions{});
    EXPECT_GT(std::abs(mixed.xnorm - s.verification[0].xnorm), 1e-3 * s.verification[0].xnorm);
  }
}

}  // namespace
}  // namespace ffc::eval
