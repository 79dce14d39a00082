#pragma once
// Face verification metrics, computed as insightface's eval/verification.py does (docs/eval.md):
// L2-normalised embeddings, squared Euclidean distance, thresholds 0, 0.01, ..., 3.99, 10 folds
// in order (sklearn's KFold without shuffling), the best threshold of 9 folds applied to the
// 10th; accuracy mean and (population) standard deviation over folds. Plus TAR at FAR from the
// cosine similarities, where there are enough negative pairs.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ffc::eval {

struct VerificationResult {
  double accuracy = 0;
  double accuracy_std = 0;
  double threshold = 0;  // mean over folds of the chosen distance threshold
  int64_t pairs = 0;
  int64_t positives = 0;
  int64_t negatives = 0;
  std::vector<std::pair<double, double>> tar_at_far;  // (FAR, TAR)
};

// emb_a[i] and emb_b[i] form pair i (L2-normalised rows); same[i] != 0 for a genuine pair.
VerificationResult verify(const at::Tensor& emb_a, const at::Tensor& emb_b,
                          const std::vector<uint8_t>& same, int folds = 10);

// Pairs given as row indices into one embedding matrix: pair i is (emb[a[i]], emb[b[i]]).
VerificationResult verify_rows(const at::Tensor& emb, const std::vector<int64_t>& a,
                               const std::vector<int64_t>& b, const std::vector<uint8_t>& same,
                               int folds = 10);

// Row indices of one embedding matrix as an index tensor, for index_select.
at::Tensor row_index(const std::vector<int64_t>& rows);

// Accuracy of the 10-fold protocol from precomputed squared distances.
void kfold_accuracy(const std::vector<double>& dist, const std::vector<uint8_t>& same, int folds,
                    double& mean, double& stddev, double& threshold);

// TAR at each FAR of `fars` for which there are at least 1/FAR negative pairs. Scores: higher
// means more similar. The threshold is the (floor(FAR * negatives) + 1)-th largest negative
// score; a pair is accepted above it.
std::vector<std::pair<double, double>> tar_at_far(const std::vector<double>& scores,
                                                  const std::vector<uint8_t>& same,
                                                  const std::vector<double>& fars);

// The FARs reported by default: 1e-1 ... 1e-6.
const std::vector<double>& default_fars();

// One point of the ROC: a pair is accepted when its score >= threshold; far = accepted
// negatives / negatives, tar = accepted positives / positives.
struct RocPoint {
  double far = 0;
  double tar = 0;
  double threshold = 0;
};

// The ROC over every distinct score, thresholds descending: the first point is (0, 0, +inf)
// (nothing accepted), then one point per distinct score, the last (1, 1, lowest score). Throws
// when there are no positive or no negative pairs.
std::vector<RocPoint> roc_curve(const std::vector<double>& scores,
                                const std::vector<uint8_t>& same);

// Area under the ROC (trapezoids between the points).
double roc_auc(const std::vector<RocPoint>& roc);

// Writes "far,tar,threshold" and one line per point (docs/eval.md). Throws IoError.
void write_roc_csv(const std::string& path, const std::vector<RocPoint>& roc);

// Cosine similarities (row-wise dot products) of two sets of L2-normalised rows, in float64.
std::vector<double> pair_scores(const at::Tensor& emb_a, const at::Tensor& emb_b);

}  // namespace ffc::eval
