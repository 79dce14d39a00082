// FFC's head at 1, 2 and 4 ranks, sharded and replicated, equals a single-process computation of
// the authors' algorithm (replicated pool, per-rank losses averaged) over several steps: loss,
// backbone gradients, pool rows, toggles and LRU order. The reference below is written from the
// method description with its own LRU and autograd, sharing no code with the head.

#include "head/ffc_head.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <list>
#include <map>

#include "common/error.h"
#include "support/mpi_env.h"

namespace ffc::head {
namespace {

using test::world;

constexpr int64_t kDim = 8;
constexpr int64_t kIn = 5;
constexpr int64_t kRows = 6;  // probes and gallery images per rank and pass
constexpr int64_t kLabels = 70;
constexpr double kMargin = 0.35;
constexpr double kScale = 16;
constexpr int64_t kTopK = 3;

// ---------------------------------------------------------------- the reference

struct RefPool {
  int64_t q;
  std::map<int64_t, int64_t> slot_of;  // label -> slot
  std::list<int64_t> lru;              // labels, most recent first
  std::vector<int64_t> label_of;
  std::vector<int> toggle;
  at::Tensor rows;  // [q, 2, D]
  int64_t filled = 0;

  explicit RefPool(int64_t capacity)
      : q(capacity),
        label_of(capacity, -1),
        toggle(capacity, 0),
        rows(at::zeros({capacity, 2, kDim}, at::kDouble)) {}

  // The authors' insertion; returns the refreshed slots.
  std::vector<bool> insert(const at::Tensor& labels, const at::Tensor& feats) {
    std::vector<bool> refreshed(q, false);
    for (int64_t i = 0; i < labels.numel(); ++i) {
      const int64_t label = labels[i].item<int64_t>();
      auto it = slot_of.find(label);
      int64_t slot;
      int row;
      if (it == slot_of.end()) {
        if (filled < q) {
          slot = filled++;
        } else {
          const int64_t victim = lru.back();
          lru.pop_back();
          slot = slot_of[victim];
          slot_of.erase(victim);
        }
        slot_of[label] = slot;
        label_of[slot] = label;
        lru.push_front(label);
        row = 0;
        toggle[slot] = 1;
      } else {
        slot = it->second;
        lru.remove(label);
        lru.push_front(label);
        row = toggle[slot];
        toggle[slot] ^= 1;
        refreshed[slot] = true;
      }
      rows[slot][row].copy_(feats[i]);
    }
    return refreshed;
  }
};

// M(cos) of one rank's probes: CE over positives (mean) + fresh top-k term (mean).
at::Tensor ref_margin_loss(const at::Tensor& cos, const std::vector<int64_t>& slots) {
  std::vector<int64_t> pos, out, target;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] >= 0) {
      pos.push_back(static_cast<int64_t>(i));
      target.push_back(slots[i]);
    } else {
      out.push_back(static_cast<int64_t>(i));
    }
  }
  at::Tensor loss = at::zeros({}, at::kDouble);
  if (!pos.empty()) {
    const at::Tensor c = cos.index_select(0, at::tensor(pos, at::kLong));
    const at::Tensor y = at::tensor(target, at::kLong).unsqueeze(1);
    const at::Tensor onehot = at::zeros_like(c, at::kBool).scatter_(1, y, true);
    const at::Tensor logits = at::where(onehot, c - kMargin, c) * kScale;  // AM
    loss = loss - at::log_softmax(logits, 1).gather(1, y).mean();
  }
  if (!out.empty() && cos.size(1) > 0) {
    const int64_t k = std::min<int64_t>(kTopK, cos.size(1));
    const at::Tensor top = std::get<0>(cos.index_select(0, at::tensor(out, at::kLong)).topk(k, 1));
    loss = loss + top.clamp_min(0).sum() / static_cast<double>(out.size() * kTopK);
  }
  return loss;
}

