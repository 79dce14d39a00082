// Procedural identities: the long tail, O(1) memory in the number of identities, consistent
// image <-> (class, j) maps, determinism, and identity that can be told apart from nuisances.

#include "data/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "common/error.h"
#include "data/inspect.h"

namespace ffc::data {
namespace {

SyntheticSpec small_spec() {
  SyntheticSpec s;
  s.num_classes = 500;
  s.min_images = 1;
  s.max_images = 40;
  s.power = 1.5;
  s.image_size = 16;
  s.seed = 7;
  return s;
}

TEST(Synthetic, MapsAreInverseAndCountsAddUp) {
  const SyntheticSource src(small_spec());
  int64_t total = 0;
  std::vector<int> seen(src.num_images(), 0);
  for (int64_t y = 0; y < src.num_classes(); ++y) {
    const int64_t n = src.class_size(y);
    ASSERT_GE(n, 1);
    ASSERT_LE(n, 40);
    total += n;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t g = src.class_image(y, j);
      ASSERT_GE(g, 0);
      ASSERT_LT(g, src.num_images());
      ++seen[g];
      int64_t label = -1, jj = -1;
      src.locate(g, label, jj);
      EXPECT_EQ(label, y);
      EXPECT_EQ(jj, j);
    }
  }
  EXPECT_EQ(total, src.num_images());
  for (int c : seen) {
    EXPECT_EQ(c, 1);  // every image belongs to exactly one (class, j)
  }
}

TEST(Synthetic, LongTailFollowsThePowerLaw) {
  SyntheticSpec s = small_spec();
  s.num_classes = 200000;
  s.max_images = 100;
  const SyntheticSource src(s);
  const DatasetStats st = dataset_stats(src);
  EXPECT_EQ(st.classes, 200000);
  // P(count >= k) ~ (k^-a - M^-a) / (1 - M^-a): about 35% of classes have >= 2 images for a = 1.5.
  const double at_least_2 = 1.0 - static_cast<double>(st.buckets[0]) / st.classes;
  const double expected =
      (std::pow(2.0, -1.5) - std::pow(101.0, -1.5)) / (1 - std::pow(101.0, -1.5));
  EXPECT_NEAR(at_least_2, expected, 0.01);
  EXPECT_GT(st.buckets[0] + st.buckets[1], st.classes * 0.9);  // most classes have <= 5 images
  EXPECT_EQ(st.min_per_class, 1);
  EXPECT_EQ(st.median_per_class, 1);
}

TEST(Synthetic, HundredMillionIdentitiesCostNoMemory) {
  SyntheticSpec s = small_spec();
  s.num_classes = 100000000;
  s.max_images = 200;
  const SyntheticSource src(s);
  EXPECT_LT(src.table_bytes(), 64 * 1024);  // independent of N
  EXPECT_GT(src.num_images(), s.num_classes);
  const int64_t y = 98765432;
  const int64_t n = src.class_size(y);
  int64_t label = 0, j = 0;
  src.locate(src.class_image(y, n - 1), label, j);
  EXPECT_EQ(label, y);
  EXPECT_EQ(j, n - 1);
}

double distance(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    s += d * d;
  }
  return std::sqrt(s / a.size());
}

TEST(Synthetic, DeterministicAndIdentityDominatesNuisance) {
  const SyntheticSource src(small_spec());
  std::vector<float> scratch;
  const size_t bytes = 16 * 16 * 3;
  std::vector<uint8_t> a(bytes), b(bytes), c(bytes);
  src.render(3, 0, a.data(), scratch);
  src.render(3, 0, b.data(), scratch);
  EXPECT_EQ(a, b);
  // Same identity, other images, vs other identities: same-identity pairs are closer on average.
  double same = 0, diff = 0;
  for (int k = 0; k < 50; ++k) {
    src.render(k, 0, a.data(), scratch);
    src.render(k, 1, b.data(), scratch);         // j = 1 exists or not: any j renders
    src.render(k + 1000, 0, c.data(), scratch);  // a held-out identity
    same += distance(a, b);
    diff += distance(a, c);
  }
  EXPECT_LT(same, 0.7 * diff) << "same " << same / 50 << " different " << diff / 50;
  // Another seed gives other images.
  SyntheticSpec other = small_spec();
  other.seed = 8;
  const SyntheticSource src2(other);
  src.render(3, 0, a.data(), scratch);
  src2.render(3, 0, b.data(), scratch);
  EXPECT_NE(a, b);
}

TEST(Synthetic, InvalidSpecsAreConfigErrors) {
  SyntheticSpec s = small_spec();
  s.min_images = 5;
  s.max_images = 2;
  EXPECT_THROW(validate(s), ConfigError);
  s = small_spec();
  s.difficulty = 1.5;
  EXPECT_THROW(validate(s), ConfigError);
}

}  // namespace
}  // namespace ffc::data
