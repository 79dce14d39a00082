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

EpochOrder::EpochOrder(int64_t n, const ReadOrder& order, int rank, int world, const char* what)
    : n_(n), order_(order), rank_(rank), world_(world), per_rank_(n / world) {
  FFC_CHECK(world > 0 && rank >= 0 && rank < world, "bad rank/world");
  FFC_CHECK(n > 0, std::string("an epoch over no ") + what);
  FFC_CHECK(order.block >= 0 && order.window >= 1, "bad read order");
  if (order.block > 0) {
    blocks_ = n / order.block;
    per_rank_ = blocks_ / world * order.block;
    if (per_rank_ < 1) {
      throw ConfigError("read_order block: the dataset's " + std::to_string(n) + " " + what +
                        " make " + std::to_string(blocks_) + " block(s) of " +
                        std::to_string(order.block) + ", fewer than one per rank (" +
                        std::to_string(world) + " ranks); lower read_block");
    }
  }
}

int64_t EpochOrder::item(uint64_t key, int64_t i) const {
  if (order_.block == 0) {
    const KeyedPermutation perm(static_cast<uint64_t>(n_), key);
    return static_cast<int64_t>(perm.forward(static_cast<uint64_t>(i * world_ + rank_)));
  }
  // Window w of this rank holds its blocks [w * window, w * window + blocks_in_window); the
  // position's place in the window's shuffle names one of them and the offset in it.
  const int64_t c = order_.block;
  const int64_t span = order_.window * c;
  const int64_t w = i / span;
  const int64_t in_window = std::min(order_.window, per_rank_ / c - w * order_.window) * c;
  const KeyedPermutation shuffle(
      static_cast<uint64_t>(in_window),
      mix({key, 3, static_cast<uint64_t>(rank_), static_cast<uint64_t>(w)}));
  const auto j = static_cast<int64_t>(shuffle.forward(static_cast<uint64_t>(i - w * span)));
  const KeyedPermutation blocks(static_cast<uint64_t>(blocks_), mix({key, 2}));
  const auto slot = (w * order_.window + j / c) * world_ + rank_;
  const auto block = static_cast<int64_t>(blocks.forward(static_cast<uint64_t>(slot)));
  const auto shift = static_cast<int64_t>(mix({key, 1}) % static_cast<uint64_t>(n_));
  return (shift + block * c + j % c) % n_;
}

void EpochOrder::window_runs(uint64_t key, int64_t i, std::vector<ItemRange>& out) const {
  const int64_t c = order_.block;
  if (c == 0 || i % (order_.window * c) != 0) {
    return;
  }
  // At the start of window w: window w + 1, so its reads are in flight while w is consumed
  // (and window 0 itself at the start of the epoch).
  const int64_t w = i / (order_.window * c);
  const int64_t rank_blocks = per_rank_ / c;
  const KeyedPermutation blocks(static_cast<uint64_t>(blocks_), mix({key, 2}));
  const auto shift = static_cast<int64_t>(mix({key, 1}) % static_cast<uint64_t>(n_));
  for (int64_t b = w == 0 ? 0 : (w + 1) * order_.window,
               end = std::min(rank_blocks, (w + 2) * order_.window);
       b < end; ++b) {
    const auto slot = b * world_ + rank_;
    const auto block = static_cast<int64_t>(blocks.forward(static_cast<uint64_t>(slot)));
    const int64_t first = (shift + block * c) % n_;
    const int64_t head = std::min(c, n_ - first);  // a block may wrap past the last item
    out.push_back({first, head});
    if (head < c) {
      out.push_back({0, c - head});
    }
  }
}

InstanceSampler::InstanceSampler(int64_t num_images, uint64_t seed, int rank, int world,
                                 const ReadOrder& order)
    : seed_(seed), order_(num_images, order, rank, world, "images") {}

uint64_t InstanceSampler::key(int64_t epoch) const {
  return mix({seed_, kInstanceOrder, static_cast<uint64_t>(epoch)});
}

int64_t InstanceSampler::image(int64_t epoch, int64_t i) const {
  return order_.item(key(epoch), i);
}

void InstanceSampler::read_ahead(int64_t epoch, int64_t i, std::vector<ItemRange>& out) const {
  order_.window_runs(key(epoch), i, out);
}

