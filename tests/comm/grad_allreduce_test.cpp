// The bucketed gradient all-reduce equals a plain loop of one all-reduce per parameter.

#include "comm/grad_allreduce.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "support/mpi_env.h"

namespace ffc::comm {
namespace {

using test::world;

struct Params {
  std::vector<at::Tensor> all;
};

// Mixed shapes and dtypes, one frozen parameter, one without a gradient on this step.
Params make_params() {
  Params p;
  p.all.push_back(at::zeros({64, 3, 3, 3}).set_requires_grad(true));
  p.all.push_back(at::zeros({64}).set_requires_grad(true));
  p.all.push_back(at::zeros({10}));  // frozen: skipped
  p.all.push_back(at::zeros({128, 64}).set_requires_grad(true));
  p.all.push_back(at::zeros({7}, at::kDouble).set_requires_grad(true));
  p.all.push_back(at::zeros({5, 5}).set_requires_grad(true));  // no grad on odd ranks
  p.all.push_back(at::zeros({3}, at::kDouble).set_requires_grad(true));
  return p;
}

void fill_grads(Params& p, int rank, int step) {
  int k = 0;
  for (auto& t : p.all) {
    ++k;
    if (!t.requires_grad()) {
      continue;
    }
    if (t.numel() == 25 && rank % 2 == 1) {
      t.mutable_grad() = at::Tensor();
      continue;
    }
    // Integer values: the sum is exact whatever order MPI reduces in.
    at::Tensor g = (at::arange(t.numel(), at::kLong) * (k + step) + rank * 5).remainder(13) - 6;
    t.mutable_grad() = g.to(t.scalar_type()).view(t.sizes());
  }
}

TEST(GradientAllReducer, BucketsEqualPlainLoop) {
  for (int64_t bucket_bytes : {int64_t{64}, int64_t{4096}, int64_t{1} << 30}) {
    Params bucketed = make_params();
    Params plain = make_params();
    GradientAllReducer reducer(bucketed.all, bucket_bytes);
    EXPECT_EQ(reducer.num_params(), 6);
    for (int step = 0; step < 3; ++step) {
      fill_grads(bucketed, world().rank(), step);
      fill_grads(plain, world().rank(), step);
      reducer.all_reduce_average(world());
      for (size_t i = 0; i < plain.all.size(); ++i) {
        at::Tensor& t = plain.all[i];
        if (!t.requires_grad()) {
          EXPECT_FALSE(bucketed.all[i].grad().defined());
          continue;
        }
        at::Tensor g = t.grad().defined() ? t.grad().clone() : at::zeros_like(t);
        all_reduce_average(world(), g);
        ASSERT_TRUE(bucketed.all[i].grad().defined()) << "param " << i;
        EXPECT_TRUE(at::equal(bucketed.all[i].grad(), g))
            << "param " << i << " bucket_bytes " << bucket_bytes << " step " << step;
      }
    }
  }
}

TEST(GradientAllReducer, BucketLayout) {
  Params p = make_params();
  // Large buckets: one per run of equal dtype (float, double, float, double).
  GradientAllReducer big(p.all, int64_t{1} << 30);
  EXPECT_EQ(big.num_buckets(), 4);
  EXPECT_EQ(big.bucket_numel(0), 64 * 27 + 64 + 128 * 64);
  // Tiny buckets: one per parameter (a parameter larger than a bucket gets its own).
  GradientAllReducer tiny(p.all, 4);
  EXPECT_EQ(tiny.num_buckets(), 6);
  // 40000 B: the 64x3x3x3 conv (6912 B), its bias (256 B) and the 128x64 linear (32768 B) fit.
  GradientAllReducer mid(p.all, 40000);
  EXPECT_EQ(mid.num_buckets(), 4);
  GradientAllReducer small(p.all, 8000);
  EXPECT_EQ(small.num_buckets(), 5);
}

}  // namespace
}  // namespace ffc::comm
