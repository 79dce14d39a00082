#include "data/sampler.h"

#include <algorithm>

#include "common/error.h"
#include "common/random.h"
#include "data/image_source.h"

namespace ffc::data {
namespace {

// Stream tags: instance order, identity order, image choice, flips.
enum Stream : uint64_t { kInstanceOrder = 11, kIdentityOrder, kImagePick, kFlip };

bool flip_of(const PlannerOptions& o, int64_t step, int view, int64_t row) {
  if (!o.flip) {
    return false;
  }
  return mix({o.seed, kFlip, static_cast<uint64_t>(o.rank), static_cast<uint64_t>(step),
              static_cast<uint64_t>(view), static_cast<uint64_t>(row)}) >>
             63 !=
         0;
}

int64_t checked_steps(int64_t per_rank, int64_t batch, const std::string& what, int64_t total,
                      int world) {
  if (batch <= 0) {
    throw ConfigError("batch_size must be positive");
  }
  const int64_t steps = per_rank / batch;
  if (steps < 1) {
    throw ConfigError("the dataset has " + std::to_string(total) + " " + what + ", fewer than " +
                      "one global batch (" + std::to_string(batch) + " per rank x " +
                      std::to_string(world) + " ranks); lower batch_size or use more data");
  }
  return steps;
}

}  // namespace

InstanceSampler::InstanceSampler(int64_t num_images, uint64_t seed, int rank, int world)
    : n_(num_images), seed_(seed), rank_(rank), world_(world), per_rank_(num_images / world) {
  FFC_CHECK(world > 0 && rank >= 0 && rank < world, "bad rank/world");
  FFC_CHECK(num_images > 0, "instance sampler over no images");
}

int64_t InstanceSampler::image(int64_t epoch, int64_t i) const {
  const KeyedPermutation perm(static_cast<uint64_t>(n_),
                              mix({seed_, kInstanceOrder, static_cast<uint64_t>(epoch)}));
  return static_cast<int64_t>(perm.forward(static_cast<uint64_t>(i * world_ + rank_)));
}

IdentitySampler::IdentitySampler(int64_t num_classes, uint64_t seed, int rank, int world)
    : n_(num_classes), seed_(seed), rank_(rank), world_(world), per_rank_(num_classes / world) {
  FFC_CHECK(world > 0 && rank >= 0 && rank < world, "bad rank/world");
  if (per_rank_ < 1) {
    throw ConfigError("the dataset has " + std::to_string(num_classes) + " classes, fewer than " +
                      "the " + std::to_string(world) +
                      " ranks the identity loader shards them over");
  }
}

int64_t IdentitySampler::identity(int64_t epoch, int64_t q) const {
  const int64_t pass = q / per_rank_;
  const int64_t idx = q % per_rank_;
  const KeyedPermutation perm(
      static_cast<uint64_t>(n_),
      mix({seed_, kIdentityOrder, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pass)}));
  return static_cast<int64_t>(perm.forward(static_cast<uint64_t>(idx * world_ + rank_)));
}

void IdentitySampler::pick_images(int64_t epoch, int64_t q, int64_t label, int64_t class_size,
                                  int count, int64_t* out) const {
  FFC_CHECK(class_size > 0, "class " + std::to_string(label) + " has no images");
  Rng rng(mix({seed_, kImagePick, static_cast<uint64_t>(epoch), static_cast<uint64_t>(q),
               static_cast<uint64_t>(label)}));
  if (class_size >= count) {
    // `count` distinct indices: the first `count` positions of a keyed permutation of the class.
    const KeyedPermutation perm(static_cast<uint64_t>(class_size), rng.next());
    for (int i = 0; i < count; ++i) {
      out[i] = static_cast<int64_t>(perm.forward(static_cast<uint64_t>(i)));
    }
    return;
  }
  // Fewer images than asked: each once, then random repeats.
  for (int i = 0; i < count; ++i) {
    out[i] =
        i < class_size ? i : static_cast<int64_t>(rng.below(static_cast<uint64_t>(class_size)));
  }
}

// ---------------------------------------------------------------- planners

InstancePlanner::InstancePlanner(const ImageSource& source, const PlannerOptions& options)
    : options_(options),
      sampler_(source.num_images(), options.seed, options.rank, options.world),
      steps_(checked_steps(sampler_.per_rank(), options.batch_size, "images", source.num_images(),
                           options.world)) {}

void InstancePlanner::plan(int64_t step, std::vector<std::vector<Sample>>& views) const {
  const int64_t epoch = step / steps_;
  const int64_t s = step % steps_;
  views.resize(1);
  auto& v = views[0];
  v.resize(options_.batch_size);
  for (int64_t i = 0; i < options_.batch_size; ++i) {
    v[i] = {sampler_.image(epoch, s * options_.batch_size + i), -1, flip_of(options_, step, 0, i)};
  }
}

DualMode parse_dual_mode(const std::string& name) {
  if (name == "both") {
    return DualMode::kBoth;
  }
  if (name == "instance") {
    return DualMode::kInstanceOnly;
  }
  if (name == "identity") {
    return DualMode::kIdentityOnly;
  }
  throw ConfigError("loader mode '" + name + "' is not both, instance or identity");
}

