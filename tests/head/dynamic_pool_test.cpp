// The dynamic class pool: LRU insertion, refresh and eviction order, rows and toggles, duplicates,
// exact rollback, sharded rows, and the label map.

#include "head/dynamic_pool.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "common/error.h"

namespace ffc::head {
namespace {

// Feature rows whose first element identifies them: row k is (k+1, 0, 0, ...).
at::Tensor marked(int64_t n, int64_t dim, int64_t base = 0) {
  at::Tensor f = at::zeros({n, dim});
  for (int64_t i = 0; i < n; ++i) {
    f[i][0] = static_cast<float>(base + i + 1);
  }
  return f;
}

at::Tensor labels(std::vector<int64_t> v) {
  return at::tensor(v, at::kLong);
}

float row_mark(const DynamicPool& p, int64_t slot, int row) {
  return p.rows()[p.local_index(slot)][row][0].item<float>();
}

TEST(DynamicPool, AuthorsLruExample) {
  // Q = 3: 10, 11, 12 fill slots 0, 1, 2; 13 evicts 10 (least recent) and takes slot 0; a hit on
  // 11 makes it most recent; 10 is gone.
  DynamicPool p(3, 4, 0, 1, Placement::kReplicated, false, 0);
  std::vector<int64_t> refreshed;
  p.insert(labels({10, 11, 12}), marked(3, 4), false, refreshed);
  EXPECT_EQ(p.lookup(10), 0);
  EXPECT_EQ(p.lookup(12), 2);
  const InsertStats s = p.insert(labels({13}), marked(1, 4), false, refreshed);
  EXPECT_EQ(s.evicted, 1);
  EXPECT_EQ(p.lookup(13), 0);
  EXPECT_EQ(p.lookup(10), -1);
  p.insert(labels({11}), marked(1, 4), false, refreshed);
  EXPECT_EQ(p.lookup(11), 1);
  EXPECT_EQ(p.lru_order(), (std::vector<int64_t>{11, 13, 12}));
  EXPECT_EQ(refreshed, (std::vector<int64_t>{1}));
}

TEST(DynamicPool, RowsTogglesAndDuplicates) {
  // The authors' worked example: [5, 6, 5] writes (5: row 0), (6: row 0), (5: row 1).
  DynamicPool p(4, 2, 0, 1, Placement::kReplicated, false, 0);
  std::vector<int64_t> refreshed;
  p.insert(labels({5, 6, 5}), marked(3, 2), false, refreshed);
  EXPECT_EQ(row_mark(p, 0, 0), 1);
  EXPECT_EQ(row_mark(p, 1, 0), 2);
  EXPECT_EQ(row_mark(p, 0, 1), 3);
  EXPECT_EQ(p.toggle(0), 0);  // 5 written twice: next hit writes row 0
  EXPECT_EQ(p.toggle(1), 1);
  EXPECT_EQ(refreshed, (std::vector<int64_t>{0}));
  // [5, 7, 5, 5]: 5 -> row 0, 7 -> new slot 2 row 0, 5 -> row 1, 5 -> row 0 again: the last
  // write of (slot 0, row 0) wins.
  p.insert(labels({5, 7, 5, 5}), marked(4, 2, 10), false, refreshed);
  EXPECT_EQ(row_mark(p, 0, 0), 14);
  EXPECT_EQ(row_mark(p, 0, 1), 13);
  EXPECT_EQ(row_mark(p, 2, 0), 12);
  EXPECT_EQ(p.toggle(0), 1);
  EXPECT_EQ(p.filled(), 3);
  EXPECT_EQ(p.local_valid(), 3);
}

struct State {
  std::vector<int64_t> lru;
  std::vector<int64_t> slot_labels;
  std::vector<uint8_t> toggles;
  at::Tensor rows;
  int64_t filled;
};

State snapshot(const DynamicPool& p) {
  State s;
  s.lru = p.lru_order();
  for (int64_t k = 0; k < p.capacity(); ++k) {
    s.slot_labels.push_back(p.slot_label(k));
    s.toggles.push_back(p.toggle(k));
  }
  s.rows = p.rows().clone();
  s.filled = p.filled();
  return s;
}

void expect_same(const State& a, const State& b) {
  EXPECT_EQ(a.lru, b.lru);
  EXPECT_EQ(a.slot_labels, b.slot_labels);
  EXPECT_EQ(a.toggles, b.toggles);
  EXPECT_EQ(a.filled, b.filled);
  EXPECT_TRUE(at::equal(a.rows, b.rows));
}

TEST(DynamicPool, RollbackRestoresTheExactPriorState) {
  std::mt19937_64 rng(7);
  for (int world : {1, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      DynamicPool p(16, 3, rank, world, world > 1 ? Placement::kSharded : Placement::kReplicated,
                    false, 0);
      std::vector<int64_t> refreshed;
      for (int step = 0; step < 200; ++step) {
        const int64_t n = 1 + static_cast<int64_t>(rng() % 16);
        std::vector<int64_t> l(n);
        for (auto& x : l) {
          x = static_cast<int64_t>(rng() % 40);  // many hits, evictions and duplicates
        }
        const at::Tensor feats = at::randn({n, 3});
        const State before = snapshot(p);
        p.insert(labels(l), feats, true, refreshed);
        p.rollback();
        expect_same(before, snapshot(p));
        // Then a permanent insert moves on.
        p.insert(labels(l), feats, false, refreshed);
      }
    }
  }
}

TEST(DynamicPool, ShardedRowsRotateOverRanks) {
  // Three ranks, each storing slots s with s mod 3 == rank, fed the same batches: together they
  // hold exactly the rows of one replicated pool.
  const int world = 3;
  DynamicPool full(10, 2, 0, 1, Placement::kReplicated, false, 0);
  std::vector<DynamicPool> shards;
  for (int r = 0; r < world; ++r) {
    shards.emplace_back(10, 2, r, world, Placement::kSharded, false, 0);
  }
  EXPECT_EQ(shards[0].local_slots(), 4);  // slots 0, 3, 6, 9
  EXPECT_EQ(shards[2].local_slots(), 3);  // slots 2, 5, 8
  std::vector<int64_t> refreshed;
  std::mt19937_64 rng(3);
  for (int step = 0; step < 30; ++step) {
    std::vector<int64_t> l(6);
    for (auto& x : l) {
      x = static_cast<int64_t>(rng() % 25);
    }
    const at::Tensor f = at::randn({6, 2});
    full.insert(labels(l), f, false, refreshed);
    for (auto& s : shards) {
      s.insert(labels(l), f, false, refreshed);
    }
    for (int64_t slot = 0; slot < 10; ++slot) {
      const DynamicPool& owner = shards[slot % world];
      ASSERT_TRUE(owner.stores(slot));
      EXPECT_TRUE(at::equal(owner.rows()[owner.local_index(slot)], full.rows()[slot]));
    }
    EXPECT_EQ(shards[1].lru_order(), full.lru_order());
  }
  // Filled slots form a prefix: local_valid counts this rank's part of it.
  DynamicPool fresh(10, 2, 1, world, Placement::kSharded, false, 0);
  fresh.insert(labels({1, 2, 3, 4, 5}), at::zeros({5, 2}), false, refreshed);  // slots 0..4
  EXPECT_EQ(fresh.local_valid(), 2);                                           // slots 1 and 4
}

TEST(DynamicPool, RestoreMetadataRoundTrip) {
  DynamicPool p(8, 2, 0, 1, Placement::kReplicated, false, 0);
  std::vector<int64_t> refreshed;
  p.insert(labels({3, 9, 3, 4, 12, 9}), at::randn({6, 2}), false, refreshed);
  const State s = snapshot(p);
  DynamicPool q(8, 2, 0, 1, Placement::kReplicated, false, 0);
  q.restore_metadata(s.slot_labels, s.toggles, s.lru);
  q.mutable_rows().copy_(p.rows());
  expect_same(s, snapshot(q));
  // Both continue identically.
  p.insert(labels({7, 3, 1, 2}), at::ones({4, 2}), false, refreshed);
  q.insert(labels({7, 3, 1, 2}), at::ones({4, 2}), false, refreshed);
  expect_same(snapshot(p), snapshot(q));
  std::vector<int64_t> bad = s.lru;
  bad.pop_back();
  EXPECT_THROW(q.restore_metadata(s.slot_labels, s.toggles, bad), Error);
}

TEST(DynamicPool, RandomInitMakesEverySlotValid) {
  DynamicPool a(6, 8, 0, 2, Placement::kSharded, true, 5);
  DynamicPool b(6, 8, 0, 1, Placement::kReplicated, true, 5);
  EXPECT_EQ(a.local_valid(), 3);
  // Same values for the same global slot whatever the placement, unit norm, positive.
  EXPECT_TRUE(at::allclose(a.rows()[1], b.rows()[2]));
  EXPECT_NEAR(b.rows()[4][1].norm().item<float>(), 1.0f, 1e-5);
  EXPECT_GE(b.rows().min().item<float>(), 0.0f);
}

TEST(LabelMap, AgreesWithStdMapUnderChurn) {
  LabelMap m(100);
  std::unordered_map<int64_t, int64_t> ref;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) {
    const auto key = static_cast<int64_t>(rng() % 300);
    if (rng() % 3 == 0 || ref.size() >= 100) {
      m.erase(key);
      ref.erase(key);
    } else {
      m.insert(key, i);
      ref[key] = i;
    }
    if (i % 97 == 0) {
      for (int64_t k = 0; k < 300; ++k) {
        const auto it = ref.find(k);
        ASSERT_EQ(m.find(k), it == ref.end() ? -1 : it->second) << "key " << k << " at " << i;
      }
    }
  }
  EXPECT_EQ(m.size(), static_cast<int64_t>(ref.size()));
}

}  // namespace
}  // namespace ffc::head
