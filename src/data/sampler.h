#pragma once
// Samplers and batch plans: which images each rank loads at each step. Everything here is a pure
// function of (seed, epoch, step, rank, world size): no permutation arrays (a keyed bijection on
// [0, n) per epoch), no state beyond the step counter, so any step can be recomputed, a run
// resumes from (epoch, step), and a resume on another number of ranks remaps the step
// (remap_step). Torch-free.
//
// Sharding: in epoch e the images are permuted by pi_e; rank r of P takes permuted positions
// r, r + P, r + 2P, ... So after k steps of B images the ranks together have consumed exactly
// the positions [0, k*B*P) of pi_e, whatever P is. Each rank sees floor(n / P) images per epoch
// and an epoch has floor(floor(n / P) / B) steps (the remainder is dropped, as drop_last).

#include <cstdint>
#include <string>
#include <vector>

namespace ffc::data {

class ImageSource;

// The order in which an epoch visits the items (config read_order, read_block, read_window).
struct ReadOrder {
  int64_t block = 0;   // 0: uniform random order; else items per block
  int64_t window = 1;  // blocks a rank shuffles together (its shuffle buffer, in blocks)
};

// A run [first, first + count) of consecutive item indices.
struct ItemRange {
  int64_t first = 0;
  int64_t count = 0;
};

// One rank's stream over n items in epoch order: random (a keyed permutation dealt in turn) or
// block order (header comment). `what` names the items in errors ("images", "classes").
class EpochOrder {
 public:
  EpochOrder(int64_t n, const ReadOrder& order, int rank, int world, const char* what);
  int64_t per_rank() const { return per_rank_; }
  // The i-th item (0 <= i < per_rank()) of this rank's stream under `key` (one per epoch/pass).
  int64_t item(uint64_t key, int64_t i) const;
  // Block order, for read-ahead: when stream position i starts shuffle window w, appends the
  // item runs (its blocks) of window w + 1, and of window 0 too at the epoch's start; nothing at
  // other positions or in random order, so a caller visiting every position asks once.
  void window_runs(uint64_t key, int64_t i, std::vector<ItemRange>& out) const;
  bool blocked() const { return order_.block > 0; }

 private:
  int64_t n_;
  ReadOrder order_;
  int rank_;
  int world_;
  int64_t per_rank_;
  int64_t blocks_ = 0;  // whole blocks in the rotated epoch
};

// Uniform over images.
class InstanceSampler {
 public:
  InstanceSampler(int64_t num_images, uint64_t seed, int rank, int world,
                  const ReadOrder& order = {});
  int64_t per_rank() const { return order_.per_rank(); }
  // The i-th image (0 <= i < per_rank()) of this rank in epoch `epoch`.
  int64_t image(int64_t epoch, int64_t i) const;
  // The image runs this rank starts reading at position i of epoch `epoch` (block order).
  void read_ahead(int64_t epoch, int64_t i, std::vector<ItemRange>& out) const;

 private:
  uint64_t key(int64_t epoch) const;
  uint64_t seed_;
  EpochOrder order_;
};

// Uniform over identities. The stream of identity items of a rank restarts at every epoch and,
// within an epoch, cycles through reshuffled passes when it runs out (pass p of epoch e uses its
// own permutation), so it never ends and never repeats the authors' fixed order.
class IdentitySampler {
 public:
  // order.block counts classes here.
  IdentitySampler(int64_t num_classes, uint64_t seed, int rank, int world,
                  const ReadOrder& order = {});
  int64_t per_rank() const { return order_.per_rank(); }
  // The q-th identity (q >= 0) of this rank's stream in epoch `epoch`.
  int64_t identity(int64_t epoch, int64_t q) const;
  // `count` distinct image indices in [0, class_size) for item q of identity `label` (repeats
  // only when the class has fewer than `count` images: then every image once, padded with random
  // repeats; one image gives that image `count` times).
  void pick_images(int64_t epoch, int64_t q, int64_t label, int64_t class_size, int count,
                   int64_t* out) const;
  // The class runs this rank starts reading at item q of epoch `epoch` (block order).
  void read_ahead(int64_t epoch, int64_t q, std::vector<ItemRange>& out) const;

