// FFC's step (docs/method.md): two passes over the views x and y of the dual loader.
//   pass A: p = P(x); G <- EMA(G, P); g = G(y); loss A on the pool with g inserted, then rolled
//   back pass B: p = P(y); g = G(x); loss B on the pool with g inserted for good
// The step's loss is A + B. With rollback off, one pass (probe x, gallery y) that keeps its
// insertion.

#include <ATen/ATen.h>

#include <sstream>

#include "ckpt/checkpoint.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/methods.h"
#include "head/ffc_head.h"
#include "head/sharded_softmax.h"
#include "model/backbone.h"
#include "model/normalize.h"
#include "model/state_dict.h"
#include "train/method.h"

namespace ffc::train {
namespace {

class FfcMethod final : public Method {
 public:
  FfcMethod(const Config& config, model::Backbone& probe, comm::Communicator& comm,
            int64_t gallery_rows_per_rank)
      : config_(config), probe_(probe), comm_(comm) {
    gallery_ = model::make_gallery(probe_);
    head::FfcHeadOptions o;
    o.pool_size = resolve_pool_size(config, gallery_rows_per_rank, comm.size());
    head::check_pool_size(o.pool_size, gallery_rows_per_rank, comm.size());
    o.dim = config.embedding_size;
    o.placement = head::parse_placement(config.pool_placement, comm.size());
    o.random_init = config.pool_random_init;
    o.fresh_k = config.fresh_k > 0 ? config.fresh_k : head::default_fresh_k(o.pool_size);
    o.fresh_weight = config.fresh_weight;
    o.margin = head::margin_from_config(config);
    o.seed = static_cast<uint64_t>(config.seed);
    head_ = std::make_unique<head::FfcHead>(o, comm);
  }

  static int64_t resolve_pool_size(const Config& c, int64_t rows, int world) {
    if (c.pool_size > 0) {
      return c.pool_size;
    }
    return default_pool_size(c.num_classes, rows * world);
  }

  std::string name() const override { return "ffc"; }

  std::string describe() const override {
    const auto& o = head_->options();
    std::ostringstream s;
    s << "FFC: pool " << o.pool_size << " slots x 2 x " << o.dim << " ("
      << (o.placement == head::Placement::kSharded ? "sharded" : "replicated") << ", "
      << head_->pool().local_slots() << " slots on this rank, "
      << (head_->pool().local_slots() * 2 * o.dim * 4 >> 20) << " MiB), "
      << (o.random_init ? "random-initialised" : "empty slots masked") << ", fresh top-"
      << o.fresh_k << ", " << o.margin.describe() << ", gallery EMA alpha " << config_.alpha
      << (config_.rollback ? ", rollback pass A" : ", single pass");
    return s.str();
  }

  at::Tensor forward(const data::Batch& batch, PhaseTimer& timer, StepStats& stats) override {
    const at::Tensor& x = batch.images.at(0);
    const at::Tensor& y = batch.images.at(1);
    const at::Tensor& xl = batch.labels.at(0);
    const at::Tensor& yl = batch.labels.at(1);
    head_->pool().set_step(batch.step);
    head::FfcPassStats a;
    head::FfcPassStats b;
    at::Tensor loss;
    // EMA before the gallery's first forward of the step (the authors' order).
    {
      timer.start(Phase::kGalleryForward);
      at::NoGradGuard no_grad;
      model::ema_update(*gallery_, probe_, config_.alpha);
    }
    if (config_.rollback) {
      loss = pass(x, xl, y, yl, true, timer, a).sum();
      loss = loss + pass(y, yl, x, xl, false, timer, b).sum();
    } else {
      loss = pass(x, xl, y, yl, false, timer, a).sum();
    }
    const int passes = config_.rollback ? 2 : 1;
    stats.probe_images = passes * x.size(0);
    stats.gallery_images = passes * y.size(0);
    const at::Tensor ce = config_.rollback ? a.ce + b.ce : a.ce;
    const at::Tensor fresh = config_.rollback ? a.fresh + b.fresh : a.fresh;
    stats.loss = (ce + fresh).detach();
    const head::FfcPassStats& last = config_.rollback ? b : a;
    evictions_ += last.insert.evicted;
    const int64_t probes = last.positives + last.fresh_samples;
    const double fresh_share = probes > 0 ? static_cast<double>(last.fresh_samples) / probes : 0;
    stats.figures.add("ce", ce);
    stats.figures.add("fresh", fresh);
    stats.figures.add("pool_filled", head_->pool().filled());
    stats.figures.add("pool_size", head_->pool().capacity());
    stats.figures.add("evictions", evictions_);
    stats.figures.add("fresh_share", fresh_share);
    stats.figures.add("target_cos", last.mean_target_cos);
    return loss;
  }

