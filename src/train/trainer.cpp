#include "train/trainer.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "ckpt/checkpoint.h"
#include "comm/grad_allreduce.h"
#include "comm/timed_communicator.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/memory.h"
#include "common/signals.h"
#include "common/version.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "eval/embed.h"
#include "eval/validation.h"
#include "model/backbone.h"
#include "train/checkpointing.h"
#include "train/method.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace ffc::train {
namespace {

constexpr int kPhases = static_cast<int>(Phase::kCount);

void prepare_output(const Config& config, int rank, bool resuming) {
  if (rank != 0) {
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(config.output, ec);
  if (ec) {
    throw IoError(config.output + ": cannot create the output folder (" + ec.message() +
                  "); set output to a writable path");
  }
  std::ofstream(config.output + "/config.yaml") << dump_config(config);
  add_log_file(config.output + "/train.log", /*append=*/resuming);
}

// Every rank starts from rank 0's weights (they are equal anyway: same seed).
void broadcast_module(model::Backbone& net, comm::Communicator& comm) {
  at::NoGradGuard no_grad;
  for (auto& p : net.parameters()) {
    at::Tensor t = p.data();
    comm.broadcast(t, 0);
  }
  for (auto& b : net.buffers()) {
    at::Tensor t = b.data();
    comm.broadcast(t, 0);
  }
}

std::string phase_text(const std::array<double, kPhases>& per_step) {
  std::string s;
  for (int i = 0; i < kPhases; ++i) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "%s%s %.0fms", i ? " " : "", phase_name(static_cast<Phase>(i)),
                  1000 * per_step[i]);
    s += buf;
  }
  return s;
}

void evaluate(const Config& config, Method& method, model::Backbone& probe,
              comm::Communicator& comm, int64_t step, MetricsWriter& metrics, TrainResult& result) {
  const bool synthetic = config.rec == "synthetic";
  if (config.val_targets.empty() &&
      (!synthetic || (config.val_pairs <= 0 && config.val_identities <= 0))) {
    spdlog::info(
        "evaluation: skipped (no val_targets; held-out pairs and the long-tail breakdown exist "
        "for rec: synthetic)");
    return;
  }
  model::Backbone* net = &probe;
  if (config.eval_net == "gallery") {
    net = method.gallery_network();
    FFC_CHECK(net != nullptr, "eval_net: gallery, but method " + method.name() + " has none");
  }
  spdlog::info("evaluation at step {} of the {} net", step, config.eval_net);
  const eval::ValidationResults v =
      eval::run_validation(config, *net, comm, step, [&](const nlohmann::ordered_json& record) {
        nlohmann::ordered_json rec = record;
        rec["net"] = config.eval_net;
        metrics.write(rec);
      });
  // The run's headline: the held-out pairs, else the first verification set.
  for (const auto& r : v.verification) {
    if (r.name == "heldout" || &r == &v.verification.front()) {
      result.verification = r.result;
      result.evaluated = true;
    }
  }
}

}  // namespace

