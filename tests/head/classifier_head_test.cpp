// Model-parallel FC and Partial FC at 1, 2 and 4 ranks against a single-process full softmax:
// loss, feature gradients and weight gradients; Partial FC's sampling and its sparse update.

#include "head/classifier_head.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "support/mpi_env.h"

namespace ffc::head {
namespace {

using test::world;

constexpr int64_t kClasses = 37;  // not divisible by 2 or 4: uneven blocks
constexpr int64_t kDim = 6;
constexpr int64_t kRows = 5;

MarginSpec arcface() {
  MarginSpec m;
  m.type = MarginType::kCombined;
  m.m1 = 1;
  m.m2 = 0.3;
  m.m3 = 0.1;
  m.scale = 16;
  return m;
}

ClassifierOptions options(bool partial, double rate) {
  ClassifierOptions o;
  o.num_classes = kClasses;
  o.dim = kDim;
  o.partial = partial;
  o.sample_rate = rate;
  o.margin = arcface();
  o.seed = 9;
  o.momentum = 0.9;
  o.weight_decay = 0.01;
  return o;
}

at::Tensor features_of(int rank, int step) {
  at::manual_seed(100 + 10 * step + rank);
  return at::randn({kRows, kDim});
}
at::Tensor labels_of(int rank, int step) {
  at::manual_seed(200 + 10 * step + rank);
  return at::randint(kClasses, {kRows}, at::kLong);
}

// The full classifier on one process with autograd.
struct Reference {
  double loss;
  at::Tensor grad_features;  // [P * kRows, D]
  at::Tensor grad_weight;    // [N, D]
};

Reference reference(int world_size, int step) {
  at::Tensor w = at::empty({kClasses, kDim});
  for (int64_t c = 0; c < kClasses; ++c) {
    ClassifierHead::init_row(9, c, w[c].data_ptr<float>(), kDim);
  }
  w = w.to(at::kDouble).set_requires_grad(true);
  std::vector<at::Tensor> fs, ls;
  for (int r = 0; r < world_size; ++r) {
    fs.push_back(features_of(r, step));
    ls.push_back(labels_of(r, step));
  }
  at::Tensor f = at::cat(fs).to(at::kDouble).set_requires_grad(true);
  const at::Tensor y = at::cat(ls).unsqueeze(1);
  const at::Tensor cos = at::mm(f / f.norm(2, 1, true), (w / w.norm(2, 1, true)).t());
  const at::Tensor t = cos.gather(1, y);
  const MarginSpec m = arcface();
  const at::Tensor theta = at::acos(t.clamp(-1 + 1e-7, 1 - 1e-7));
  const at::Tensor z = at::where(theta + m.m2 <= 3.14159265358979323846,
                                 at::cos(theta + m.m2) - m.m3, t - m.m3 - m.m2 * std::sin(m.m2));
  const at::Tensor onehot = at::zeros_like(cos, at::kBool).scatter_(1, y, true);
  const at::Tensor logits = at::where(onehot, z.expand_as(cos), cos) * m.scale;
  const at::Tensor j = -at::log_softmax(logits, 1).gather(1, y).mean();
  j.backward();
  return {j.item<double>(), f.grad(), w.grad()};
}

void check_against_reference(bool partial) {
  const int rank = world().rank();
  const int p = world().size();
  ClassifierHead head(options(partial, 1.0), world());
  const int64_t start = head.class_start();
  EXPECT_EQ(start, ClassifierHead::first_class(kClasses, rank, p));
  at::Tensor f = features_of(rank, 0).set_requires_grad(true);
  ClassifierStats stats;
  const at::Tensor loss = head.forward(f, labels_of(rank, 0), &stats);
  loss.sum().backward();
  const Reference ref = reference(p, 0);
  EXPECT_NEAR(stats.loss.item<double>(), ref.loss, 1e-5 * ref.loss);
  EXPECT_NEAR(loss.item<double>(), ref.loss, 1e-4 * ref.loss);
  EXPECT_TRUE(at::allclose(f.grad().to(at::kDouble),
                           ref.grad_features.narrow(0, rank * kRows, kRows), 1e-4, 1e-6));
  // The weight gradient of the rows this rank scored (all of its block).
  const at::Tensor rows = head.last_rows();
  EXPECT_EQ(rows.numel(), head.num_local());
  EXPECT_TRUE(at::allclose(head.last_weight_grad().to(at::kDouble),
                           ref.grad_weight.narrow(0, start, head.num_local()).index_select(0, rows),
                           1e-4, 1e-6))
      << (head.last_weight_grad().to(at::kDouble) -
          ref.grad_weight.narrow(0, start, head.num_local()))
             .abs()
             .max();
}

TEST(ClassifierHead, FcEqualsSingleProcessSoftmax) {
  check_against_reference(false);
}

TEST(ClassifierHead, PartialFcAtRateOneEqualsFc) {
  check_against_reference(true);
}

TEST(ClassifierHead, PartialFcKeepsPositivesAndSamplesTheRightSize) {
  const int rank = world().rank();
  const int p = world().size();
  ClassifierHead head(options(true, 0.3), world());
  const int64_t local = head.num_local();
  const int64_t start = head.class_start();
  const auto want = static_cast<int64_t>(0.3 * local);
  for (int step = 0; step < 4; ++step) {
    const at::Tensor w_before = head.weight().clone();
    const at::Tensor m_before = head.momentum().clone();
    at::Tensor f = features_of(rank, step).set_requires_grad(true);
    ClassifierStats stats;
    head.forward(f, labels_of(rank, step), &stats).sum().backward();
    // Every class of the gathered batch that falls in this block is scored.
    std::set<int64_t> positives;
    for (int r = 0; r < p; ++r) {
      const at::Tensor l = labels_of(r, step);
      for (int64_t i = 0; i < l.numel(); ++i) {
        const int64_t c = l[i].item<int64_t>() - start;
        if (c >= 0 && c < local) {
          positives.insert(c);
        }
      }
    }
    const at::Tensor rows = head.last_rows();
    const std::vector<int64_t> v(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
    const std::set<int64_t> scored(v.begin(), v.end());
    EXPECT_EQ(scored.size(), v.size());  // no duplicates
    for (int64_t c : positives) {
      EXPECT_TRUE(scored.count(c)) << "positive class " << c << " not sampled";
    }
    EXPECT_EQ(static_cast<int64_t>(v.size()),
              std::max<int64_t>(want, static_cast<int64_t>(positives.size())));
    head.step(0.1);
    // Rows outside the sample, and their momentum, did not move.
    for (int64_t c = 0; c < local; ++c) {
      if (!scored.count(c)) {
        EXPECT_TRUE(at::equal(head.weight()[c], w_before[c])) << "row " << c;
        EXPECT_TRUE(at::equal(head.momentum()[c], m_before[c])) << "row " << c;
      } else {
        EXPECT_FALSE(at::equal(head.weight()[c], w_before[c])) << "row " << c;
      }
    }
  }
}

TEST(ClassifierHead, SparseUpdateEqualsTorchSgdOnTheScoredRows) {
  // One step of the head's SGD on the scored rows equals torch's rule: momentum buffer = grad on
  // the first step, p -= lr * (grad + wd * p) for dampening 0.
  ClassifierHead head(options(true, 0.5), world());
  const at::Tensor before = head.weight().clone();
  at::Tensor f = features_of(world().rank(), 7).set_requires_grad(true);
  head.forward(f, labels_of(world().rank(), 7), nullptr).sum().backward();
  const at::Tensor rows = head.last_rows();
  const at::Tensor g = head.last_weight_grad().clone() + 0.01 * before.index_select(0, rows);
  head.step(0.5);
  EXPECT_TRUE(at::allclose(head.weight().index_select(0, rows),
                           before.index_select(0, rows) - 0.5 * g, 1e-6, 1e-7));
  EXPECT_TRUE(at::allclose(head.momentum().index_select(0, rows), g, 1e-6, 1e-7));
}

}  // namespace
}  // namespace ffc::head