  std::string progress(const nlohmann::ordered_json& f) const override {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "ce %.3f fresh %.3f | pool %lld/%lld evict %lld, fresh %.0f%%",
                  f.value("ce", 0.0), f.value("fresh", 0.0),
                  static_cast<long long>(f.value("pool_filled", int64_t{0})),
                  static_cast<long long>(f.value("pool_size", int64_t{0})),
                  static_cast<long long>(f.value("evictions", int64_t{0})),
                  100 * f.value("fresh_share", 0.0));
    return buf;
  }

  std::vector<std::pair<std::string, at::Tensor>> workspaces() override {
    return head_->workspaces();
  }

  std::vector<std::pair<std::string, at::Tensor>> state_tensors() override {
    std::vector<std::pair<std::string, at::Tensor>> out = {
        {"head/pool/rows", head_->pool().rows()}};
    for (const auto& [key, t] : model::state_dict(*gallery_)) {
      out.emplace_back("gallery/" + key, t);
    }
    return out;
  }

  model::Backbone* gallery_network() override { return gallery_.get(); }

  std::vector<std::pair<std::string, int64_t>> checkpoint_attributes() const override {
    return {{"pool_size", head_->pool().capacity()}};
  }

  void save_state(ckpt::CheckpointWriter& w) override {
    for (const auto& [key, t] : model::state_dict(*gallery_)) {
      w.replicated("gallery/" + key, t);
    }
    const head::DynamicPool& pool = head_->pool();
    const int64_t q = pool.capacity();
    // Rows in global slot order: each rank writes the slots it stores.
    if (pool.placement() == head::Placement::kSharded) {
      w.rows("head/pool/rows", pool.rows(), q, comm_.rank(), comm_.size());
    } else {
      w.replicated("head/pool/rows", pool.rows());
    }
    std::vector<int64_t> labels(static_cast<size_t>(q));
    std::vector<int64_t> steps(static_cast<size_t>(q));
    std::vector<uint8_t> toggles(static_cast<size_t>(q));
    for (int64_t slot = 0; slot < q; ++slot) {
      labels[slot] = pool.slot_label(slot);
      steps[slot] = pool.slot_step(slot);
      toggles[slot] = pool.toggle(slot);
    }
    const std::vector<int64_t> lru = pool.lru_order();
    w.replicated("head/pool/labels", at::tensor(labels, at::kLong));
    w.replicated("head/pool/toggles", at::from_blob(toggles.data(), {q}, at::kByte).clone());
    w.replicated("head/pool/last_step", at::tensor(steps, at::kLong));
    w.replicated("head/pool/lru_order", at::tensor(lru, at::kLong));
    w.attribute("pool_evictions", evictions_);
  }

  void load_state(const ckpt::CheckpointReader& r) override {
    for (const auto& [key, t] : model::state_dict(*gallery_)) {
      r.read_into("gallery/" + key, t);
    }
    head::DynamicPool& pool = head_->pool();
    if (pool.placement() == head::Placement::kSharded) {
      r.read_rows_into("head/pool/rows", pool.mutable_rows(), comm_.rank(), comm_.size());
    } else {
      r.read_into("head/pool/rows", pool.mutable_rows());
    }
    const at::Tensor labels = r.read("head/pool/labels").contiguous();
    const at::Tensor toggles = r.read("head/pool/toggles").contiguous();
    const at::Tensor steps = r.read("head/pool/last_step").contiguous();
    const at::Tensor lru = r.read("head/pool/lru_order").contiguous();
    auto vec = [](const at::Tensor& t) {
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    };
    const std::vector<uint8_t> tg(toggles.data_ptr<uint8_t>(),
                                  toggles.data_ptr<uint8_t>() + toggles.numel());
    pool.restore_metadata(vec(labels), tg, vec(lru), vec(steps));
    evictions_ = r.int_attribute("pool_evictions");
  }

 private:
  at::Tensor pass(const at::Tensor& probe_images, const at::Tensor& probe_labels,
                  const at::Tensor& gallery_images, const at::Tensor& gallery_labels, bool rollback,
                  PhaseTimer& timer, head::FfcPassStats& stats) {
    timer.start(Phase::kProbeForward);
    const at::Tensor p = model::l2_normalize(probe_.forward(probe_images));
    timer.start(Phase::kGalleryForward);
    at::Tensor g;
    {
      at::NoGradGuard no_grad;
      g = model::l2_normalize(gallery_->forward(gallery_images));
    }
    timer.start(Phase::kHead);
    return head_->pass(p, probe_labels, g, gallery_labels, rollback, &stats);
  }

  const Config& config_;
  model::Backbone& probe_;
  comm::Communicator& comm_;
  std::shared_ptr<model::Backbone> gallery_;
  std::unique_ptr<head::FfcHead> head_;
  int64_t evictions_ = 0;
};

}  // namespace

std::unique_ptr<Method> make_ffc_method(const Config& config, model::Backbone& probe,
                                        comm::Communicator& comm, int64_t gallery_rows_per_rank) {
  return std::make_unique<FfcMethod>(config, probe, comm, gallery_rows_per_rank);
}

}  // namespace ffc::train
