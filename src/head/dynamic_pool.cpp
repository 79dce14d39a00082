#include "head/dynamic_pool.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "comm/device.h"
#include "common/error.h"
#include "common/random.h"

namespace ffc::head {

// ---------------------------------------------------------------- LabelMap

LabelMap::LabelMap(int64_t capacity) {
  size_t n = 16;
  while (n < static_cast<size_t>(capacity) * 2) {
    n <<= 1;
  }
  keys_.assign(n, -1);
  values_.assign(n, -1);
  mask_ = n - 1;
}

size_t LabelMap::home(int64_t label) const {
  return static_cast<size_t>(splitmix64(static_cast<uint64_t>(label))) & mask_;
}

int64_t LabelMap::find(int64_t label) const {
  for (size_t i = home(label);; i = (i + 1) & mask_) {
    if (keys_[i] == label) {
      return values_[i];
    }
    if (keys_[i] < 0) {
      return -1;
    }
  }
}

void LabelMap::insert(int64_t label, int64_t slot) {
  FFC_CHECK(label >= 0, "pool labels must be non-negative, got " + std::to_string(label));
  for (size_t i = home(label);; i = (i + 1) & mask_) {
    if (keys_[i] == label) {
      values_[i] = slot;
      return;
    }
    if (keys_[i] < 0) {
      keys_[i] = label;
      values_[i] = slot;
      ++size_;
      FFC_CHECK(static_cast<size_t>(size_) * 2 <= keys_.size(), "label map over capacity");
      return;
    }
  }
}

void LabelMap::erase(int64_t label) {
  size_t i = home(label);
  while (keys_[i] != label) {
    if (keys_[i] < 0) {
      return;
    }
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion keeps every remaining key reachable from its home without tombstones.
  size_t hole = i;
  for (size_t j = (i + 1) & mask_; keys_[j] >= 0; j = (j + 1) & mask_) {
    const size_t h = home(keys_[j]);
    // Move j into the hole if its home is not within (hole, j] cyclically.
    const bool in_range = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!in_range) {
      keys_[hole] = keys_[j];
      values_[hole] = values_[j];
      hole = j;
    }
  }
  keys_[hole] = -1;
  values_[hole] = -1;
  --size_;
}

// ---------------------------------------------------------------- DynamicPool

Placement parse_placement(const std::string& name, int world) {
  if (name == "sharded" || (name == "auto" && world > 1)) {
    return Placement::kSharded;
  }
  if (name == "replicated" || name == "auto") {
    return Placement::kReplicated;
  }
  throw ConfigError("pool_placement '" + name + "' is not auto, sharded or replicated");
}

DynamicPool::DynamicPool(int64_t capacity, int64_t dim, int rank, int world, Placement placement,
                         bool random_init, uint64_t seed, at::Device device)
    : capacity_(capacity),
      dim_(dim),
      rank_(rank),
      world_(world),
      placement_(placement),
      random_init_(random_init),
      map_(capacity) {
  FFC_CHECK(capacity > 0 && capacity < (int64_t{1} << 31) - 2,
            "pool capacity must be in [1, 2^31 - 3], got " + std::to_string(capacity));
  slot_label_.assign(capacity, -1);
  toggle_.assign(capacity, 0);
  slot_step_.assign(capacity, -1);
  prev_.assign(capacity + 2, -1);
  next_.assign(capacity + 2, -1);
  next_[head()] = tail();
  prev_[tail()] = head();
  const int64_t local =
      placement == Placement::kSharded ? (capacity - rank + world - 1) / world : capacity;
  // Zero-filled here, so the pages are touched once at start-up rather than in a step.
  rows_ = at::zeros({std::max<int64_t>(local, 0), 2, dim}, at::kFloat);
  if (random_init) {
    // The authors' initialisation: uniform [0, 1) then L2-normalised, per slot and row, from the
    // seed and the global slot, so every placement holds the same values.
    float* p = rows_.data_ptr<float>();
    for (int64_t i = 0; i < rows_.size(0); ++i) {
      const int64_t s = global_slot(i);
      for (int r = 0; r < 2; ++r) {
        Rng rng(mix({seed, 0x9001, static_cast<uint64_t>(s), static_cast<uint64_t>(r)}));
        float* v = p + (i * 2 + r) * dim;
        double norm = 0;
        for (int64_t d = 0; d < dim; ++d) {
          v[d] = static_cast<float>(rng.uniform());
          norm += static_cast<double>(v[d]) * v[d];
        }
        const auto inv = static_cast<float>(1.0 / std::sqrt(std::max(norm, 1e-24)));
        for (int64_t d = 0; d < dim; ++d) {
          v[d] *= inv;
        }
      }
    }
  }
  if (!device.is_cpu()) {
    rows_ = rows_.to(device);
  }
  last_writer_.assign(static_cast<size_t>(rows_.size(0)) * 2, -1);
  refreshed_stamp_.assign(capacity, 0);
}

bool DynamicPool::stores(int64_t slot) const {
  return placement_ == Placement::kReplicated || slot % world_ == rank_;
}

int64_t DynamicPool::local_index(int64_t slot) const {
  return placement_ == Placement::kReplicated ? slot : slot / world_;
}

int64_t DynamicPool::global_slot(int64_t local) const {
  return placement_ == Placement::kReplicated ? local : rank_ + local * world_;
}

int64_t DynamicPool::local_valid() const {
  if (random_init_) {
    return local_slots();
  }
  if (placement_ == Placement::kReplicated) {
    return filled_;
  }
  // Slots 0 .. filled-1 are occupied; this rank stores rank, rank + P, ...
  return filled_ > rank_ ? (filled_ - rank_ + world_ - 1) / world_ : 0;
}

void DynamicPool::unlink(int32_t s) {
  next_[prev_[s]] = next_[s];
  prev_[next_[s]] = prev_[s];
}

void DynamicPool::link_after(int32_t s, int32_t at) {
  prev_[s] = at;
  next_[s] = next_[at];
  prev_[next_[at]] = s;
  next_[at] = s;
}

at::Tensor DynamicPool::lookup(const at::Tensor& labels) const {
  const at::Tensor l = labels.to(at::kLong).contiguous();
  at::Tensor out = at::empty({l.numel()}, at::kLong);
  const int64_t* in = l.data_ptr<int64_t>();
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < l.numel(); ++i) {
    o[i] = map_.find(in[i]);
  }
  return out;
}

