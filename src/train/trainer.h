#pragma once
// The training loop shared by every method: data, backbone, method (head), SGD with its
// schedule, bucketed gradient all-reduce, per-phase timings, progress lines, metrics.jsonl and
// the final evaluation.

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "common/config.h"
#include "eval/verification.h"

namespace ffc::train {

struct TrainResult {
  int64_t steps = 0;  // steps run
  double final_loss = 0;
  double images_per_second = 0;        // probe + gallery images, all ranks, last window
  double probe_images_per_second = 0;  // probe images only
  bool evaluated = false;
  eval::VerificationResult verification;
  bool stopped_by_signal = false;  // saved and stopped early on SIGUSR1/SIGTERM
};

// Runs training as configured; every rank calls it. Writes <output>/config.yaml,
// <output>/metrics.jsonl, <output>/train.log (rank 0) and checkpoints in <output>/checkpoints
// (every save_every steps, at the end, and on SIGUSR1/SIGTERM). `resume`: "" (start afresh),
// "auto" (the newest valid checkpoint of the output folder, if any) or a checkpoint path.
TrainResult train(const Config& config, comm::Communicator& comm, const std::string& resume = "");

}  // namespace ffc::train