TrainResult train(const Config& requested, comm::Communicator& world, const std::string& resume) {
  const Config config = with_resumed_defaults(requested, resume);
  comm::TimedCommunicator comm(world);
  const int rank = comm.rank();
  const int world_size = comm.size();
  // A resumed run appends to its log and metrics; a new one starts them afresh.
  const bool resuming =
      !resume.empty() &&
      (resume != "auto" || !ckpt::resume_candidates(checkpoint_dir(config)).empty());
  prepare_output(config, rank, resuming);
  comm.barrier();
  MetricsWriter metrics(config.output + "/metrics.jsonl", rank == 0, /*append=*/resuming);
  install_stop_signal_handlers();
  spdlog::info("ffc {} (git {}), method {}, {} rank(s); output {}", project_version(),
               git_revision(), config.method, world_size, config.output);

  // Data.
  const auto source = data::open_dataset(config);
  const auto planner = data::make_planner(config, *source, rank, world_size);
  data::LoaderOptions lo;
  lo.threads = static_cast<int>(config.num_workers);
  lo.prefetch = static_cast<int>(config.prefetch);
  data::Loader loader(source, planner, lo);
  spdlog::info("data: {}", source->describe());

  // Backbone and method.
  at::manual_seed(static_cast<uint64_t>(config.seed));
  const model::BackboneSpec spec = model::spec_from_config(config);
  const std::shared_ptr<model::Backbone> probe = model::make_backbone(spec);
  broadcast_module(*probe, comm);
  const std::unique_ptr<Method> method =
      make_method(config, *probe, comm, planner->view_rows().back());
  spdlog::info("network: {}, embedding {}, image {}x{}", spec.name, spec.embedding_size,
               spec.image_size, spec.image_size);
  spdlog::info("head: {}", method->describe());

  // Optimiser, schedule, gradient all-reduce.
  std::vector<at::Tensor> params;
  std::vector<std::string> names;
  for (const auto& item : probe->named_parameters()) {
    names.push_back(item.key());
    params.push_back(item.value());
  }
  for (auto& [name, tensor] : method->replicated_parameters()) {
    names.push_back(name);
    params.push_back(tensor);
  }
  SgdOptions so;
  so.momentum = config.momentum;
  so.weight_decay = config.weight_decay;
  so.nesterov = config.nesterov;
  Sgd sgd(params, names, so);
  comm::GradientAllReducer reducer(sgd.params(), config.grad_bucket_mb << 20);
  ScheduleSpec sched;
  sched.kind = config.lr_schedule;
  sched.base_lr = config.lr;
  sched.steps_per_epoch = planner->steps_per_epoch();
  sched.total_steps = config.num_epoch * sched.steps_per_epoch;
  sched.warmup_steps = config.warmup_epoch * sched.steps_per_epoch;
  sched.milestones_epochs = config.lr_steps;
  const int64_t end =
      config.max_steps > 0 ? std::min(config.max_steps, sched.total_steps) : sched.total_steps;
  spdlog::info("schedule: {} epochs x {} steps = {} steps{}, lr {} ({}), batch {} per rank",
               config.num_epoch, sched.steps_per_epoch, sched.total_steps,
               end < sched.total_steps ? " (stopping at " + std::to_string(end) + ")" : "",
               config.lr, config.lr_schedule, config.batch_size);

  TrainingState state;
  state.config = &config;
  state.comm = &comm;
  state.probe = probe.get();
  state.method = method.get();
  state.sgd = &sgd;
  state.planner = planner.get();
  const int64_t first_step = resume_training(state, resume);

  TrainResult result;
  result.steps = first_step;
  int64_t saved_at = -1;
  PhaseTimer timer;
  auto window_start = std::chrono::steady_clock::now();
  const auto run_start = window_start;
  int64_t window_steps = 0;
  int64_t window_probe = 0;
  int64_t window_gallery = 0;
  std::array<double, kPhases> window_phases{};
  for (int64_t step = first_step; step < end; ++step) {
    timer.start(Phase::kData);
    const data::Batch& batch = loader.get(step);
    StepStats stats;
    sgd.zero_grad();
    comm.take_seconds();
    const at::Tensor loss = method->forward(batch, timer, stats);
    const double coll_forward = comm.take_seconds();
    timer.start(Phase::kBackward);
    loss.backward();
    const double coll_backward = comm.take_seconds();
    timer.start(Phase::kComm);
    reducer.all_reduce_sum(comm);
    timer.start(Phase::kOptimizer);
    if (config.clip_grad_norm > 0) {
      clip_grad_norm(sgd.params(), config.clip_grad_norm);
    }
    const double lr = learning_rate(sched, step);
    sgd.step(lr);
    method->after_step(lr);
    comm.take_seconds();  // the all-reduce is in the comm phase already
    auto phases = timer.take();
    // Collectives inside the head's forward and the backward count as comm, not there.
    phases[static_cast<int>(Phase::kHead)] -= coll_forward;
    phases[static_cast<int>(Phase::kBackward)] -= coll_backward;
    phases[static_cast<int>(Phase::kComm)] += coll_forward + coll_backward;
    for (int i = 0; i < kPhases; ++i) {
      window_phases[i] += phases[i];
    }
    ++window_steps;
    window_probe += stats.probe_images;
    window_gallery += stats.gallery_images;
    result.steps = step + 1;
    result.final_loss = stats.loss;

    if ((step + 1) % config.frequent == 0 || step + 1 == end) {
      const auto now = std::chrono::steady_clock::now();
      const double seconds = std::chrono::duration<double>(now - window_start).count();
      const double probe_rate = window_probe * world_size / seconds;
      const double all_rate = (window_probe + window_gallery) * world_size / seconds;
      std::array<double, kPhases> per_step{};
      for (int i = 0; i < kPhases; ++i) {
        per_step[i] = window_phases[i] / window_steps;
      }
      const double eta = (end - step - 1) * seconds / window_steps;
      const int64_t epoch = step / sched.steps_per_epoch;
      spdlog::info(
          "epoch {}/{} step {}/{} | {:.0f} img/s ({:.0f} probe) | loss {:.4f} {} | lr "
          "{:.4g} | {} | eta {}",
          epoch + 1, config.num_epoch, step + 1, end, all_rate, probe_rate, stats.loss,
          stats.progress, lr, phase_text(per_step), format_duration(eta));
      nlohmann::ordered_json rec;
      rec["step"] = step + 1;
      rec["epoch"] = epoch;
      rec["loss"] = stats.loss;
      for (const auto& [k, v] : stats.fields.items()) {
        rec[k] = v;
      }
      rec["lr"] = lr;
      rec["images_per_s"] = all_rate;
      rec["probe_images_per_s"] = probe_rate;
      nlohmann::ordered_json ph;
      for (int i = 0; i < kPhases; ++i) {
        ph[phase_name(static_cast<Phase>(i))] = 1000 * per_step[i];
      }
      rec["phase_ms"] = ph;
      // The largest peak RSS of any rank so far (one small all-reduce per progress line).
      at::Tensor rss =
          at::full({1}, static_cast<double>(peak_rss_bytes()) / (1 << 20), at::kDouble);
      comm.all_reduce(rss, comm::ReduceOp::kMax);
      rec["peak_rss_mib"] = rss.item<double>();
      rec["elapsed_s"] = std::chrono::duration<double>(now - run_start).count();
      metrics.write(rec);
      state.last_metrics = rec.dump();
      result.images_per_second = all_rate;
      result.probe_images_per_second = probe_rate;
      window_start = now;
      window_steps = window_probe = window_gallery = 0;
      window_phases.fill(0.0);
    }
    if (config.save_every > 0 && (step + 1) % config.save_every == 0) {
      save_checkpoint(state, step + 1);
      saved_at = step + 1;
    }
    // Evaluation every `verbose` steps (and at the end, below).
    if (config.verbose > 0 && (step + 1) % config.verbose == 0 && step + 1 < end) {
      evaluate(config, *method, *probe, comm, step + 1, metrics, result);
    }
    // SIGUSR1/SIGTERM on any rank: all ranks stop here, at the same step, save and exit with
    // status 3 (job scripts requeue on it).
    if (comm::stop_requested(comm)) {
      spdlog::warn("stop requested by signal {} at step {}: saving and exiting", last_stop_signal(),
                   step + 1);
      if (saved_at != step + 1) {
        save_checkpoint(state, step + 1);
      }
      result.stopped_by_signal = true;
      return result;
    }
  }
  if (config.save_last && saved_at != result.steps) {
    save_checkpoint(state, result.steps);
  }
  evaluate(config, *method, *probe, comm, result.steps, metrics, result);
  spdlog::info(
      "done: {} steps in {}; log {}/train.log, metrics {}/metrics.jsonl", result.steps,
      format_duration(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count()),
      config.output, config.output);
  return result;
}

}  // namespace ffc::train
