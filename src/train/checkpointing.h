#pragma once
// Saving and resuming the whole training state (docs/checkpoint-format.md): backbone, optimiser,
// the method's head (in global layout), the step (from which the schedule, the samplers and the
// data order follow), the configuration and the last metrics.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "common/config.h"
#include "common/input_norm.h"
#include "data/sampler.h"

namespace ffc::model {
class Backbone;
}

namespace ffc::train {

class LossScaler;
class Method;
class Sgd;

struct TrainingState {
  const Config* config = nullptr;
  comm::Communicator* comm = nullptr;
  model::Backbone* probe = nullptr;
  Method* method = nullptr;
  Sgd* sgd = nullptr;
  const data::BatchPlanner* planner = nullptr;
  LossScaler* scaler = nullptr;  // float16 loss scaling (optional)
  InputNorm input_norm;          // the network's input normalisation (recorded, checked)
  std::string last_metrics;      // the last metrics.jsonl record
  std::string hosts;             // where the ranks run: "n1:0-1 n2:2-3" (comm::host_layout)
};

// <output>/checkpoints
std::string checkpoint_dir(const Config& config);

// Every tensor a checkpoint holds, by name: the probe's weights and buffers ("probe/..."), the
// optimiser's momentum ("optimizer/momentum/..."), the method's state_tensors() (head, pool,
// gallery). The one list the finiteness check before a save and the trainer's placement check
// read.
std::vector<std::pair<std::string, at::Tensor>> state_tensors(model::Backbone& probe, Sgd& sgd,
                                                              Method& method);

// Collective: writes the checkpoint of the state after `step` steps, commits it atomically and
// keeps the newest save_keep. Returns its path. A state that is not finite is never written
// (AgreedError naming the tensor; `latest` and the earlier checkpoints stay as they are). A write
// that fails on any rank (a full disk, an I/O error) removes the partial file on every rank and
// then, with save_failure stop, throws AgreedError (exit status 1); with save_failure warn, logs
// the error and returns "" so that training continues.
std::string save_checkpoint(const TrainingState& state, int64_t step);

// Collective: resume = "auto" (the newest valid checkpoint of the output folder, skipping corrupt
// or incomplete ones with a warning; none: start afresh) or a checkpoint path (an error if it
// cannot be loaded). Returns the step to continue from (0 when starting afresh), remapped when the
// checkpoint was written with another number of ranks or batch size.
int64_t resume_training(const TrainingState& state, const std::string& resume);

// The configuration a run resumed with `resume` trains with: figures left to their automatic
// value that the checkpoint fixed (today the FFC pool size, which depends on the number of ranks
// when automatic) take the checkpoint's value, so that resuming on another number of ranks keeps
// the pool. Reads the attributes of the newest candidate only; everything else is unchanged.
Config with_resumed_defaults(const Config& config, const std::string& resume);

// Throws ConfigError listing every model or data figure in which the checkpoint at `path`
// differs from `config` (method, network, embedding size, image size, classes, pool size) or from
// the run's input normalisation (files without one were trained with ffc's).
void check_compatible(const std::string& path, const Config& config, const InputNorm& norm,
                      const std::vector<std::pair<std::string, int64_t>>& method_attributes);

}  // namespace ffc::train