DualPlanner::DualPlanner(const ImageSource& source, const PlannerOptions& options, DualMode mode)
    : source_(source),
      options_(options),
      mode_(mode),
      instances_(source.num_images(), options.seed, options.rank, options.world),
      identities_(source.num_classes(), options.seed, options.rank, options.world),
      steps_(0) {
  if (options.batch_size % 2 != 0) {
    throw ConfigError("FFC splits each rank's instance batch in halves: batch_size (" +
                      std::to_string(options.batch_size) + ") must be even");
  }
  // Instance images per step: b (both), 3b (instance only), 0 (identity only); the epoch is one
  // pass of the instance loader, or of the identity loader when it runs alone.
  const int64_t b = options.batch_size;
  if (mode == DualMode::kIdentityOnly) {
    items_per_step_ = b + b / 2;
    steps_ = checked_steps(identities_.per_rank(), items_per_step_, "classes", source.num_classes(),
                           options.world);
  } else {
    items_per_step_ = mode == DualMode::kBoth ? b : 3 * b;
    steps_ = checked_steps(instances_.per_rank(), items_per_step_, "images", source.num_images(),
                           options.world);
  }
}

std::vector<int64_t> DualPlanner::view_rows() const {
  const int64_t rows = options_.batch_size + options_.batch_size / 2;
  return {rows, rows};
}

void DualPlanner::plan(int64_t step, std::vector<std::vector<Sample>>& views) const {
  const int64_t epoch = step / steps_;
  const int64_t s = step % steps_;
  const int64_t b = options_.batch_size;
  const int64_t rows = b + b / 2;
  views.resize(2);
  views[0].resize(rows);
  views[1].resize(rows);
  const int64_t id_items = mode_ == DualMode::kBoth           ? b
                           : mode_ == DualMode::kIdentityOnly ? rows
                                                              : 0;
  const int64_t inst_items = 2 * (rows - id_items);  // split between the two views
  int64_t pair[2];
  for (int64_t i = 0; i < id_items; ++i) {
    const int64_t q = s * id_items + i;
    const int64_t label = identities_.identity(epoch, q);
    identities_.pick_images(epoch, q, label, source_.class_size(label), 2, pair);
    for (int v = 0; v < 2; ++v) {
      views[v][i] = {source_.class_image(label, pair[v]), label, flip_of(options_, step, v, i)};
    }
  }
  const int64_t half = inst_items / 2;
  for (int64_t i = 0; i < inst_items; ++i) {
    const int v = i < half ? 0 : 1;
    const int64_t row = id_items + (i % half);
    views[v][row] = {instances_.image(epoch, s * inst_items + i), -1,
                     flip_of(options_, step, v, row)};
  }
}

KPerIdentityPlanner::KPerIdentityPlanner(const ImageSource& source, const PlannerOptions& options,
                                         int k)
    : source_(source),
      options_(options),
      k_(k),
      identities_(source.num_classes(), options.seed, options.rank, options.world),
      steps_(0) {
  if (k < 1 || options.batch_size % k != 0) {
    throw ConfigError("batch_size (" + std::to_string(options.batch_size) +
                      ") must be a multiple of the images per identity (" + std::to_string(k) +
                      ")");
  }
  steps_ = checked_steps(identities_.per_rank(), options.batch_size / k, "classes",
                         source.num_classes(), options.world);
}

void KPerIdentityPlanner::plan(int64_t step, std::vector<std::vector<Sample>>& views) const {
  const int64_t epoch = step / steps_;
  const int64_t s = step % steps_;
  const int64_t ids = options_.batch_size / k_;
  views.resize(1);
  auto& v = views[0];
  v.resize(options_.batch_size);
  std::vector<int64_t> picks(k_);
  for (int64_t i = 0; i < ids; ++i) {
    const int64_t q = s * ids + i;
    const int64_t label = identities_.identity(epoch, q);
    identities_.pick_images(epoch, q, label, source_.class_size(label), k_, picks.data());
    for (int j = 0; j < k_; ++j) {
      const int64_t row = i * k_ + j;
      v[row] = {source_.class_image(label, picks[j]), label, flip_of(options_, step, 0, row)};
    }
  }
}

int64_t remap_step(int64_t step, int64_t steps_per_epoch_old, int64_t old_images_per_step,
                   int64_t steps_per_epoch_new, int64_t new_images_per_step) {
  FFC_CHECK(steps_per_epoch_old > 0 && steps_per_epoch_new > 0 && old_images_per_step > 0 &&
                new_images_per_step > 0,
            "remap_step: non-positive sizes");
  const int64_t epoch = step / steps_per_epoch_old;
  const int64_t consumed = (step % steps_per_epoch_old) * old_images_per_step;
  const int64_t s = std::min(consumed / new_images_per_step, steps_per_epoch_new - 1);
  return epoch * steps_per_epoch_new + s;
}

}  // namespace ffc::data
