// Embeddings for evaluation: the flip test is embed(x) + embed(mirror x), normalised; batches do
// not change the result; XNorm; the long-tail sample and its pairs.

#include "eval/embed.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "comm/communicator.h"
#include "common/error.h"
#include "eval/longtail.h"
#include "model/backbone.h"
#include "model/normalize.h"

namespace ffc::eval {
namespace {

std::shared_ptr<model::Backbone> tiny_net(int64_t embedding = 32) {
  model::BackboneSpec spec;
  spec.name = "tiny";
  spec.embedding_size = embedding;
  spec.image_size = 32;
  at::manual_seed(11);
  auto net = model::make_backbone(spec);
  // Meaningful BatchNorm running statistics, so that eval mode differs from the initial state.
  net->train();
  for (int i = 0; i < 3; ++i) {
    net->forward(at::randn({8, 3, 32, 32}));
  }
  return net;
}

TEST(Embed, FlipIsTheNormalisedSumOfImageAndMirror) {
  auto net = tiny_net();
  at::manual_seed(5);
  const at::Tensor x = at::randn({6, 3, 32, 32});
  const at::Tensor flipped = embed(*net, x, 4, /*flip=*/true);
  const at::Tensor plain = embed(*net, x, 4, /*flip=*/false);
  net->eval();
  at::NoGradGuard no_grad;
  const at::Tensor e = net->forward(x);
  const at::Tensor m = net->forward(x.flip({3}));
  EXPECT_TRUE(at::allclose(flipped, model::l2_normalize(e + m), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(plain, model::l2_normalize(e), 1e-4, 1e-5));
  // The mirror matters: the flip embedding differs from the plain one.
  EXPECT_GT((flipped - plain).abs().max().item<double>(), 1e-3);
  // Unit rows.
  EXPECT_TRUE(at::allclose(flipped.norm(2, {1}), at::ones({6}), 1e-4, 1e-5));
  // The mode is restored.
  net->train();
  embed(*net, x, 4, true);
  EXPECT_TRUE(net->is_training());
}

TEST(Embed, RawEmbeddingsBatchesAndXNorm) {
  auto net = tiny_net();
  at::manual_seed(6);
  const at::Tensor x = at::randn({7, 3, 32, 32});
  int calls = 0;
  const ImageFiller fill = [&](int64_t begin, int64_t end, const at::Tensor& out) {
    ++calls;
    ASSERT_EQ(out.size(0), end - begin);
    out.copy_(x.narrow(0, begin, end - begin));
  };
  const RawEmbeddings a = embed_raw(*net, 0, 7, fill, 3, true);
  EXPECT_EQ(calls, 3);  // 3 + 3 + 1
  const RawEmbeddings b = embed_raw(*net, 0, 7, fill, 100, true);
  EXPECT_TRUE(at::allclose(a.plain, b.plain, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(a.mirror, b.mirror, 1e-4, 1e-5));
  net->eval();
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(a.mirror, net->forward(x.flip({3})), 1e-4, 1e-5));
  const double want =
      at::cat({a.plain.norm(2, {1}), a.mirror.norm(2, {1})}).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(xnorm(a), want, 1e-6 * want);  // float32 norms against double
  // A range: rows [2, 5).
  const RawEmbeddings part = embed_raw(*net, 2, 5, fill, 2, false);
  EXPECT_FALSE(part.mirror.defined());
  EXPECT_TRUE(at::allclose(part.plain, a.plain.narrow(0, 2, 3), 1e-4, 1e-5));
  EXPECT_EQ(embed_raw(*net, 3, 3, fill, 2, true).plain.size(0), 0);
}

TEST(Embed, SingleProcessDistributedIsLocal) {
  auto net = tiny_net();
  const auto comm = comm::make_single_process_communicator();
  at::manual_seed(8);
  const at::Tensor x = at::randn({5, 3, 32, 32});
  const ImageFiller fill = [&](int64_t begin, int64_t end, const at::Tensor& out) {
    out.copy_(x.narrow(0, begin, end - begin));
  };
  const RawEmbeddings d = embed_distributed(*net, 5, fill, *comm, 2, true);
  EXPECT_TRUE(at::allclose(normalized(d, true), embed(*net, x, 2, true), 1e-4, 1e-5));
}

data::SyntheticSpec small_spec() {
  data::SyntheticSpec spec;
  spec.num_classes = 3000;
  spec.image_size = 32;
  spec.seed = 9;
  return spec;
}

TEST(Longtail, SampleRespectsBuckets) {
  const data::SyntheticSource source(small_spec());
  const LongtailSample s = sample_longtail(source, 40);
  const auto& buckets = longtail_buckets();
  ASSERT_EQ(buckets.size(), 5u);
  std::vector<int64_t> per(buckets.size(), 0);
  std::set<int64_t> labels;
  for (size_t i = 0; i < s.labels.size(); ++i) {
    const int b = s.bucket[i];
    ++per[static_cast<size_t>(b)];
    EXPECT_TRUE(labels.insert(s.labels[i]).second) << "identity sampled twice";
    if (b == 0) {
      EXPECT_GE(s.labels[i], source.num_classes());
      EXPECT_EQ(s.train_images[i], 0);
    } else {
      ASSERT_LT(s.labels[i], source.num_classes());
      const int64_t count = source.class_size(s.labels[i]);
      EXPECT_EQ(s.train_images[i], count);
      EXPECT_GE(count, buckets[static_cast<size_t>(b)].min_count);
      EXPECT_LE(count, buckets[static_cast<size_t>(b)].max_count);
    }
  }
  // Populations: every training identity in exactly one bucket.
  int64_t total = 0;
  for (size_t b = 1; b < buckets.size(); ++b) {
    total += s.population[b];
    EXPECT_EQ(per[b], std::min<int64_t>(40, s.population[b])) << buckets[b].name;
  }
  EXPECT_EQ(total, source.num_classes());
  EXPECT_EQ(per[0], 40);
  EXPECT_EQ(s.population[0], 0);
  // The defaults (power 1.5, 1 to 100 images) fill every bucket at N = 3000.
  for (size_t b = 1; b < buckets.size(); ++b) {
    EXPECT_GT(s.population[b], 0) << buckets[b].name;
  }
  EXPECT_EQ(bucket_of(1), 1);
  EXPECT_EQ(bucket_of(5), 2);
  EXPECT_EQ(bucket_of(6), 3);
  EXPECT_EQ(bucket_of(20), 3);
  EXPECT_EQ(bucket_of(21), 4);
}

TEST(Longtail, PairsAlternateGenuineAndImpostor) {
  const IndexPairs p = longtail_pairs({3, 5, 9});
  ASSERT_EQ(p.same.size(), 6u);
  const std::vector<int64_t> a = {6, 6, 10, 10, 18, 18};
  const std::vector<int64_t> b = {7, 11, 11, 19, 19, 7};
  const std::vector<uint8_t> same = {1, 0, 1, 0, 1, 0};
  EXPECT_EQ(p.a, a);
  EXPECT_EQ(p.b, b);
  EXPECT_EQ(p.same, same);
  EXPECT_TRUE(longtail_pairs({4}).same.empty());
}

TEST(Longtail, ReportOnATinyNet) {
  auto net = tiny_net();
  const data::SyntheticSource source(small_spec());
  const auto comm = comm::make_single_process_communicator();
  const LongtailReport r = evaluate_longtail(*net, source, 20, *comm, 64, true);
  ASSERT_EQ(r.rows.size(), 6u);  // unseen, 1, 2-5, 6-20, >20, trained
  EXPECT_EQ(r.rows[0].bucket, "unseen");
  EXPECT_EQ(r.rows.back().bucket, "trained");
  EXPECT_EQ(r.rows.back().population, 3000);
  int64_t sampled = 0;
  for (size_t i = 0; i + 1 < r.rows.size(); ++i) {
    sampled += r.rows[i].identities;
    EXPECT_TRUE(r.rows[i].verified);
    EXPECT_EQ(r.rows[i].verification.pairs, 2 * r.rows[i].identities);
    EXPECT_GE(r.rows[i].identification.top5, r.rows[i].identification.top1);
    EXPECT_GE(r.rows[i].verification.accuracy, 0.0);
    EXPECT_LE(r.rows[i].verification.accuracy, 1.0);
  }
  EXPECT_EQ(r.gallery_identities, sampled);
  EXPECT_EQ(r.rows.back().identities, sampled - r.rows[0].identities);
  // A mismatched image size is refused.
  data::SyntheticSpec big = small_spec();
  big.image_size = 64;
  EXPECT_THROW(evaluate_longtail(*net, data::SyntheticSource(big), 5, *comm, 64, true), Error);
}

}  // namespace
}  // namespace ffc::eval
