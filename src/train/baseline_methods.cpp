// The baselines in FFC's trainer: insightface's model-parallel FC and Partial FC, and Virtual FC.

#include <ATen/ATen.h>

#include <sstream>

#include "ckpt/checkpoint.h"
#include "common/error.h"
#include "head/classifier_head.h"
#include "head/vfc_head.h"
#include "model/backbone.h"
#include "train/method.h"

namespace ffc::train {
namespace {

class ClassifierMethod final : public Method {
 public:
  ClassifierMethod(const Config& config, model::Backbone& backbone, comm::Communicator& comm)
      : config_(config), backbone_(backbone) {
    if (config.num_classes <= 0) {
      throw ConfigError("method " + config.method + " needs num_classes");
    }
    head::ClassifierOptions o;
    o.num_classes = config.num_classes;
    o.dim = config.embedding_size;
    o.partial = config.method == "pfc";
    o.sample_rate = o.partial ? config.sample_rate : 1.0;
    o.margin = head::margin_from_config(config);
    o.seed = static_cast<uint64_t>(config.seed);
    o.momentum = config.momentum;
    o.weight_decay = config.weight_decay;
    o.nesterov = config.nesterov;
    head_ = std::make_unique<head::ClassifierHead>(o, comm);
  }

  std::string name() const override { return config_.method; }

  std::string describe() const override {
    const auto& o = head_->options();
    std::ostringstream s;
    s << (o.partial ? "Partial FC (sample rate " : "model-parallel FC (")
      << (o.partial ? std::to_string(o.sample_rate).substr(0, 5) + "), " : "") << o.num_classes
      << " classes, " << head_->num_local() << " on this rank from class " << head_->class_start()
      << ", weight + momentum " << (head_->num_local() * o.dim * 8 >> 20) << " MiB, "
      << o.margin.describe();
    return s.str();
  }

  at::Tensor forward(const data::Batch& batch, PhaseTimer& timer, StepStats& stats) override {
    timer.start(Phase::kProbeForward);
    const at::Tensor features = backbone_.forward(batch.images.at(0));
    timer.start(Phase::kHead);
    head::ClassifierStats hs;
    at::Tensor loss = head_->forward(features, batch.labels.at(0), &hs).sum();
    stats.loss = hs.loss;
    stats.probe_images = batch.images.at(0).size(0);
    stats.figures.add("sampled_classes", hs.sampled);
    return loss;
  }

  std::string progress(const nlohmann::ordered_json& f) const override {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "| classes scored %lld on rank 0",
                  static_cast<long long>(f.value("sampled_classes", int64_t{0})));
    return buf;
  }

  void after_step(double lr, double inv_grad_scale) override { head_->step(lr, inv_grad_scale); }

  std::vector<std::pair<std::string, at::Tensor>> state_tensors() override {
    return {{"head/weight", head_->weight()}, {"head/momentum", head_->momentum()}};
  }

  std::vector<std::pair<std::string, at::Tensor>> workspaces() override {
    return head_->workspaces();
  }

  void save_state(ckpt::CheckpointWriter& w) override {
    // Global layout: rank r writes its block of rows; any number of ranks reads it back.
    const int64_t n = head_->options().num_classes;
    w.rows("head/weight", head_->weight(), n, head_->class_start());
    w.rows("head/momentum", head_->momentum(), n, head_->class_start());
    w.attribute("head_steps", head_->steps());
  }

  void load_state(const ckpt::CheckpointReader& r) override {
    r.read_rows_into("head/weight", head_->weight(), head_->class_start());
    r.read_rows_into("head/momentum", head_->momentum(), head_->class_start());
    head_->set_steps(r.int_attribute("head_steps"));
  }

 private:
  const Config& config_;
  model::Backbone& backbone_;
  std::unique_ptr<head::ClassifierHead> head_;
};

class VfcMethod final : public Method {
 public:
  VfcMethod(const Config& config, model::Backbone& backbone, comm::Communicator& comm)
      : config_(config), backbone_(backbone) {
    head::VfcOptions o;
    o.rows = config.vfc_rows;
    o.dim = config.embedding_size;
    o.margin = head::margin_from_config(config);
    o.seed = static_cast<uint64_t>(config.seed);
    head_ = std::make_unique<head::VfcHead>(o, comm);
  }

  std::string name() const override { return "vfc"; }

  std::string describe() const override {
    std::ostringstream s;
    s << "Virtual FC: " << head_->options().rows << " virtual rows (identity y -> row y mod "
      << head_->options().rows << "), " << config_.images_per_identity
      << " images per identity per batch, " << head_->options().margin.describe();
    return s.str();
  }