InsertStats DynamicPool::insert(const at::Tensor& labels, const at::Tensor& features, bool journal,
                                std::vector<int64_t>& refreshed_slots) {
  const at::Tensor l = labels.to(at::kLong).contiguous();
  const int64_t g = l.numel();
  FFC_CHECK(features.size(0) == g && features.size(1) == dim_,
            "pool insert: features " + std::to_string(features.size(0)) + "x" +
                std::to_string(features.size(1)) + " for " + std::to_string(g) + " labels of dim " +
                std::to_string(dim_));
  journaling_ = journal;
  journal_.clear();
  refreshed_slots.clear();
  ++insert_count_;
  write_flat_.clear();
  write_src_.clear();
  InsertStats stats;
  const int64_t* lab = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < g; ++i) {
    const int64_t label = lab[i];
    int64_t slot = map_.find(label);
    int row = 0;
    if (slot < 0) {
      ++stats.inserted;
      if (filled_ < capacity_) {
        slot = filled_++;
        if (journal) {
          journal_.push_back({Op::kAdd, toggle_[slot], -1, slot, -1, slot_step_[slot]});
        }
      } else {
        slot = prev_[tail()];  // least recently seen
        ++stats.evicted;
        if (journal) {
          journal_.push_back(
              {Op::kEvict, toggle_[slot], -1, slot, slot_label_[slot], slot_step_[slot]});
        }
        map_.erase(slot_label_[slot]);
        unlink(static_cast<int32_t>(slot));
      }
      map_.insert(label, slot);
      slot_label_[slot] = label;
      link_after(static_cast<int32_t>(slot), head());
      row = 0;
      toggle_[slot] = 1;
    } else {
      ++stats.refreshed;
      if (journal) {
        journal_.push_back({Op::kTouch, toggle_[slot], prev_[slot], slot, -1, slot_step_[slot]});
      }
      unlink(static_cast<int32_t>(slot));
      link_after(static_cast<int32_t>(slot), head());
      row = toggle_[slot];
      toggle_[slot] ^= 1;
      if (refreshed_stamp_[slot] != insert_count_) {
        refreshed_stamp_[slot] = insert_count_;
        refreshed_slots.push_back(slot);
      }
    }
    slot_step_[slot] = step_;
    if (stores(slot)) {
      const int64_t flat = local_index(slot) * 2 + row;
      if (last_writer_[flat] < 0) {
        write_flat_.push_back(flat);
      }
      last_writer_[flat] = i;  // a later write of the same (slot, row) wins
    }
  }
  // Apply the writes: one source per destination row, the last one of the batch.
  write_src_.resize(write_flat_.size());
  for (size_t k = 0; k < write_flat_.size(); ++k) {
    write_src_[k] = last_writer_[write_flat_[k]];
    last_writer_[write_flat_[k]] = -1;
  }
  if (!write_flat_.empty()) {
    at::Tensor flat_rows = rows_.view({-1, dim_});
    const at::Tensor dst = comm::to_device(at::tensor(write_flat_, at::kLong), rows_.device());
    const at::Tensor src = comm::to_device(at::tensor(write_src_, at::kLong), rows_.device());
    if (journal) {
      saved_index_ = dst;
      saved_rows_ = flat_rows.index_select(0, dst);
    }
    flat_rows.index_copy_(0, dst, features.to(at::kFloat).index_select(0, src));
  } else if (journal) {
    saved_index_ = at::Tensor();
    saved_rows_ = at::Tensor();
  }
  return stats;
}