// One pass over all ranks' data: J = mean over ranks of M(cos1) + M(cos2).
at::Tensor ref_pass(RefPool& pool, const std::vector<at::Tensor>& probes,
                    const std::vector<at::Tensor>& probe_labels, const at::Tensor& gallery,
                    const at::Tensor& gallery_labels) {
  const std::vector<bool> refreshed = pool.insert(gallery_labels, gallery);
  const int64_t n = pool.filled;
  const at::Tensor w1 = pool.rows.narrow(0, 0, n).select(1, 0).clone();
  at::Tensor w2 = w1.clone();
  for (int64_t s = 0; s < n; ++s) {
    if (refreshed[s]) {
      w2[s].copy_(pool.rows[s][1]);
    }
  }
  at::Tensor j = at::zeros({}, at::kDouble);
  for (size_t r = 0; r < probes.size(); ++r) {
    std::vector<int64_t> slots;
    for (int64_t i = 0; i < probe_labels[r].numel(); ++i) {
      const auto it = pool.slot_of.find(probe_labels[r][i].item<int64_t>());
      slots.push_back(it == pool.slot_of.end() ? -1 : it->second);
    }
    j = j + ref_margin_loss(at::mm(probes[r], w1.t()), slots) +
        ref_margin_loss(at::mm(probes[r], w2.t()), slots);
  }
  return j / static_cast<double>(probes.size());
}

// ---------------------------------------------------------------- shared data

at::Tensor normalize_rows(const at::Tensor& x) {
  return x / x.norm(2, 1, true);
}

struct StepData {
  std::vector<at::Tensor> x[2];       // probe inputs per rank, pass A and B
  std::vector<at::Tensor> labels[2];  // probe labels
  std::vector<at::Tensor> g[2];       // gallery features
  std::vector<at::Tensor> gl[2];      // gallery labels
};

StepData make_step(int step, int world_size) {
  StepData d;
  for (int pass = 0; pass < 2; ++pass) {
    for (int r = 0; r < world_size; ++r) {
      at::manual_seed(1000 * step + 10 * r + pass);
      d.gl[pass].push_back(at::randint(kLabels, {kRows}, at::kLong));
      d.g[pass].push_back(normalize_rows(at::randn({kRows, kDim}, at::kDouble)));
      // Half of the probes share the other pass's gallery identities (FFC's identity part).
      at::Tensor l = at::randint(kLabels, {kRows}, at::kLong);
      d.labels[pass].push_back(l);
      d.x[pass].push_back(at::randn({kRows, kIn}, at::kDouble));
    }
  }
  for (int r = 0; r < world_size; ++r) {
    for (int64_t i = 0; i < kRows / 2; ++i) {
      d.labels[0][r][i] = d.gl[0][r][i].item<int64_t>();
      d.labels[1][r][i] = d.gl[1][r][i].item<int64_t>();
    }
  }
  return d;
}

