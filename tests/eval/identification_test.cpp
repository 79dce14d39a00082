// Closed-set identification on hand-made embeddings with known ranks.

#include "eval/identification.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace ffc::eval {
namespace {

// Unit vectors in the plane at the given angles (degrees).
at::Tensor at_angles(const std::vector<double>& degrees) {
  at::Tensor t = at::zeros({static_cast<int64_t>(degrees.size()), 2});
  for (size_t i = 0; i < degrees.size(); ++i) {
    const double r = degrees[i] * M_PI / 180.0;
    t[static_cast<int64_t>(i)][0] = std::cos(r);
    t[static_cast<int64_t>(i)][1] = std::sin(r);
  }
  return t;
}

TEST(Identification, RanksOnHandMadeEmbeddings) {
  // Gallery identities 10, 20, 30, 40, 50, 60 at 0, 30, 60, 90, 120, 150 degrees.
  const at::Tensor gallery = at_angles({0, 30, 60, 90, 120, 150});
  const std::vector<int64_t> gallery_ids = {10, 20, 30, 40, 50, 60};
  // Probe of 10 at 5 degrees: its own entry is nearest -> rank 0.
  // Probe of 20 at 50 degrees: 30 (10 away) beats 20 (20 away) -> rank 1.
  // Probe of 60 at 10 degrees: 10, 20, 30, 40 and 50 are nearer than 150 -> rank 5.
  const at::Tensor probes = at_angles({5, 50, 10});
  const std::vector<int64_t> probe_ids = {10, 20, 60};
  const std::vector<int64_t> ranks = identification_ranks(gallery, gallery_ids, probes, probe_ids);
  ASSERT_EQ(ranks.size(), 3u);
  EXPECT_EQ(ranks[0], 0);
  EXPECT_EQ(ranks[1], 1);
  EXPECT_EQ(ranks[2], 5);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 1), 1.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 2), 2.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 5), 2.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 6), 1.0);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 1, {1, 2}), 0.0);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 2, {1, 2}), 0.5);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 1, {}), 0.0);
  const IdentificationResult r = summarize_identification(ranks, 6, {0, 1, 2});
  EXPECT_EQ(r.probes, 3);
  EXPECT_EQ(r.gallery_identities, 6);
  EXPECT_DOUBLE_EQ(r.top1, 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.top5, 2.0 / 3);
}

TEST(Identification, IdentityScoresItsBestEntryAndTiesCountAgainst) {
  // Identity 1 has two gallery entries (0 and 90 degrees), identity 2 one at 45 degrees.
  const at::Tensor gallery = at_angles({0, 90, 45});
  const std::vector<int64_t> gallery_ids = {1, 1, 2};
  // A probe of 1 at 85 degrees: its entry at 90 is nearest -> rank 0, although its other entry
  // is far. A probe of 2 at 0 degrees: identity 1's entry at 0 beats 2 -> rank 1.
  const at::Tensor probes = at_angles({85, 0});
  const std::vector<int64_t> ranks = identification_ranks(gallery, gallery_ids, probes, {1, 2});
  EXPECT_EQ(ranks[0], 0);
  EXPECT_EQ(ranks[1], 1);
  // An exact tie (the same vector for two identities) counts against the probe.
  const at::Tensor twins = at_angles({0, 0});
  EXPECT_EQ(identification_ranks(twins, {7, 8}, at_angles({0}), {7})[0], 1);
}

TEST(Identification, ClosedSetOnly) {
  EXPECT_THROW(identification_ranks(at_angles({0}), {1}, at_angles({0}), {2}), Error);
  EXPECT_THROW(identification_ranks(at_angles({0, 1}), {1}, at_angles({0}), {1}), Error);
}

TEST(Identification, ManyProbesInChunks) {
  // 3000 probes (several similarity blocks): probe i is gallery entry i % 50 exactly.
  at::manual_seed(3);
  at::Tensor gallery = at::randn({50, 16});
  gallery = gallery / gallery.norm(2, {1}, true);
  std::vector<int64_t> ids(50), probe_ids(3000);
  for (int64_t i = 0; i < 50; ++i) {
    ids[static_cast<size_t>(i)] = 1000 + i;
  }
  const at::Tensor rows = at::arange(3000, at::kLong).remainder(50);
  for (int64_t i = 0; i < 3000; ++i) {
    probe_ids[static_cast<size_t>(i)] = 1000 + i % 50;
  }
  const at::Tensor probes = gallery.index_select(0, rows);
  const std::vector<int64_t> ranks = identification_ranks(gallery, ids, probes, probe_ids);
  EXPECT_DOUBLE_EQ(top_k_accuracy(ranks, 1), 1.0);
  // Shifting the labels of the probes by one identity puts each probe's identity elsewhere.
  for (int64_t i = 0; i < 3000; ++i) {
    probe_ids[static_cast<size_t>(i)] = 1000 + (i + 1) % 50;
  }
  EXPECT_LT(top_k_accuracy(identification_ranks(gallery, ids, probes, probe_ids), 1), 0.05);
}

}  // namespace
}  // namespace ffc::eval
