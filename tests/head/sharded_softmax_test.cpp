// The sharded softmax cross-entropy and the fresh-identity top-k at 1, 2 and 4 ranks equal a
// single-process autograd computation over all columns: the objective and dJ/dcos.

#include "head/sharded_softmax.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

#include "support/mpi_env.h"

namespace ffc::head {
namespace {

using test::world;

// Shared problem: cosines of `rows` samples against `cols` classes (same on every rank).
struct Problem {
  at::Tensor cos;           // [rows, cols] in (-1, 1)
  at::Tensor target;        // [rows] global class, -1 for none
  at::Tensor ce_weight;     // [rows]
  at::Tensor fresh_weight;  // [rows]
};

Problem make_problem(int64_t rows, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  Problem p;
  p.cos = at::rand({rows, cols}, at::kDouble) * 1.8 - 0.9;
  p.target = at::randint(cols, {rows}, at::kLong);
  // Some rows are fresh (no class), the rest CE rows with uneven weights.
  const at::Tensor fresh = at::rand({rows}) < 0.3;
  p.target.masked_fill_(fresh, -1);
  p.ce_weight =
      at::where(fresh, at::zeros({rows}, at::kDouble), at::rand({rows}, at::kDouble) + 0.5);
  p.fresh_weight =
      at::where(fresh, at::rand({rows}, at::kDouble) + 0.1, at::zeros({rows}, at::kDouble));
  return p;
}

// Column c lives on rank c % P at local index c / P (the pool's placement).
at::Tensor local_columns(int64_t cols, int rank, int world_size) {
  return at::arange(rank, cols, world_size, at::kLong);
}

// Single-process reference with autograd: J_ce and dJ_ce/dcos over all columns.
std::pair<double, at::Tensor> reference_ce(const Problem& p, const MarginSpec& m) {
  at::Tensor cos = p.cos.clone().set_requires_grad(true);
  const at::Tensor ce_rows = (p.ce_weight > 0).nonzero().squeeze(1);
  at::Tensor c = cos.index_select(0, ce_rows);
  const at::Tensor y = p.target.index_select(0, ce_rows);
  const at::Tensor t = c.gather(1, y.unsqueeze(1));  // target cosines [n, 1]
  at::Tensor z;
  if (m.type == MarginType::kAm) {
    z = t - m.m3;
  } else if (m.type == MarginType::kSv) {
    z = at::where(t > m.m3, t - m.m3, t);
    const at::Tensor hard = c > (t - m.m3);
    c = at::where(hard, c * (1 + m.sv_t) + m.sv_t, c);
  } else {  // ArcFace with the standard guard beyond pi
    const at::Tensor theta = at::acos(t.clamp(-1 + 1e-7, 1 - 1e-7));
    z = at::where(theta + m.m2 <= 3.14159265358979323846, at::cos(theta + m.m2),
                  t - m.m2 * std::sin(m.m2));
  }
  const at::Tensor onehot = at::zeros_like(c, at::kBool).scatter_(1, y.unsqueeze(1), true);
  const at::Tensor logits = at::where(onehot, z.expand_as(c), c) * m.scale;
  const at::Tensor ce = -at::log_softmax(logits, 1).gather(1, y.unsqueeze(1)).squeeze(1);
  const at::Tensor j = (ce * p.ce_weight.index_select(0, ce_rows)).sum();
  j.backward();
  return {j.item<double>(), cos.grad()};
}

std::pair<double, at::Tensor> reference_fresh(const Problem& p, int64_t k) {
  at::Tensor cos = p.cos.clone().set_requires_grad(true);
  const at::Tensor rows = (p.fresh_weight > 0).nonzero().squeeze(1);
  const at::Tensor top = std::get<0>(cos.index_select(0, rows).topk(k, 1));
  const at::Tensor j = (top.clamp_min(0).sum(1) * p.fresh_weight.index_select(0, rows)).sum();
  j.backward();
  return {j.item<double>(), cos.grad()};
}

CeTargets local_targets(const Problem& p, const at::Tensor& cols, int rank, int world_size) {
  CeTargets t;
  // Global class c -> local column c / P on rank c % P.
  t.column = at::where((p.target >= 0).logical_and(p.target.remainder(world_size) == rank),
                       p.target.div(world_size, "floor"), at::full_like(p.target, -1));
  t.weight = p.ce_weight.to(at::kFloat);
  (void)cols;
  return t;
}

// How softmax_ce_ gets the buffer: contiguous (the CPU's fused kernels, head/softmax_kernels.h)
// or a strided view (the ATen operators a device runs), with or without a column scale (the
// buffer then holds cos / scale, and dJ/dcos * scale comes back).
enum class Path { kFused, kAten, kFusedScaled, kAtenScaled };

void check_ce(const MarginSpec& m, int64_t rows, int64_t cols, uint64_t seed,
              Path path = Path::kFused) {
  const int rank = world().rank();
  const int p = world().size();
  const Problem prob = make_problem(rows, cols, seed);
  const at::Tensor mine = local_columns(cols, rank, p);
  const bool scaled = path == Path::kFusedScaled || path == Path::kAtenScaled;
  const at::Tensor col_scale =
      scaled ? at::rand({mine.numel()}, at::kFloat) * 1.5 + 0.5 : at::Tensor();
  at::Tensor local = prob.cos.index_select(1, mine).to(at::kFloat);
  if (scaled) {
    local = local / col_scale.unsqueeze(0);
  }
  at::Tensor cos = local.contiguous();
  if (path == Path::kAten || path == Path::kAtenScaled) {
    cos = local.t().contiguous().t();  // the same values, column-major
  }
  const CeResult r = softmax_ce_(cos, local_targets(prob, mine, rank, p), m, world(), col_scale);
  auto [j, grad] = reference_ce(prob, m);
  at::Tensor want = grad.index_select(1, mine).to(at::kFloat);
  if (scaled) {
    want = want * col_scale.unsqueeze(0);
  }
  const auto label = m.describe() + " path " + std::to_string(static_cast<int>(path)) + ", " +
                     std::to_string(rows) + " x " + std::to_string(cols);
  EXPECT_NEAR(r.loss.item<double>(), j, 1e-4 * std::abs(j)) << label;
  EXPECT_TRUE(at::allclose(cos, want, 1e-4, 1e-5))
      << label << "\nmax diff " << (cos - want).abs().max().item<float>();
}

TEST(ShardedSoftmax, EqualsSingleProcessForEveryMargin) {
  MarginSpec am;
  am.type = MarginType::kAm;
  am.m3 = 0.4;
  am.scale = 32;
  MarginSpec arc;
  arc.type = MarginType::kArc;
  arc.m2 = 0.5;
  arc.m3 = 0;
  arc.scale = 64;
  MarginSpec sv;
  sv.type = MarginType::kSv;
  sv.m3 = 0.3;
  sv.scale = 16;
  for (const MarginSpec& m : {am, arc, sv}) {
    for (Path path : {Path::kFused, Path::kAten, Path::kFusedScaled, Path::kAtenScaled}) {
      check_ce(m, 24, 37, 1, path);  // 37 classes: uneven shards
      check_ce(m, 5, 3, 2, path);    // fewer classes than ranks at 4 ranks: a rank with none
    }
  }
}

// The fused kernels work in chunks of 8192 columns, vectorised 8 at a time: rows longer than a
// chunk (at every rank count), lengths that are not multiples of 8, targets on either side of a
// chunk boundary; the same results with one thread and two.
TEST(ShardedSoftmax, FusedKernelsOverManyChunks) {
  MarginSpec arc;
  arc.type = MarginType::kArc;
  arc.m2 = 0.5;
  arc.m3 = 0;
  arc.scale = 64;
  check_ce(arc, 6, 4 * 8192 + 4 * 1000 + 3, 21, Path::kFused);
  check_ce(arc, 6, 4 * 8192 + 4 * 1000 + 3, 21, Path::kFusedScaled);
  const Problem prob = make_problem(6, 20011, 22);
  const at::Tensor mine = local_columns(20011, world().rank(), world().size());
  at::Tensor results[2];
  const int threads_before = at::get_num_threads();
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    at::Tensor cos = prob.cos.index_select(1, mine).to(at::kFloat).contiguous();
    softmax_ce_(cos, local_targets(prob, mine, world().rank(), world().size()), arc, world());
    results[threads - 1] = cos;
  }
  at::set_num_threads(threads_before);
  EXPECT_TRUE(at::equal(results[0], results[1])) << "the thread count changed the result";
}

TEST(ShardedSoftmax, FreshTopKEqualsSingleProcess) {
  const int rank = world().rank();
  const int p = world().size();
  for (int64_t cols : {1003, 40, 5}) {  // 1003: the vectorised scan (head/softmax_kernels.h)
    for (int64_t k : {1, 3, 5}) {
      const Problem prob = make_problem(30, cols, 10 + k);
      const at::Tensor mine = local_columns(cols, rank, p);
      const at::Tensor cos = prob.cos.index_select(1, mine).to(at::kFloat).contiguous();
      const FreshResult r = fresh_topk(cos, prob.fresh_weight.to(at::kFloat), k, world());
      const auto [j, grad] = reference_fresh(prob, k);
      EXPECT_NEAR(r.loss.item<double>(), j, 1e-4 * std::max(1.0, std::abs(j))) << cols << " " << k;
      // dJ/dcos on this rank: u at the selected entries.
      at::Tensor mine_grad = at::zeros_like(cos);
      const at::Tensor row = at::arange(cos.size(0), at::kLong).unsqueeze(1).expand_as(r.columns);
      mine_grad.index_put_({row, r.columns}, r.weights, true);
      EXPECT_TRUE(at::allclose(mine_grad, grad.index_select(1, mine).to(at::kFloat), 1e-5, 1e-6))
          << cols << " " << k;
    }
  }
}

// Rows without a CE term (FFC's fresh probes) used to keep a row maximum of 0 and were
// exponentiated as exp(s * cos): inf for s * cos > 88.7, then inf * 0 = NaN in the gradient. At
// scale 1024 with cosines up to 0.9 that overflowed; every row now subtracts its real maximum.
TEST(ShardedSoftmax, HighScaleStaysFiniteInRowsWithoutCe) {
  const int rank = world().rank();
  const int p = world().size();
  MarginSpec am;
  am.type = MarginType::kAm;
  am.m3 = 0.4;
  am.scale = 1024;
  const Problem prob = make_problem(24, 37, 11);
  const at::Tensor mine = local_columns(37, rank, p);
  at::Tensor cos = prob.cos.index_select(1, mine).to(at::kFloat).contiguous();
  const CeResult r = softmax_ce_(cos, local_targets(prob, mine, rank, p), am, world());
  EXPECT_TRUE(std::isfinite(r.loss.item<double>()));
  EXPECT_TRUE(at::isfinite(cos).all().item<bool>()) << "dJ/dcos holds NaN or inf";
  const auto [j, grad] = reference_ce(prob, am);
  EXPECT_NEAR(r.loss.item<double>(), j, 1e-4 * std::abs(j));
  EXPECT_TRUE(at::allclose(cos, grad.index_select(1, mine).to(at::kFloat), 1e-3, 1e-4));
}

TEST(ShardedSoftmax, DefaultFreshK) {
  EXPECT_EQ(default_fresh_k(7409), 3);
  EXPECT_EQ(default_fresh_k(20000), 4);
  EXPECT_EQ(default_fresh_k(50000), 10);
  EXPECT_EQ(default_fresh_k(10000000), 10);
}

}  // namespace
}  // namespace ffc::head
