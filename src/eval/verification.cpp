#include "eval/verification.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>

#include "common/error.h"

namespace ffc::eval {
namespace {

// Accuracy of "same when dist < threshold" over the pairs `idx`.
double accuracy_at(const std::vector<double>& dist, const std::vector<uint8_t>& same,
                   double threshold, const std::vector<int64_t>& idx) {
  int64_t right = 0;
  for (int64_t i : idx) {
    right += (dist[i] < threshold) == (same[i] != 0);
  }
  return idx.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(idx.size());
}

}  // namespace

const std::vector<double>& default_fars() {
  static const std::vector<double> fars = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6};
  return fars;
}

void kfold_accuracy(const std::vector<double>& dist, const std::vector<uint8_t>& same, int folds,
                    double& mean, double& stddev, double& threshold) {
  const auto n = static_cast<int64_t>(dist.size());
  FFC_CHECK(n >= folds && folds >= 2, "verification needs at least " + std::to_string(folds) +
                                          " pairs, got " + std::to_string(n));
  std::vector<double> thresholds;
  for (int k = 0; k < 400; ++k) {
    thresholds.push_back(0.01 * k);
  }
  std::vector<double> accs;
  double threshold_sum = 0;
  int64_t start = 0;
  for (int f = 0; f < folds; ++f) {
    // sklearn KFold: the first n % folds folds get one more element.
    const int64_t size = n / folds + (f < n % folds ? 1 : 0);
    std::vector<int64_t> test, train;
    for (int64_t i = 0; i < n; ++i) {
      (i >= start && i < start + size ? test : train).push_back(i);
    }
    start += size;
    double best = -1;
    double best_t = 0;
    for (double t : thresholds) {
      const double a = accuracy_at(dist, same, t, train);
      if (a > best) {  // the first of equal maxima, as numpy's argmax
        best = a;
        best_t = t;
      }
    }
    accs.push_back(accuracy_at(dist, same, best_t, test));
    threshold_sum += best_t;
  }
  mean = 0;
  for (double a : accs) {
    mean += a;
  }
  mean /= static_cast<double>(accs.size());
  double var = 0;
  for (double a : accs) {
    var += (a - mean) * (a - mean);
  }
  stddev = std::sqrt(var / static_cast<double>(accs.size()));
  threshold = threshold_sum / folds;
}

std::vector<std::pair<double, double>> tar_at_far(const std::vector<double>& scores,
                                                  const std::vector<uint8_t>& same,
                                                  const std::vector<double>& fars) {
  std::vector<double> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) {
    (same[i] ? pos : neg).push_back(scores[i]);
  }
  std::sort(neg.begin(), neg.end(), std::greater<double>());
  std::vector<std::pair<double, double>> out;
  if (pos.empty()) {
    return out;
  }
  for (double far : fars) {
    if (static_cast<double>(neg.size()) * far < 1.0) {
      continue;  // too few negative pairs to measure this FAR
    }
    const auto k = static_cast<size_t>(std::floor(far * static_cast<double>(neg.size())));
    const double threshold = neg[std::min(k, neg.size() - 1)];
    int64_t accepted = 0;
    for (double s : pos) {
      accepted += s > threshold;
    }
    out.emplace_back(far, static_cast<double>(accepted) / static_cast<double>(pos.size()));
  }
  return out;
}

std::vector<RocPoint> roc_curve(const std::vector<double>& scores,
                                const std::vector<uint8_t>& same) {
  FFC_CHECK(scores.size() == same.size(), "roc_curve: scores and labels of different lengths");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  int64_t pos = 0;
  for (uint8_t x : same) {
    pos += x != 0;
  }
  const auto neg = static_cast<int64_t>(same.size()) - pos;
  FFC_CHECK(pos > 0 && neg > 0, "the ROC needs positive and negative pairs (got " +
                                    std::to_string(pos) + " and " + std::to_string(neg) + ")");
  std::vector<RocPoint> roc;
  roc.push_back({0.0, 0.0, std::numeric_limits<double>::infinity()});
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    const double t = scores[order[i]];
    // Every pair scoring exactly t is accepted at threshold t.
    for (; i < order.size() && scores[order[i]] == t; ++i) {
      (same[order[i]] ? tp : fp) += 1;
    }
    roc.push_back({static_cast<double>(fp) / static_cast<double>(neg),
                   static_cast<double>(tp) / static_cast<double>(pos), t});
  }
  return roc;
}

double roc_auc(const std::vector<RocPoint>& roc) {
  double area = 0;
  for (size_t i = 1; i < roc.size(); ++i) {
    area += (roc[i].far - roc[i - 1].far) * (roc[i].tar + roc[i - 1].tar) / 2;
  }
  return area;
}

void write_roc_csv(const std::string& path, const std::vector<RocPoint>& roc) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    throw IoError("cannot write the ROC to '" + path + "'; check that its folder exists");
  }
  std::fprintf(f, "far,tar,threshold\n");
  for (const RocPoint& p : roc) {
    std::fprintf(f, "%.9g,%.9g,%.9g\n", p.far, p.tar, p.threshold);
  }
  if (std::fclose(f) != 0) {
    throw IoError("cannot write the ROC to '" + path + "' (disk full?)");
  }
}

std::vector<double> pair_scores(const at::Tensor& emb_a, const at::Tensor& emb_b) {
  FFC_CHECK(emb_a.sizes() == emb_b.sizes(), "pair_scores: embeddings of different shapes");
  const at::Tensor s = (emb_a.to(at::kDouble) * emb_b.to(at::kDouble)).sum(1).contiguous();
  return std::vector<double>(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
}

VerificationResult verify(const at::Tensor& emb_a, const at::Tensor& emb_b,
                          const std::vector<uint8_t>& same, int folds) {
  FFC_CHECK(emb_a.sizes() == emb_b.sizes() && emb_a.size(0) == static_cast<int64_t>(same.size()),
            "verify: embeddings and labels of different lengths");
  const at::Tensor a = emb_a.to(at::kDouble);
  const at::Tensor b = emb_b.to(at::kDouble);
  const at::Tensor d = (a - b).pow(2).sum(1).contiguous();
  const at::Tensor s = (a * b).sum(1).contiguous();
  std::vector<double> dist(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  std::vector<double> score(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
  VerificationResult r;
  r.pairs = static_cast<int64_t>(same.size());
  for (uint8_t x : same) {
    r.positives += x != 0;
  }
  r.negatives = r.pairs - r.positives;
  kfold_accuracy(dist, same, folds, r.accuracy, r.accuracy_std, r.threshold);
  r.tar_at_far = tar_at_far(score, same, default_fars());
  return r;
}

at::Tensor row_index(const std::vector<int64_t>& rows) {
  return at::tensor(rows, at::TensorOptions().dtype(at::kLong));
}

VerificationResult verify_rows(const at::Tensor& emb, const std::vector<int64_t>& a,
                               const std::vector<int64_t>& b, const std::vector<uint8_t>& same,
                               int folds) {
  FFC_CHECK(a.size() == b.size() && a.size() == same.size(),
            "verify_rows: index lists and labels of different lengths");
  return verify(emb.index_select(0, row_index(a)), emb.index_select(0, row_index(b)), same, folds);
}

}  // namespace ffc::eval