IdentitySampler::IdentitySampler(int64_t num_classes, uint64_t seed, int rank, int world,
                                 const ReadOrder& order)
    : seed_(seed), order_(num_classes, order, rank, world, "classes") {
  if (order_.per_rank() < 1) {
    throw ConfigError("the dataset has " + std::to_string(num_classes) + " classes, fewer than " +
                      "the " + std::to_string(world) +
                      " ranks the identity loader shards them over");
  }
}

uint64_t IdentitySampler::key(int64_t epoch, int64_t pass) const {
  return mix({seed_, kIdentityOrder, static_cast<uint64_t>(epoch), static_cast<uint64_t>(pass)});
}

int64_t IdentitySampler::identity(int64_t epoch, int64_t q) const {
  return order_.item(key(epoch, q / order_.per_rank()), q % order_.per_rank());
}

void IdentitySampler::read_ahead(int64_t epoch, int64_t q, std::vector<ItemRange>& out) const {
  order_.window_runs(key(epoch, q / order_.per_rank()), q % order_.per_rank(), out);
}

void identity_read_ahead(const IdentitySampler& sampler, const ImageSource& source, int64_t epoch,
                         int64_t q0, int64_t items, std::vector<ItemRange>& out) {
  const size_t from = out.size();
  for (int64_t q = q0; q < q0 + items; ++q) {
    sampler.read_ahead(epoch, q, out);
  }
  // Class runs to image runs, in place; a run whose images are not in file order is dropped.
  size_t kept = from;
  for (size_t k = from; k < out.size(); ++k) {
    const int64_t last = out[k].first + out[k].count - 1;
    const int64_t begin = source.class_image(out[k].first, 0);
    const int64_t end = source.class_image(last, source.class_size(last) - 1) + 1;
    if (end > begin) {
      out[kept++] = {begin, end - begin};
    }
  }
  out.resize(kept);
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
      sampler_(source.num_images(), options.seed, options.rank, options.world, options.order),
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

void InstancePlanner::read_ahead(int64_t step, std::vector<ItemRange>& out) const {
  const int64_t b = options_.batch_size;
  for (int64_t i = (step % steps_) * b, end = i + b; i < end; ++i) {
    sampler_.read_ahead(step / steps_, i, out);
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
      instances_(source.num_images(), options.seed, options.rank, options.world, options.order),
      identities_(source.num_classes(), options.seed, options.rank, options.world,
                  identity_order(options.order, source)),
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

int64_t DualPlanner::identity_items() const {
  const int64_t b = options_.batch_size;
  return mode_ == DualMode::kBoth ? b : mode_ == DualMode::kIdentityOnly ? b + b / 2 : 0;
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
  const int64_t id_items = identity_items();
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

void DualPlanner::read_ahead(int64_t step, std::vector<ItemRange>& out) const {
  const int64_t b = options_.batch_size;
  const int64_t rows = b + b / 2;
  const int64_t id_items = identity_items();
  const int64_t inst_items = 2 * (rows - id_items);
  for (int64_t i = (step % steps_) * inst_items, end = i + inst_items; i < end; ++i) {
    instances_.read_ahead(step / steps_, i, out);
  }
  identity_read_ahead(identities_, source_, step / steps_, (step % steps_) * id_items, id_items,
                      out);
}

KPerIdentityPlanner::KPerIdentityPlanner(const ImageSource& source, const PlannerOptions& options,
                                         int k)
    : source_(source),
      options_(options),
      k_(k),
      identities_(source.num_classes(), options.seed, options.rank, options.world,
                  identity_order(options.order, source)),
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

ReadOrder identity_order(const ReadOrder& image_order, const ImageSource& source) {
  ReadOrder order = image_order;
  if (order.block > 0) {
    const double per_class = static_cast<double>(source.num_images()) /
                             static_cast<double>(std::max<int64_t>(1, source.num_classes()));
    order.block = std::max<int64_t>(
        1, static_cast<int64_t>(static_cast<double>(image_order.block) / per_class + 0.5));
  }
  return order;
}

void KPerIdentityPlanner::read_ahead(int64_t step, std::vector<ItemRange>& out) const {
  const int64_t ids = options_.batch_size / k_;
  identity_read_ahead(identities_, source_, step / steps_, (step % steps_) * ids, ids, out);
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
