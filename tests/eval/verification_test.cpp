// Verification metrics on hand-made scores with known answers.

#include "eval/verification.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace ffc::eval {
namespace {

TEST(Verification, PerfectSeparationAndKnownThreshold) {
  // Genuine pairs at distance 0.5, impostors at 2.0: every fold picks a threshold in (0.5, 2.0].
  std::vector<double> dist;
  std::vector<uint8_t> same;
  for (int i = 0; i < 100; ++i) {
    same.push_back(i % 2 == 0);
    dist.push_back(i % 2 == 0 ? 0.5 : 2.0);
  }
  double mean = 0, sd = 0, t = 0;
  kfold_accuracy(dist, same, 10, mean, sd, t);
  EXPECT_DOUBLE_EQ(mean, 1.0);
  EXPECT_DOUBLE_EQ(sd, 0.0);
  EXPECT_NEAR(t, 0.51, 1e-9);  // the first threshold that separates (0.50 is not < 0.5)
}

TEST(Verification, KnownAccuracyPerFold) {
  // 20 pairs, folds of 2. Fold 0 holds one pair that no threshold can get right (a genuine pair
  // far away); all other pairs are separable at thresholds in (0.3, 1.5].
  std::vector<double> dist;
  std::vector<uint8_t> same;
  for (int i = 0; i < 20; ++i) {
    same.push_back(i % 2 == 0);
    dist.push_back(i % 2 == 0 ? 0.3 : 1.5);
  }
  dist[0] = 3.0;  // genuine, but far
  double mean = 0, sd = 0, t = 0;
  kfold_accuracy(dist, same, 10, mean, sd, t);
  // Fold 0: 1 of 2 right; folds 1-9: 2 of 2. Mean 0.95, population std sqrt(0.0225) = 0.15.
  EXPECT_NEAR(mean, 0.95, 1e-12);
  EXPECT_NEAR(sd, 0.15, 1e-12);
}

TEST(Verification, UnevenFoldsLikeSklearn) {
  // 23 pairs: the first 3 folds have 3 pairs, the others 2 (sklearn KFold). A wrong pair at
  // index 2 lands in fold 0 (3 pairs) -> that fold scores 2/3.
  std::vector<double> dist(23, 0.2);
  std::vector<uint8_t> same(23, 1);
  for (int i = 1; i < 23; i += 2) {
    same[i] = 0;
    dist[i] = 1.8;
  }
  dist[2] = 3.5;  // genuine, unreachable
  double mean = 0, sd = 0, t = 0;
  kfold_accuracy(dist, same, 10, mean, sd, t);
  EXPECT_NEAR(mean, (2.0 / 3.0 + 9.0) / 10.0, 1e-12);
}

TEST(Verification, TarAtFar) {
  // 1000 negatives with scores 0.000, 0.001, ..., 0.999; positives at 0.995, 0.5 and 0.9985.
  std::vector<double> scores;
  std::vector<uint8_t> same;
  for (int i = 0; i < 1000; ++i) {
    scores.push_back(i / 1000.0);
    same.push_back(0);
  }
  for (double p : {0.995, 0.5, 0.9985}) {
    scores.push_back(p);
    same.push_back(1);
  }
  const auto r = tar_at_far(scores, same, {1e-1, 1e-2, 1e-3, 1e-4});
  ASSERT_EQ(r.size(), 3u);  // 1e-4 needs 10,000 negatives
  // FAR 1e-1: threshold is the 101st largest negative, 0.899: two positives above.
  EXPECT_NEAR(r[0].second, 2.0 / 3.0, 1e-12);
  // FAR 1e-2: 11th largest = 0.989: 0.995 and 0.9985 pass.
  EXPECT_NEAR(r[1].second, 2.0 / 3.0, 1e-12);
  // FAR 1e-3: 2nd largest = 0.998: only 0.9985.
  EXPECT_NEAR(r[2].second, 1.0 / 3.0, 1e-12);
}

TEST(Verification, FromEmbeddings) {
  // Unit vectors: genuine pairs identical, impostors orthogonal.
  const int n = 40;
  at::Tensor a = at::zeros({n, 4});
  at::Tensor b = at::zeros({n, 4});
  std::vector<uint8_t> same;
  for (int i = 0; i < n; ++i) {
    a[i][i % 4] = 1;
    b[i][i % 2 == 0 ? i % 4 : (i + 1) % 4] = 1;
    same.push_back(i % 2 == 0);
  }
  const VerificationResult r = verify(a, b, same);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_EQ(r.positives, 20);
  EXPECT_EQ(r.negatives, 20);
  ASSERT_FALSE(r.tar_at_far.empty());
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].second, 1.0);
}

}  // namespace
}  // namespace ffc::eval
