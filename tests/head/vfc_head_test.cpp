// Virtual FC: identity -> row mapping, overwrite by the detached feature sums, collisions taking
// the lowest free rows, and their restoration at the next step.

#include "head/vfc_head.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/error.h"

namespace ffc::head {
namespace {

VfcOptions small() {
  VfcOptions o;
  o.rows = 10;
  o.dim = 4;
  o.margin.type = MarginType::kArc;
  o.margin.m2 = 0.5;
  o.margin.scale = 32;
  o.seed = 1;
  return o;
}

TEST(VfcHead, RowsAreOverwrittenByFeatureSums) {
  auto comm = comm::make_single_process_communicator();
  VfcHead head(small(), *comm);
  const at::Tensor init = head.weight().detach().clone();
  // Labels 3, 13, 3, 7: 3 and 13 share home row 3; 13 (the larger label) borrows row 0.
  const at::Tensor f = at::randn({4, 4});
  const at::Tensor labels = at::tensor({3, 13, 3, 7}, at::kLong);
  VfcStats stats;
  head.forward(f.clone().set_requires_grad(true), labels, &stats);
  EXPECT_EQ(stats.identities, 3);
  EXPECT_EQ(stats.collisions, 1);
  const at::Tensor w = head.weight().detach();
  EXPECT_TRUE(at::allclose(w[3], f[0] + f[2]));  // the sum of identity 3's features
  EXPECT_TRUE(at::allclose(w[0], f[1]));         // 13 borrowed row 0
  EXPECT_TRUE(at::allclose(w[7], f[3]));
  EXPECT_TRUE(at::equal(w[5], init[5]));  // rows no identity used are untouched
  EXPECT_EQ(head.borrowed_rows(), std::vector<int64_t>{0});

  // Next step: row 0 gets its old value back before anything else; row 3 keeps the sum (its
  // identity is not in this batch).
  const at::Tensor g = at::randn({2, 4});
  head.forward(g.clone().set_requires_grad(true), at::tensor({5, 8}, at::kLong), &stats);
  const at::Tensor w2 = head.weight().detach();
  EXPECT_TRUE(at::equal(w2[0], init[0]));
  EXPECT_TRUE(at::allclose(w2[3], f[0] + f[2]));
  EXPECT_TRUE(at::allclose(w2[5], g[0]));
  EXPECT_TRUE(head.borrowed_rows().empty());
}

TEST(VfcHead, GradientsReachFeaturesAndEveryRow) {
  auto comm = comm::make_single_process_communicator();
  VfcHead head(small(), *comm);
  at::Tensor f = at::randn({3, 4}).set_requires_grad(true);
  const at::Tensor loss = head.forward(f, at::tensor({1, 2, 1}, at::kLong), nullptr);
  loss.backward();
  ASSERT_TRUE(f.grad().defined());
  EXPECT_GT(f.grad().abs().sum().item<float>(), 0);
  // All M rows are in the softmax: even rows of no identity get a gradient (as negatives).
  const at::Tensor gw = head.weight().grad();
  for (int64_t r = 0; r < 10; ++r) {
    EXPECT_GT(gw[r].abs().sum().item<float>(), 0) << "row " << r;
  }
}

TEST(VfcHead, TooManyIdentitiesForTheRowsIsAnError) {
  auto comm = comm::make_single_process_communicator();
  VfcOptions o = small();
  o.rows = 2;
  VfcHead head(o, *comm);
  EXPECT_THROW(head.forward(at::randn({3, 4}), at::tensor({0, 1, 2}, at::kLong), nullptr), Error);
}

}  // namespace
}  // namespace ffc::head
