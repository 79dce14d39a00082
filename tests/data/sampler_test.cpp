// Samplers: disjoint shards that cover an epoch, uniformity, determinism, reshuffling per epoch,
// identity items, the FFC dual plan, and resume/remap.

#include "data/sampler.h"

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "data/synthetic.h"

namespace ffc::data {
namespace {

SyntheticSource make_source(int64_t classes = 300) {
  SyntheticSpec s;
  s.num_classes = classes;
  s.max_images = 20;
  s.image_size = 8;
  s.seed = 3;
  return SyntheticSource(s);
}

TEST(InstanceSampler, ShardsAreDisjointAndCoverTheEpoch) {
  const int64_t n = 1003;
  for (int world : {1, 2, 4}) {
    std::vector<int> count(n, 0);
    for (int r = 0; r < world; ++r) {
      InstanceSampler s(n, 42, r, world);
      EXPECT_EQ(s.per_rank(), n / world);
      for (int64_t i = 0; i < s.per_rank(); ++i) {
        ++count[s.image(5, i)];
      }
    }
    int64_t covered = 0;
    for (int c : count) {
      EXPECT_LE(c, 1);  // never twice in an epoch
      covered += c;
    }
    EXPECT_EQ(covered, (n / world) * world);  // only the remainder is dropped
  }
}

TEST(InstanceSampler, DeterministicAndReshuffledEachEpoch) {
  InstanceSampler a(1000, 1, 0, 2), b(1000, 1, 0, 2), c(1000, 2, 0, 2);
  int same_epoch = 0, next_epoch = 0, other_seed = 0;
  for (int64_t i = 0; i < 500; ++i) {
    same_epoch += a.image(0, i) == b.image(0, i);
    next_epoch += a.image(0, i) == a.image(1, i);
    other_seed += a.image(0, i) == c.image(0, i);
  }
  EXPECT_EQ(same_epoch, 500);
  EXPECT_LT(next_epoch, 10);
  EXPECT_LT(other_seed, 10);
}

TEST(InstanceSampler, PositionsAreUniform) {
  // Over many epochs, image 0 appears at each rank's early and late positions alike.
  const int64_t n = 64;
  InstanceSampler s(n, 9, 0, 1);
  std::vector<int> first_half(n, 0);
  for (int64_t e = 0; e < 2000; ++e) {
    for (int64_t i = 0; i < n / 2; ++i) {
      ++first_half[s.image(e, i)];
    }
  }
  for (int c : first_half) {
    EXPECT_NEAR(c, 1000, 120);  // binomial(2000, 1/2): sd ~ 22
  }
}

TEST(IdentitySampler, CyclesThroughIdentitiesAndPicksDistinctImages) {
  const int64_t classes = 50;
  std::vector<int> count(classes, 0);
  for (int r = 0; r < 2; ++r) {
    IdentitySampler s(classes, 4, r, 2);
    for (int64_t q = 0; q < s.per_rank(); ++q) {
      ++count[s.identity(0, q)];
    }
    // The stream continues into a reshuffled second pass.
    std::set<int64_t> pass2;
    for (int64_t q = s.per_rank(); q < 2 * s.per_rank(); ++q) {
      pass2.insert(s.identity(0, q));
    }
    EXPECT_EQ(pass2.size(), static_cast<size_t>(s.per_rank()));
  }
  for (int c : count) {
    EXPECT_EQ(c, 1);
  }
  IdentitySampler s(classes, 4, 0, 1);
  int64_t pick[3];
  for (int64_t size : {1, 2, 3, 17}) {
    s.pick_images(0, 5, 11, size, 2, pick);
    if (size == 1) {
      EXPECT_EQ(pick[0], 0);
      EXPECT_EQ(pick[1], 0);  // the same image twice
    } else {
      EXPECT_NE(pick[0], pick[1]);
      EXPECT_LT(std::max(pick[0], pick[1]), size);
    }
  }
  s.pick_images(0, 5, 11, 2, 3, pick);  // more than it has: each once, then repeats
  EXPECT_EQ(std::set<int64_t>({pick[0], pick[1]}).size(), 2u);
}

TEST(DualPlanner, ViewsShareTheIdentityPart) {
  const SyntheticSource src = make_source();
  PlannerOptions o;
  o.batch_size = 8;
  o.seed = 5;
  DualPlanner p(src, o, DualMode::kBoth);
  EXPECT_EQ(p.view_rows(), (std::vector<int64_t>{12, 12}));
  std::vector<std::vector<Sample>> v;
  p.plan(3, v);
  ASSERT_EQ(v.size(), 2u);
  std::set<int64_t> instance_images;
  for (int64_t i = 0; i < 12; ++i) {
    if (i < 8) {
      EXPECT_EQ(v[0][i].label, v[1][i].label);  // same identity in both views
      EXPECT_GE(v[0][i].label, 0);
      if (src.class_size(v[0][i].label) > 1) {
        EXPECT_NE(v[0][i].image, v[1][i].image);  // two distinct images of it
      }
      int64_t label = -1, j = -1;
      src.locate(v[0][i].image, label, j);
      EXPECT_EQ(label, v[0][i].label);
    } else {
      EXPECT_EQ(v[0][i].label, -1);  // instance images: the record decides
      instance_images.insert(v[0][i].image);
      instance_images.insert(v[1][i].image);
    }
  }
  EXPECT_EQ(instance_images.size(), 8u);  // b instance images, split over x and y
  // Determinism.
  std::vector<std::vector<Sample>> again;
  p.plan(3, again);
  for (int k = 0; k < 2; ++k) {
    for (int64_t i = 0; i < 12; ++i) {
      EXPECT_EQ(again[k][i].image, v[k][i].image);
      EXPECT_EQ(again[k][i].flip, v[k][i].flip);
    }
  }
  o.batch_size = 7;
  EXPECT_THROW(DualPlanner(src, o, DualMode::kBoth), ConfigError);
}

TEST(DualPlanner, AblationModesKeepTheRows) {
  const SyntheticSource src = make_source();
  PlannerOptions o;
  o.batch_size = 4;
  std::vector<std::vector<Sample>> v;
  DualPlanner inst(src, o, DualMode::kInstanceOnly);
  inst.plan(0, v);
  ASSERT_EQ(v[0].size(), 6u);
  for (const auto& s : v[0]) {
    EXPECT_EQ(s.label, -1);
  }
  DualPlanner ids(src, o, DualMode::kIdentityOnly);
  ids.plan(0, v);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(v[0][i].label, v[1][i].label);
    EXPECT_GE(v[0][i].label, 0);
  }
}

TEST(KPerIdentityPlanner, GroupsOfK) {
  const SyntheticSource src = make_source();
  PlannerOptions o;
  o.batch_size = 12;
  KPerIdentityPlanner p(src, o, 4);
  std::vector<std::vector<Sample>> v;
  p.plan(1, v);
  ASSERT_EQ(v[0].size(), 12u);
  for (int g = 0; g < 3; ++g) {
    for (int j = 1; j < 4; ++j) {
      EXPECT_EQ(v[0][g * 4 + j].label, v[0][g * 4].label);
    }
  }
  EXPECT_THROW(KPerIdentityPlanner(src, o, 5), ConfigError);
}

TEST(Planners, TooSmallDatasetIsAConfigError) {
  const SyntheticSource src = make_source(3);
  PlannerOptions o;
  o.batch_size = 1000;
  EXPECT_THROW(InstancePlanner(src, o), ConfigError);
}

TEST(RemapStep, ResumeOnAnotherWorldSize) {
  // 2 ranks x 64 images per step -> 4 ranks x 64: the consumed prefix halves in steps.
  EXPECT_EQ(remap_step(10, 100, 128, 50, 256), 5);
  EXPECT_EQ(remap_step(11, 100, 128, 50, 256), 5);     // a half-consumed step is redone
  EXPECT_EQ(remap_step(205, 100, 128, 50, 256), 102);  // epoch 2, step 5 -> epoch 2, step 2
  EXPECT_EQ(remap_step(7, 100, 128, 200, 64), 14);     // 2 -> 1 ranks
}

}  // namespace
}  // namespace ffc::data
