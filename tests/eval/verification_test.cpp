// Verification metrics on hand-made scores with known answers.

#include "eval/verification.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>

#include "common/error.h"
#include "support/temp_dir.h"

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

TEST(Roc, PointsOnHandMadeScores) {
  // Positives 0.9 and 0.7; negatives 0.8, 0.7 (a tie with a positive) and 0.1.
  const std::vector<double> scores = {0.9, 0.8, 0.7, 0.7, 0.1};
  const std::vector<uint8_t> same = {1, 0, 1, 0, 0};
  const std::vector<RocPoint> roc = roc_curve(scores, same);
  ASSERT_EQ(roc.size(), 5u);
  EXPECT_EQ(roc[0].far, 0.0);
  EXPECT_EQ(roc[0].tar, 0.0);
  EXPECT_EQ(roc[0].threshold, std::numeric_limits<double>::infinity());
  const double want[4][3] = {
      {0.0, 0.5, 0.9}, {1.0 / 3, 0.5, 0.8}, {2.0 / 3, 1.0, 0.7}, {1.0, 1.0, 0.1}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(roc[i + 1].far, want[i][0]) << "point " << i + 1;
    EXPECT_DOUBLE_EQ(roc[i + 1].tar, want[i][1]) << "point " << i + 1;
    EXPECT_DOUBLE_EQ(roc[i + 1].threshold, want[i][2]) << "point " << i + 1;
  }
  // The Mann-Whitney statistic: 4.5 of 6 (positive, negative) orderings right, the tie half.
  EXPECT_NEAR(roc_auc(roc), 0.75, 1e-12);
}

TEST(Roc, PerfectAndNeedsBothClasses) {
  const std::vector<RocPoint> roc = roc_curve({0.9, 0.8, 0.2, 0.1}, {1, 1, 0, 0});
  EXPECT_DOUBLE_EQ(roc_auc(roc), 1.0);
  EXPECT_THROW(roc_curve({0.9, 0.8}, {1, 1}), Error);
}

TEST(Roc, AgreesWithTarAtFar) {
  // 1000 negatives 0.000 ... 0.999 and positives spread over [0.5, 1): at FAR 1e-2 the ROC point
  // with 10 accepted negatives has the TAR of tar_at_far.
  std::vector<double> scores;
  std::vector<uint8_t> same;
  for (int i = 0; i < 1000; ++i) {
    scores.push_back(i / 1000.0);
    same.push_back(0);
  }
  for (int i = 0; i < 200; ++i) {
    scores.push_back(0.5 + i / 400.0 + 0.0001);
    same.push_back(1);
  }
  const auto tar = tar_at_far(scores, same, {1e-2});
  ASSERT_EQ(tar.size(), 1u);
  const std::vector<RocPoint> roc = roc_curve(scores, same);
  // One point has FAR 0.01 (threshold 0.990, no positive in (0.989, 0.990]): it accepts what
  // tar_at_far accepts above the 11th largest negative.
  int found = 0;
  for (const RocPoint& p : roc) {
    if (std::abs(p.far - 0.010) < 1e-12) {
      ++found;
      EXPECT_DOUBLE_EQ(p.tar, tar[0].second);
      EXPECT_DOUBLE_EQ(p.threshold, 0.990);
    }
  }
  EXPECT_EQ(found, 1);
}

TEST(Roc, CsvFile) {
  test::TempDir dir;
  const std::string path = dir.file("roc.csv");
  write_roc_csv(path, roc_curve({0.9, 0.1}, {1, 0}));
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "far,tar,threshold");
  EXPECT_EQ(lines[1], "0,0,inf");
  EXPECT_EQ(lines[2], "0,1,0.9");
  EXPECT_EQ(lines[3], "1,1,0.1");
  EXPECT_THROW(write_roc_csv(dir.file("no/such/folder/roc.csv"), {}), IoError);
}

TEST(Verification, RowsAndScores) {
  at::Tensor emb = at::zeros({4, 2});
  emb[0][0] = 1;
  emb[1][0] = 1;
  emb[2][1] = 1;
  emb[3][0] = -1;
  const std::vector<double> s = pair_scores(emb.narrow(0, 0, 2), emb.narrow(0, 2, 2));
  ASSERT_EQ(s.size(), 2u);
  EXPECT_DOUBLE_EQ(s[0], 0.0);
  EXPECT_DOUBLE_EQ(s[1], -1.0);
  // 10 pairs by row index: genuine (0, 1) at distance 0, impostor (0, 3) at distance 4.
  std::vector<int64_t> a, b;
  std::vector<uint8_t> same;
  for (int i = 0; i < 10; ++i) {
    a.push_back(0);
    b.push_back(i % 2 == 0 ? 1 : 3);
    same.push_back(i % 2 == 0);
  }
  const VerificationResult r = verify_rows(emb, a, b, same);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_EQ(r.pairs, 10);
}

}  // namespace
}  // namespace ffc::eval
