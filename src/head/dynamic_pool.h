#pragma once
// FFC's dynamic class pool (the "ID group"): Q slots, each two rows of D floats (the two most
// recent gallery features of one identity) and a toggle naming the row the next hit writes; an
// LRU maps identity labels to slots.
//
// Placement. The metadata (label -> slot map, LRU order, toggles; O(Q) integers) is replicated
// and updated identically on every rank from the all-gathered gallery labels. The rows are
// partitioned: with `sharded` placement rank r stores the slots s with s mod P == r (new
// identities take slots 0, 1, 2, ... and so rotate over the ranks), Q*2*D*4/P bytes per rank;
// with `replicated` placement (the authors' layout) every rank stores all rows.
//
// Insertion of a gathered gallery batch, label by label in gather order (the authors' order):
//   absent  -> a free slot (slots are handed out 0, 1, 2, ...) or the least recently seen
//              identity's slot; write row 0; toggle := 1
//   present -> move to the LRU head; write row `toggle`; flip the toggle; mark "refreshed"
// so a label seen twice in one batch writes row 0 then row 1, and later writes of the same
// (slot, row) win.
//
// Rollback: insert(..., journal = true) records every change (LRU moves, new and evicted labels,
// toggles, overwritten rows) and rollback() undoes them exactly, last first.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ffc::head {

// label -> slot, open addressing with linear probing and backward-shift deletion: deterministic
// and allocation-free after construction.
class LabelMap {
 public:
  explicit LabelMap(int64_t capacity);
  int64_t find(int64_t label) const;  // slot or -1
  void insert(int64_t label, int64_t slot);
  void erase(int64_t label);
  int64_t size() const { return size_; }
  int64_t bytes() const { return static_cast<int64_t>(keys_.size() * 16); }

 private:
  size_t home(int64_t label) const;
  std::vector<int64_t> keys_;  // -1: empty
  std::vector<int64_t> values_;
  size_t mask_;
  int64_t size_ = 0;
};

enum class Placement { kSharded, kReplicated };

struct InsertStats {
  int64_t inserted = 0;   // labels that were absent
  int64_t evicted = 0;    // of those, how many took an occupied slot
  int64_t refreshed = 0;  // hits on present labels
};

class DynamicPool {
 public:
  // The rows live on `device`; the metadata (label map, LRU list, toggles) on the host.
  DynamicPool(int64_t capacity, int64_t dim, int rank, int world, Placement placement,
              bool random_init, uint64_t seed, at::Device device = at::kCPU);

  int64_t capacity() const { return capacity_; }
  int64_t dim() const { return dim_; }
  int64_t filled() const { return filled_; }
  Placement placement() const { return placement_; }

  // Slot of `label`, or -1 (fresh identity); does not change recency.
  int64_t lookup(int64_t label) const { return map_.find(label); }
  // Labels [n] (host) -> slots [n] (host int64, -1 for absent).
  at::Tensor lookup(const at::Tensor& labels) const;

  // Inserts the gathered gallery batch (labels [G] int64 on the host, features [G, D] float,
  // L2-normalised, on the rows' device) and writes the rows this rank stores. Fills
  // `refreshed_slots` (slots hit while present, in first-hit order, no duplicates).
  InsertStats insert(const at::Tensor& labels, const at::Tensor& features, bool journal,
                     std::vector<int64_t>& refreshed_slots);
  // Undoes everything since the last insert(journal = true).
  void rollback();

  // Rows stored by this rank: [local_slots, 2, D]; local slot i is global slot
  // global_slot(i). Slots of the sharded placement are s = rank + i * P.
  const at::Tensor& rows() const { return rows_; }
  at::Tensor& mutable_rows() { return rows_; }
  int64_t local_slots() const { return rows_.size(0); }
  bool stores(int64_t slot) const;
  int64_t local_index(int64_t slot) const;
  int64_t global_slot(int64_t local) const;
  // Local slots that hold an identity (a prefix: slots are filled in order), or all of them with
  // random initialisation (the authors' option, where empty slots act as random classes).
  int64_t local_valid() const;

  // The training step inserts are attributed to (for the age of pool entries).
  void set_step(int64_t step) { step_ = step; }

  // Metadata views for checkpoints, statistics and tests.
  int64_t slot_label(int64_t slot) const { return slot_label_[slot]; }
  uint8_t toggle(int64_t slot) const { return toggle_[slot]; }
  // The step of the slot's last insertion or hit, -1 if free.
  int64_t slot_step(int64_t slot) const { return slot_step_[slot]; }
  // Labels from the most to the least recently seen.
  std::vector<int64_t> lru_order() const;
  // Rebuilds the metadata from a saved state (labels per slot, toggles, LRU order MRU first);
  // rows are set separately through mutable_rows(). Throws ffc::Error on inconsistent input.
  void restore_metadata(const std::vector<int64_t>& slot_labels,
                        const std::vector<uint8_t>& toggles,
                        const std::vector<int64_t>& lru_order_mru_first,
                        const std::vector<int64_t>& slot_steps = {});

  int64_t metadata_bytes() const;

 private:
  struct Op {
    enum Kind : uint8_t { kAdd, kEvict, kTouch } kind;
    uint8_t old_toggle;
    int32_t old_prev;  // kTouch: the node before the slot
    int64_t slot;
    int64_t old_label;  // kEvict: the label that held the slot
    int64_t old_step;
  };
  int32_t head() const { return static_cast<int32_t>(capacity_); }
  int32_t tail() const { return static_cast<int32_t>(capacity_ + 1); }
  void unlink(int32_t s);
  void link_after(int32_t s, int32_t at);

  int64_t capacity_;
  int64_t dim_;
  int rank_;
  int world_;
  Placement placement_;
  bool random_init_;
  LabelMap map_;
  std::vector<int64_t> slot_label_;  // -1: free
  std::vector<uint8_t> toggle_;
  std::vector<int64_t> slot_step_;
  int64_t step_ = 0;
  std::vector<int32_t> prev_, next_;  // LRU list over slots; head (MRU side) and tail sentinels
  int64_t filled_ = 0;
  at::Tensor rows_;

  // Journal of the current rollback pass.
  bool journaling_ = false;
  std::vector<Op> journal_;
  at::Tensor saved_index_;  // flat local row indices overwritten by the pass
  at::Tensor saved_rows_;   // their previous contents

  // Scratch of insert(), reused.
  std::vector<int64_t> write_flat_, write_src_;
  std::vector<int64_t> last_writer_;      // per local flat row: latest source in this batch
  std::vector<int64_t> refreshed_stamp_;  // per slot: insert_count_ when last marked refreshed
  int64_t insert_count_ = 0;
};

Placement parse_placement(const std::string& name, int world);  // "auto" | "sharded" | "replicated"

}  // namespace ffc::head