  at::Tensor forward(const data::Batch& batch, PhaseTimer& timer, StepStats& stats) override {
    timer.start(Phase::kProbeForward);
    const at::Tensor features = backbone_.forward(batch.images.at(0));
    timer.start(Phase::kHead);
    head::VfcStats hs;
    at::Tensor loss = head_->forward(features, batch.labels.at(0), &hs);
    stats.loss = hs.loss;
    stats.probe_images = batch.images.at(0).size(0);
    stats.figures.add("identities", hs.identities);
    stats.figures.add("collisions", hs.collisions);
    return loss;
  }

  std::string progress(const nlohmann::ordered_json& f) const override {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "| identities %lld, collisions %lld",
                  static_cast<long long>(f.value("identities", int64_t{0})),
                  static_cast<long long>(f.value("collisions", int64_t{0})));
    return buf;
  }

  std::vector<std::pair<std::string, at::Tensor>> state_tensors() override {
    return {{"head/vfc/weight", head_->weight()}, {"head/vfc/saved", head_->saved_rows()}};
  }

  std::vector<std::pair<std::string, at::Tensor>> replicated_parameters() override {
    return {{"vfc.weight", head_->weight()}};
  }

  std::vector<std::pair<std::string, int64_t>> checkpoint_attributes() const override {
    return {{"vfc_rows", head_->options().rows}};
  }

  void save_state(ckpt::CheckpointWriter& w) override {
    w.replicated("head/vfc/weight", head_->weight());
    w.replicated("head/vfc/saved", head_->saved_rows());
    w.replicated("head/vfc/borrowed", at::tensor(head_->borrowed_rows(), at::kLong));
  }

  void load_state(const ckpt::CheckpointReader& r) override {
    r.read_into("head/vfc/weight", head_->weight());
    r.read_into("head/vfc/saved", head_->saved_rows());
    const at::Tensor b = r.read("head/vfc/borrowed").contiguous();
    head_->set_borrowed_rows(
        std::vector<int64_t>(b.data_ptr<int64_t>(), b.data_ptr<int64_t>() + b.numel()));
  }

 private:
  const Config& config_;
  model::Backbone& backbone_;
  std::unique_ptr<head::VfcHead> head_;
};

// No head: the loss is the embeddings' mean square (rank 0's share is logged), so that a step is
// the backbone's forward, backward, gradient all-reduce and optimiser alone, on the same data path
// as the methods. For benchmarks: the images/s every head is measured against (its ceiling); it
// learns nothing.
class BackboneOnlyMethod final : public Method {
 public:
  BackboneOnlyMethod(model::Backbone& backbone, int world) : backbone_(backbone), world_(world) {}

  std::string name() const override { return "backbone"; }

  std::string describe() const override {
    return "none (method backbone: the backbone alone, for benchmarks; it learns nothing)";
  }

  at::Tensor forward(const data::Batch& batch, PhaseTimer& timer, StepStats& stats) override {
    timer.start(Phase::kProbeForward);
    const at::Tensor features = backbone_.forward(batch.images.at(0));
    timer.start(Phase::kHead);
    // This rank's share of the global batch's mean (the trainer sums the ranks' gradients).
    at::Tensor loss = features.to(at::kFloat).square().mean() / world_;
    stats.loss = loss.detach();
    stats.probe_images = batch.images.at(0).size(0);
    return loss;
  }

  std::vector<std::pair<std::string, at::Tensor>> state_tensors() override { return {}; }
  void save_state(ckpt::CheckpointWriter& /*w*/) override {}
  void load_state(const ckpt::CheckpointReader& /*r*/) override {}

 private:
  model::Backbone& backbone_;
  int world_;
};

}  // namespace

std::unique_ptr<Method> make_classifier_method(const Config& config, model::Backbone& backbone,
                                               comm::Communicator& comm) {
  return std::make_unique<ClassifierMethod>(config, backbone, comm);
}

std::unique_ptr<Method> make_vfc_method(const Config& config, model::Backbone& backbone,
                                        comm::Communicator& comm) {
  return std::make_unique<VfcMethod>(config, backbone, comm);
}

std::unique_ptr<Method> make_method(const Config& config, model::Backbone& backbone,
                                    comm::Communicator& comm, int64_t gallery_rows_per_rank) {
  if (config.method == "ffc") {
    return make_ffc_method(config, backbone, comm, gallery_rows_per_rank);
  }
  if (config.method == "vfc") {
    return make_vfc_method(config, backbone, comm);
  }
  if (config.method == "backbone") {
    return std::make_unique<BackboneOnlyMethod>(backbone, comm.size());
  }
  return make_classifier_method(config, backbone, comm);
}

}  // namespace ffc::train