 private:
  uint64_t key(int64_t epoch, int64_t pass) const;
  uint64_t seed_;
  EpochOrder order_;
};

// One image of a batch: the dataset image, the class label if the planner knows it (-1 when the
// image's record decides, as for instance sampling), and whether to mirror it.
struct Sample {
  int64_t image = 0;
  int64_t label = -1;
  bool flip = false;
};

// The composition of every step's batch. A batch has one or more views (FFC has two: x and y),
// each a fixed number of rows. plan() must be thread-safe and deterministic.
class BatchPlanner {
 public:
  virtual ~BatchPlanner() = default;
  virtual std::vector<int64_t> view_rows() const = 0;
  virtual int64_t steps_per_epoch() const = 0;
  // Items per rank and step of the stream that defines the epoch (images, or identities when
  // identities drive it): a resume on another world size remaps the step by it (remap_step).
  virtual int64_t items_per_step() const = 0;
  // Fills views[v][i] for global step `step` (epoch = step / steps_per_epoch()).
  virtual void plan(int64_t step, std::vector<std::vector<Sample>>& views) const = 0;
  // Block order: the image runs whose reading starts at step `step` (appended to `out`), for the
  // dataset's read-ahead; nothing in random order.
  virtual void read_ahead(int64_t /*step*/, std::vector<ItemRange>& /*out*/) const {}
  // Whether the order is blocked (a resume on another world size then re-deals the epoch).
  virtual bool blocked() const { return false; }
};

struct PlannerOptions {
  int64_t batch_size = 128;  // per rank
  uint64_t seed = 0;
  int rank = 0;
  int world = 1;
  bool flip = true;  // random horizontal mirror with probability 1/2, per image
  ReadOrder order;   // block counts images; identity streams scale it to classes
};

// B images uniform over the dataset (FC, Partial FC).
class InstancePlanner final : public BatchPlanner {
 public:
  InstancePlanner(const ImageSource& source, const PlannerOptions& options);
  std::vector<int64_t> view_rows() const override { return {options_.batch_size}; }
  int64_t steps_per_epoch() const override { return steps_; }
  int64_t items_per_step() const override { return options_.batch_size; }
  void plan(int64_t step, std::vector<std::vector<Sample>>& views) const override;
  void read_ahead(int64_t step, std::vector<ItemRange>& out) const override;
  bool blocked() const override { return options_.order.block > 0; }

 private:
  PlannerOptions options_;
  InstanceSampler sampler_;
  int64_t steps_;
};

// FFC's dual loader, per rank and step: b identity items (two images of one identity each) and b
// instance images; x = [identity view 1; instance half 1], y = [identity view 2; instance
// half 2], b + b/2 rows each (b = batch_size, even). The ablation modes keep the same rows:
// kInstanceOnly fills x and y with 3b/2 instance images each, kIdentityOnly with the two views of
// 3b/2 identity items.
enum class DualMode { kBoth, kInstanceOnly, kIdentityOnly };
DualMode parse_dual_mode(const std::string& name);  // "both" | "instance" | "identity"

class DualPlanner final : public BatchPlanner {
 public:
  DualPlanner(const ImageSource& source, const PlannerOptions& options, DualMode mode);
  std::vector<int64_t> view_rows() const override;
  int64_t steps_per_epoch() const override { return steps_; }
  int64_t items_per_step() const override { return items_per_step_; }
  void plan(int64_t step, std::vector<std::vector<Sample>>& views) const override;
  void read_ahead(int64_t step, std::vector<ItemRange>& out) const override;
  bool blocked() const override { return options_.order.block > 0; }

 private:
  int64_t identity_items() const;  // identity items per step (the rest of a view: instances)
  const ImageSource& source_;
  PlannerOptions options_;
  DualMode mode_;
  InstanceSampler instances_;
  IdentitySampler identities_;
  int64_t steps_;
  int64_t items_per_step_ = 0;
};

// Virtual FC's batches: batch_size / k identities per rank, k images each.
class KPerIdentityPlanner final : public BatchPlanner {
 public:
  KPerIdentityPlanner(const ImageSource& source, const PlannerOptions& options, int k);
  std::vector<int64_t> view_rows() const override { return {options_.batch_size}; }
  int64_t steps_per_epoch() const override { return steps_; }
  int64_t items_per_step() const override { return options_.batch_size / k_; }
  void plan(int64_t step, std::vector<std::vector<Sample>>& views) const override;
  void read_ahead(int64_t step, std::vector<ItemRange>& out) const override;
  bool blocked() const override { return options_.order.block > 0; }

 private:
  const ImageSource& source_;
  PlannerOptions options_;
  int k_;
  IdentitySampler identities_;
  int64_t steps_;
};

// The step of a run saved at `step` with `old_images_per_step` images per step over all ranks,
// resumed with `new_images_per_step`: the first step whose images have not all been consumed
// (floor), so at most one global batch of the epoch is repeated, none skipped.
// Block order: appends the image runs of the identity stream's items [q0, q0 + items) of epoch
// `epoch` (the classes' images, where a class run's images are one run of the file).
void identity_read_ahead(const IdentitySampler& sampler, const ImageSource& source, int64_t epoch,
                         int64_t q0, int64_t items, std::vector<ItemRange>& out);

// The identity stream's block in classes for a block of `image_block` images: the same share of
// the file (at least one class).
ReadOrder identity_order(const ReadOrder& image_order, const ImageSource& source);

int64_t remap_step(int64_t step, int64_t steps_per_epoch_old, int64_t old_images_per_step,
                   int64_t steps_per_epoch_new, int64_t new_images_per_step);

}  // namespace ffc::data
