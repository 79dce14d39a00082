// Samplers: disjoint shards that cover an epoch, uniformity, determinism, reshuffling per epoch,
// identity items, the FFC dual plan, and resume/remap.

#include "data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

// The images of one shuffle window of a rank, sorted, as runs of consecutive indices (mod n).
int count_runs(std::vector<int64_t> items, int64_t n) {
  std::sort(items.begin(), items.end());
  int runs = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    runs += k == 0 || items[k] != items[k - 1] + 1;
  }
  // A block that wraps past n - 1 counts once.
  if (runs > 1 && items.front() == 0 && items.back() == n - 1) {
    --runs;
  }
  return runs;
}

TEST(BlockOrder, ShardsAreDisjointWholeBlocksAndWindowsAreRuns) {
  const int64_t n = 1003, block = 10, window = 4;
  for (int world : {1, 2, 4}) {
    std::vector<int> count(n, 0);
    for (int r = 0; r < world; ++r) {
      InstanceSampler s(n, 42, r, world, {block, window});
      EXPECT_EQ(s.per_rank(), (n / block) / world * block);  // whole blocks per rank
      for (int64_t w0 = 0; w0 < s.per_rank(); w0 += block * window) {
        std::vector<int64_t> items;
        for (int64_t i = w0; i < std::min(s.per_rank(), w0 + block * window); ++i) {
          items.push_back(s.image(3, i));
          ++count[items.back()];
        }
        // A window reads `window` runs of the file (fewer when two blocks happen to touch).
        EXPECT_LE(count_runs(items, n), window);
        EXPECT_EQ(static_cast<int64_t>(items.size()) % block, 0);
      }
    }
    int64_t covered = 0;
    for (int c : count) {
      EXPECT_LE(c, 1);
      covered += c;
    }
    EXPECT_EQ(covered, (n / block) / world * block * world);
  }
}

TEST(BlockOrder, ShuffledWithinTheWindowAndAcrossEpochs) {
  InstanceSampler a(1000, 1, 0, 2, {10, 5}), b(1000, 1, 0, 2, {10, 5});
  int same_epoch = 0, next_epoch = 0, in_order = 0;
  for (int64_t i = 0; i < a.per_rank(); ++i) {
    same_epoch += a.image(0, i) == b.image(0, i);
    next_epoch += a.image(0, i) == a.image(1, i);
    in_order += i > 0 && a.image(0, i) == a.image(0, i - 1) + 1;
  }
  EXPECT_EQ(same_epoch, a.per_rank());
  EXPECT_LT(next_epoch, 10);
  EXPECT_LT(in_order, 50);  // not read in file order inside a window
}

TEST(BlockOrder, EveryImageAlikeOverEpochs) {
  // 70 images in blocks of 4: 17 blocks, 68 images an epoch; the 2 left out move each epoch,
  // and image 0 is in the first half of the epoch as often as in the second.
  const int64_t n = 70;
  InstanceSampler s(n, 9, 0, 1, {4, 2});
  ASSERT_EQ(s.per_rank(), 68);
  std::vector<int> seen(n, 0), first_half(n, 0);
  for (int64_t e = 0; e < 2000; ++e) {
    for (int64_t i = 0; i < s.per_rank(); ++i) {
      ++seen[s.image(e, i)];
      first_half[s.image(e, i)] += i < s.per_rank() / 2;
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    EXPECT_NEAR(seen[k], 2000 * 68 / 70, 40) << k;  // binomial sd ~ 8
    EXPECT_NEAR(first_half[k], 2000 * 34 / 70, 120) << k;
  }
}

TEST(BlockOrder, ReadAheadNamesTheNextWindowsBlocks) {
  const int64_t n = 997, block = 8, window = 3;
  InstanceSampler s(n, 5, 1, 2, {block, window});
  const int64_t span = block * window;
  auto images_of = [&](int64_t from, int64_t to) {
    std::set<int64_t> out;
    for (int64_t i = from; i < std::min(to, s.per_rank()); ++i) {
      out.insert(s.image(2, i));
    }
    return out;
  };
  auto runs_at = [&](int64_t i) {
    std::vector<ItemRange> runs;
    s.read_ahead(2, i, runs);
    std::set<int64_t> out;
    for (const auto& r : runs) {
      for (int64_t k = 0; k < r.count; ++k) {
        out.insert(r.first + k);
      }
    }
    return out;
  };
  EXPECT_EQ(runs_at(0), images_of(0, 2 * span));            // windows 0 and 1 at the start
  EXPECT_EQ(runs_at(span), images_of(2 * span, 3 * span));  // then one window ahead
  EXPECT_TRUE(runs_at(span + 1).empty());                   // once per window
  std::vector<ItemRange> none;
  InstanceSampler(n, 5, 1, 2).read_ahead(2, 0, none);  // random order: no hints
  EXPECT_TRUE(none.empty());
}

TEST(BlockOrder, TooFewBlocksIsAConfigError) {
  EXPECT_THROW(InstanceSampler(100, 1, 0, 4, {30, 1}), ConfigError);  // 3 blocks, 4 ranks
  EXPECT_NO_THROW(InstanceSampler(100, 1, 0, 3, {30, 1}));
}

TEST(BlockOrder, PlannersKeepTheirRowsAndIdentityBlocksScaleToClasses) {
  const SyntheticSource src = make_source(300);
  PlannerOptions o;
  o.batch_size = 8;
  o.order = {64, 4};
  const ReadOrder ids = identity_order(o.order, src);
  EXPECT_EQ(ids.block, static_cast<int64_t>(std::lround(64.0 * 300 / src.num_images())));
  const DualPlanner dual(src, o, DualMode::kBoth);
  const InstancePlanner inst(src, o);
  EXPECT_TRUE(dual.blocked());
  std::vector<std::vector<Sample>> views;
  for (int64_t step = 0; step < 3; ++step) {
    dual.plan(step, views);
    ASSERT_EQ(views.size(), 2u);
    for (const auto& v : views) {
      for (const auto& x : v) {
        EXPECT_GE(x.image, 0);
        EXPECT_LT(x.image, src.num_images());
      }
    }
  }
  // The read-ahead at step 0 (windows 0 and 1 of both streams) covers every image step 0 reads.
  for (const BatchPlanner* planner :
       {static_cast<const BatchPlanner*>(&dual), static_cast<const BatchPlanner*>(&inst)}) {
    std::vector<ItemRange> runs;
    planner->read_ahead(0, runs);
    planner->plan(0, views);
    for (const auto& v : views) {
      for (const auto& x : v) {
        const bool covered = std::any_of(runs.begin(), runs.end(), [&](const ItemRange& r) {
          return x.image >= r.first && x.image < r.first + r.count;
        });
        EXPECT_TRUE(covered) << "image " << x.image;
      }
    }
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