void DynamicPool::rollback() {
  FFC_CHECK(journaling_, "pool rollback without a journaled insert");
  if (saved_index_.defined()) {
    rows_.view({-1, dim_}).index_copy_(0, saved_index_, saved_rows_);
  }
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) {
    const auto s = static_cast<int32_t>(it->slot);
    switch (it->kind) {
      case Op::kTouch:  // was moved to the head from after old_prev
        unlink(s);
        link_after(s, it->old_prev);
        break;
      case Op::kAdd:  // took the next free slot
        unlink(s);
        map_.erase(slot_label_[s]);
        slot_label_[s] = -1;
        --filled_;
        break;
      case Op::kEvict:  // took the tail's slot from old_label
        unlink(s);
        map_.erase(slot_label_[s]);
        slot_label_[s] = it->old_label;
        map_.insert(it->old_label, s);
        link_after(s, prev_[tail()]);
        break;
    }
    toggle_[s] = it->old_toggle;
    slot_step_[s] = it->old_step;
  }
  journal_.clear();
  journaling_ = false;
  saved_index_ = at::Tensor();
  saved_rows_ = at::Tensor();
}

std::vector<int64_t> DynamicPool::lru_order() const {
  std::vector<int64_t> out;
  out.reserve(filled_);
  for (int32_t s = next_[head()]; s != tail(); s = next_[s]) {
    out.push_back(slot_label_[s]);
  }
  return out;
}

void DynamicPool::restore_metadata(const std::vector<int64_t>& slot_labels,
                                   const std::vector<uint8_t>& toggles,
                                   const std::vector<int64_t>& lru_order_mru_first,
                                   const std::vector<int64_t>& slot_steps) {
  FFC_CHECK(static_cast<int64_t>(slot_labels.size()) == capacity_ &&
                static_cast<int64_t>(toggles.size()) == capacity_,
            "pool state of " + std::to_string(slot_labels.size()) + " slots for a pool of " +
                std::to_string(capacity_));
  int64_t filled = 0;
  while (filled < capacity_ && slot_labels[filled] >= 0) {
    ++filled;
  }
  for (int64_t s = filled; s < capacity_; ++s) {
    FFC_CHECK(slot_labels[s] < 0, "pool state: occupied slot " + std::to_string(s) +
                                      " after the first free slot " + std::to_string(filled));
  }
  FFC_CHECK(static_cast<int64_t>(lru_order_mru_first.size()) == filled,
            "pool state: LRU order lists " + std::to_string(lru_order_mru_first.size()) +
                " labels for " + std::to_string(filled) + " occupied slots");
  map_ = LabelMap(capacity_);
  for (int64_t s = 0; s < filled; ++s) {
    map_.insert(slot_labels[s], s);
  }
  FFC_CHECK(map_.size() == filled, "pool state: a label occupies two slots");
  slot_label_ = slot_labels;
  toggle_ = toggles;
  filled_ = filled;
  if (slot_steps.empty()) {
    std::fill(slot_step_.begin(), slot_step_.end(), -1);
  } else {
    FFC_CHECK(static_cast<int64_t>(slot_steps.size()) == capacity_,
              "pool state: slot steps for " + std::to_string(slot_steps.size()) + " slots");
    slot_step_ = slot_steps;
  }
  std::fill(prev_.begin(), prev_.end(), -1);
  std::fill(next_.begin(), next_.end(), -1);
  next_[head()] = tail();
  prev_[tail()] = head();
  for (int64_t label : lru_order_mru_first) {  // append in order: MRU first, LRU last
    const int64_t s = map_.find(label);
    FFC_CHECK(s >= 0 && prev_[s] == -1,
              "pool state: LRU order names label " + std::to_string(label) + " wrongly or twice");
    link_after(static_cast<int32_t>(s), prev_[tail()]);
  }
  journal_.clear();
  journaling_ = false;
}

int64_t DynamicPool::metadata_bytes() const {
  return static_cast<int64_t>(slot_label_.size() * 8 + toggle_.size() + slot_step_.size() * 8 +
                              prev_.size() * 4 + next_.size() * 4 + refreshed_stamp_.size() * 8 +
                              last_writer_.size() * 8) +
         map_.bytes();
}

}  // namespace ffc::head
