#pragma once
// A training method: what one step computes between the batch and the loss, behind one interface
// so that FFC and the baselines share the trainer (data, backbone, optimiser, logging,
// checkpoints, evaluation).

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "common/config.h"
#include "data/loader.h"
#include "train/metrics.h"

namespace ffc::model {
class Backbone;
}
namespace ffc::ckpt {
class CheckpointWriter;
class CheckpointReader;
}  // namespace ffc::ckpt

namespace ffc::train {

struct StepStats {
  at::Tensor loss;             // the objective's value, the same on every rank (a device scalar)
  int64_t probe_images = 0;    // images through the trained network, this rank
  int64_t gallery_images = 0;  // images through a second network (FFC's gallery net)
  StepFigures figures;         // method-specific figures for metrics.jsonl and the progress line
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // One line about the head for the start-up log.
  virtual std::string describe() const = 0;
  // The forward of one step: returns the scalar to backpropagate. Backbone gradients of that
  // scalar are partial sums over ranks (the trainer all-reduces them with a sum). The batch's
  // images are on comm.device(), its labels on the host. Nothing in it may wait for the device.
  virtual at::Tensor forward(const data::Batch& batch, PhaseTimer& timer, StepStats& stats) = 0;
  // The method's part of the progress line, from the resolved figures of its last step.
  virtual std::string progress(const nlohmann::ordered_json& /*figures*/) const { return {}; }
  // Called after the backbone's optimiser step with the step's learning rate (heads that update
  // their own weights do it here). The gradients the head computed carry the loss scale of mixed
  // precision: multiply them by inv_grad_scale first (1 without loss scaling). Not called for a
  // step that was skipped (non-finite gradients).
  virtual void after_step(double /*lr*/, double /*inv_grad_scale*/) {}
  // A second network the method trains alongside (FFC's gallery net), or nullptr.
  virtual model::Backbone* gallery_network() { return nullptr; }
  // Head parameters replicated on every rank and trained with the backbone (Virtual FC's rows):
  // the trainer adds them to its optimiser and to the gradient all-reduce.
  virtual std::vector<std::pair<std::string, at::Tensor>> replicated_parameters() { return {}; }
  // The method's own state in a checkpoint (collective: every rank calls), in global layout
  // under "head/" (and "gallery/"), so that it loads on any number of ranks.
  virtual void save_state(ckpt::CheckpointWriter& writer) = 0;
  virtual void load_state(const ckpt::CheckpointReader& reader) = 0;
  // The method's own tensors (head weights and momentum, pool rows, the gallery's parameters),
  // by name: they live on comm.device(); a checkpoint is written only when they are finite.
  virtual std::vector<std::pair<std::string, at::Tensor>> state_tensors() = 0;
  // The head's workspaces (logits, sampled rows): with state_tensors() everything of the method
  // a step touches, for the trainer's placement check.
  virtual std::vector<std::pair<std::string, at::Tensor>> workspaces() { return {}; }
  // Figures of the method for the checkpoint's root attributes and checks (e.g. "pool_size").
  virtual std::vector<std::pair<std::string, int64_t>> checkpoint_attributes() const { return {}; }
};

// FFC: probe net P (the trainer's backbone), gallery net G (its EMA), the dynamic class pool.
std::unique_ptr<Method> make_ffc_method(const Config& config, model::Backbone& probe,
                                        comm::Communicator& comm, int64_t gallery_rows_per_rank);
// insightface's model-parallel FC (sample_rate 1) or Partial FC (sample_rate < 1).
std::unique_ptr<Method> make_classifier_method(const Config& config, model::Backbone& backbone,
                                               comm::Communicator& comm);
// Virtual FC.
std::unique_ptr<Method> make_vfc_method(const Config& config, model::Backbone& backbone,
                                        comm::Communicator& comm);
// The method of config.method.
std::unique_ptr<Method> make_method(const Config& config, model::Backbone& backbone,
                                    comm::Communicator& comm, int64_t gallery_rows_per_rank);

}  // namespace ffc::train