void run_equality(Placement placement, int64_t pool_size, int steps) {
  const int p = world().size();
  const int rank = world().rank();
  at::manual_seed(42);
  const at::Tensor w_init = at::randn({kDim, kIn}, at::kDouble) * 0.5;
  at::Tensor w = w_init.to(at::kFloat).clone().set_requires_grad(true);  // ours, float
  at::Tensor w_ref = w_init.clone().set_requires_grad(true);             // reference, double

  FfcHeadOptions o;
  o.pool_size = pool_size;
  o.dim = kDim;
  o.placement = placement;
  o.fresh_k = kTopK;
  o.margin.type = MarginType::kAm;
  o.margin.m1 = 1;
  o.margin.m2 = 0;
  o.margin.m3 = kMargin;
  o.margin.scale = kScale;
  FfcHead head(o, world());
  RefPool ref(pool_size);

  for (int step = 0; step < steps; ++step) {
    const StepData d = make_step(step, p);
    // Ours: this rank's data only.
    at::Tensor total = at::zeros({}, at::kFloat);
    for (int pass = 0; pass < 2; ++pass) {
      const at::Tensor probe = normalize_rows(at::mm(d.x[pass][rank].to(at::kFloat), w.t()));
      FfcPassStats stats;
      const at::Tensor parts =
          head.pass(probe, d.labels[pass][rank], d.g[pass][rank].to(at::kFloat), d.gl[pass][rank],
                    /*rollback=*/pass == 0, &stats);
      total = total + parts.sum();
    }
    if (w.grad().defined()) {
      w.mutable_grad().zero_();
    }
    total.backward();
    at::Tensor grad = w.grad().clone();
    world().all_reduce(grad, comm::ReduceOp::kSum);
    double loss = total.item<double>();
    if (placement == Placement::kReplicated) {  // each rank holds its share of J
      loss = comm::all_reduce_scalar(world(), loss, comm::ReduceOp::kSum);
    }

    // Reference: every rank's data, one replicated pool, pass A rolled back by a full copy.
    std::vector<at::Tensor> pa, pb;
    for (int r = 0; r < p; ++r) {
      pa.push_back(normalize_rows(at::mm(d.x[0][r], w_ref.t())));
      pb.push_back(normalize_rows(at::mm(d.x[1][r], w_ref.t())));
    }
    RefPool saved = ref;
    saved.rows = ref.rows.clone();
    const at::Tensor ja = ref_pass(ref, pa, d.labels[0], at::cat(d.g[0]), at::cat(d.gl[0]));
    ref = saved;
    const at::Tensor jb = ref_pass(ref, pb, d.labels[1], at::cat(d.g[1]), at::cat(d.gl[1]));
    const at::Tensor j = ja + jb;
    if (w_ref.grad().defined()) {
      w_ref.mutable_grad().zero_();
    }
    j.backward();

    EXPECT_NEAR(loss, j.item<double>(), 1e-4 * std::max(1.0, std::abs(j.item<double>())))
        << "step " << step;
    EXPECT_TRUE(at::allclose(grad.to(at::kDouble), w_ref.grad(), 1e-4, 1e-5))
        << "step " << step << " max diff "
        << (grad.to(at::kDouble) - w_ref.grad()).abs().max().item<double>();
    // Pool: metadata everywhere, rows of the slots this rank stores.
    const DynamicPool& pool = head.pool();
    ASSERT_EQ(pool.filled(), ref.filled) << "step " << step;
    EXPECT_EQ(pool.lru_order(), std::vector<int64_t>(ref.lru.begin(), ref.lru.end()))
        << "step " << step;
    for (int64_t s = 0; s < pool_size; ++s) {
      EXPECT_EQ(pool.slot_label(s), ref.label_of[s]) << "slot " << s;
      EXPECT_EQ(static_cast<int>(pool.toggle(s)), ref.toggle[s]) << "slot " << s;
      if (pool.stores(s)) {
        EXPECT_TRUE(
            at::allclose(pool.rows()[pool.local_index(s)].to(at::kDouble), ref.rows[s], 1e-6, 1e-6))
            << "slot " << s << " step " << step;
      }
    }
    // The next step starts from the same weights on both sides.
    {
      at::NoGradGuard no_grad;
      w.sub_(grad * 0.5);
      w_ref.sub_(w_ref.grad() * 0.5);
    }
  }
}

TEST(FfcHead, ShardedEqualsSingleProcessReference) {
  // 32 slots and 70 labels: the pool fills within the first steps, then evicts.
  run_equality(Placement::kSharded, 32, 6);
}

TEST(FfcHead, ReplicatedEqualsSingleProcessReference) {
  run_equality(Placement::kReplicated, 32, 4);
}

TEST(FfcHead, PoolSmallerThanTheGalleryBatchIsAConfigError) {
  EXPECT_THROW(check_pool_size(100, 96, 2), ConfigError);
  try {
    check_pool_size(100, 96, 2);
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pool_size >= 192"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_pool_size(192, 96, 2));
}

}  // namespace
}  // namespace ffc::head
