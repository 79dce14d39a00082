#include "train/trainer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "ckpt/checkpoint.h"
#include "comm/device.h"
#include "comm/grad_allreduce.h"
#include "comm/timed_communicator.h"
#include "comm/watchdog.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/memory.h"
#include "common/metrics_record.h"
#include "common/signals.h"
#include "common/version.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "eval/embed.h"
#include "eval/validation.h"
#include "h5/input_norm.h"
#include "h5/state_dict.h"
#include "model/backbone.h"
#include "model/export.h"
#include "train/checkpointing.h"
#include "train/loss_scaler.h"
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
  write_file_atomically(config.output + "/config.yaml", dump_config(config));
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

// The run's input normalisation: input_norm, where auto takes the one init_backbone records.
InputNorm run_input_norm(const Config& config) {
  std::optional<InputNorm> from_init;
  if (!config.init_backbone.empty()) {
    from_init = h5::recorded_input_norm(h5::read_root_attributes(config.init_backbone),
                                        config.init_backbone)
                    .value_or(legacy_input_norm());
  }
  const InputNorm norm = resolve_input_norm(config.input_norm, from_init);
  if (from_init && from_init->name != norm.name) {
    spdlog::warn(
        "input_norm {}: {} was trained with {}; fine-tuning with another input "
        "normalisation starts from a network that sees shifted inputs",
        norm.name, config.init_backbone, describe(*from_init));
  }
  return norm;
}

// `epoch` (fractional, of the schedule's epochs) and `train_s` (seconds of training so far, the
// evaluations left out) go into every record, for curves against epoch and time.
void evaluate(const Config& config, const InputNorm& norm, Method& method, model::Backbone& probe,
              comm::Communicator& comm, int64_t step, double epoch, double train_s,
              MetricsWriter& metrics, TrainResult& result) {
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
  const eval::ValidationResults v = eval::run_validation(
      config, *net, comm, step,
      [&](const nlohmann::ordered_json& record) {
        nlohmann::ordered_json rec = record;
        metrics::add_eval_context(rec, config.eval_net, epoch, train_s);
        metrics.write(rec);
      },
      norm);
  // The run's headline: the held-out pairs, else the first verification set.
  for (const auto& r : v.verification) {
    if (r.name == "heldout" || &r == &v.verification.front()) {
      result.verification = r.result;
      result.evaluated = true;
    }
  }
}

// What every rank agrees on once per step, between the gradient all-reduce and the optimiser:
// a stop signal on any rank, and whether the loss or the gradients are finite. The one host read
// of device values a step makes (two scalars), and one small host collective. On the steps that
// end a progress window the same collective carries the ranks' peak memory (the largest of any
// rank), so that a progress line costs no collective of its own.
struct StepHealth {
  bool stop = false;
  bool bad_loss = false;
  bool bad_grad = false;
  double loss = 0;
  double grad_norm = 0;
  bool memory_sampled = false;
  double peak_rss_mib = 0;
  double peak_private_mib = 0;
};

StepHealth agree(comm::Communicator& comm, const at::Tensor& loss, const at::Tensor& grad_sumsq,
                 bool sample_memory) {
  const at::Tensor values =
      at::stack({loss.detach().to(at::kDouble).reshape({}), grad_sumsq.to(loss.device())}).cpu();
  StepHealth h;
  h.loss = values[0].item<double>();
  const double sumsq = values[1].item<double>();
  h.grad_norm = std::sqrt(sumsq);
  constexpr double kMiB = 1 << 20;
  double flags[5] = {stop_signal_received() ? 1.0 : 0.0, std::isfinite(h.loss) ? 0.0 : 1.0,
                     std::isfinite(sumsq) ? 0.0 : 1.0,
                     sample_memory ? static_cast<double>(peak_rss_bytes()) / kMiB : 0.0,
                     // Private (anonymous) memory only: what a rank costs beyond the page cache it
                     // shares with the other ranks of its node (the mapped dataset index).
                     sample_memory ? static_cast<double>(peak_private_rss_bytes()) / kMiB : 0.0};
  at::Tensor t = at::from_blob(flags, {5}, at::kDouble);
  comm.host().all_reduce(t, comm::ReduceOp::kMax);
  h.stop = flags[0] > 0;
  h.bad_loss = flags[1] > 0;
  h.bad_grad = flags[2] > 0;
  h.memory_sampled = sample_memory;
  h.peak_rss_mib = flags[3];
  h.peak_private_mib = flags[4];
  return h;
}

// The first parameter (by name) whose gradient is not finite: for the error message only.
std::string first_nonfinite_gradient(const Sgd& sgd) {
  for (size_t i = 0; i < sgd.params().size(); ++i) {
    const at::Tensor& g = sgd.params()[i].grad();
    if (g.defined() && !at::isfinite(g).all().item<bool>()) {
      return sgd.names()[i];
    }
  }
  return "a gradient of the head";
}

// After the first step of a run: every tensor a step touches is on the communicator's device
// (host-side bookkeeping excepted: labels, the pool's metadata). Metadata only, no device access.
void check_placement(at::Device device, model::Backbone& probe, Method& method, Sgd& sgd,
                     const comm::GradientAllReducer& reducer, const data::Batch& batch,
                     const at::Tensor& loss) {
  // The checkpoint's tensors (checkpointing.h), then what only a step has.
  std::vector<std::pair<std::string, at::Tensor>> all = state_tensors(probe, sgd, method);
  for (const auto& item : probe.named_parameters()) {
    all.emplace_back("probe/" + item.key() + ".grad", item.value().grad());
  }
  for (int64_t i = 0; i < reducer.num_buckets(); ++i) {
    all.emplace_back("gradient bucket " + std::to_string(i), reducer.bucket(i));
  }
  for (auto& item : method.workspaces()) {
    all.push_back(std::move(item));
  }
  for (size_t v = 0; v < batch.images.size(); ++v) {
    all.emplace_back("batch images of view " + std::to_string(v), batch.images[v]);
  }
  all.emplace_back("loss", loss);
  for (const auto& [name, t] : all) {
    if (t.defined() && t.device() != device) {
      throw Error("placement: " + name + " is on " + t.device().str() + ", not on " + device.str() +
                  " where the step runs (a bug: please report it)");
    }
  }
}

// Fault injection for the tests of the non-finite guard and of the float16 loss scaler
// (tests/train/gpu_train_test.sh): FFC_TEST_NONFINITE_GRAD_STEP=N makes the first gradient of
// step N (0-based) infinite after backward, as a float16 overflow would.
int64_t planted_fault_step() {
  static const int64_t step = [] {
    const char* v = std::getenv("FFC_TEST_NONFINITE_GRAD_STEP");
    return v != nullptr && *v != '\0' ? std::atoll(v) : int64_t{-1};
  }();
  return step;
}

// The progress line and metrics.jsonl record of a window of `frequent` steps.
class ProgressWindow {
 public:
  ProgressWindow(const Config& config, int world, int64_t end, int64_t steps_per_epoch)
      : config_(config),
        world_(world),
        end_(end),
        steps_per_epoch_(steps_per_epoch),
        start_(Clock::now()),
        run_start_(start_) {}

  void add(const std::array<double, kPhases>& phases, const StepStats& stats) {
    for (int i = 0; i < kPhases; ++i) {
      phases_[i] += phases[i];
    }
    ++steps_;
    probe_ += stats.probe_images;
    gallery_ += stats.gallery_images;
  }

  // The window's phase times from the device's clock instead of the host's (PhaseTimer).
  void use_device_phases(const std::array<double, kPhases>& totals) {
    phases_ = totals;
    clock_ = "device";
  }

  // Logs the line and writes the record of the window ending after `step`; starts a new window.
  nlohmann::ordered_json report(int64_t step, double lr, const StepStats& last,
                                const StepFigures& trainer_figures, const StepHealth& health,
                                const Method& method, comm::Communicator& comm,
                                MetricsWriter& metrics, TrainResult& result) {
    const auto now = Clock::now();
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double probe_rate = probe_ * world_ / seconds;
    const double all_rate = (probe_ + gallery_) * world_ / seconds;
    std::array<double, kPhases> per_step{};
    for (int i = 0; i < kPhases; ++i) {
      per_step[i] = phases_[i] / steps_;
    }
    const double eta = (end_ - step - 1) * seconds / steps_;
    const int64_t epoch = step / steps_per_epoch_;
    // One copy to the host of the step's device figures.
    StepFigures all;
    all.add("loss", last.loss);
    all.append(last.figures);
    all.append(trainer_figures);
    const nlohmann::ordered_json figures = all.resolve();
    const double loss = figures.value("loss", 0.0);
    spdlog::info(
        "epoch {}/{} step {}/{} | {:.0f} img/s ({:.0f} probe) | loss {:.4f} {} | lr "
        "{:.4g} | {} | eta {}",
        epoch + 1, config_.num_epoch, step + 1, end_, all_rate, probe_rate, loss,
        method.progress(figures), lr, phase_text(per_step), format_duration(eta));
    metrics::Progress p;
    p.step = step + 1;
    p.epoch = epoch;
    p.figures = figures;
    p.lr = lr;
    p.images_per_s = all_rate;
    p.probe_images_per_s = probe_rate;
    for (int i = 0; i < kPhases; ++i) {
      p.phase_ms.emplace_back(phase_name(static_cast<Phase>(i)), 1000 * per_step[i]);
    }
    p.phase_clock = clock_;
    // The largest peak memory of any rank so far, from the step's own collective (agree); a
    // window that ends early (a stop) reads it with one collective here.
    if (health.memory_sampled) {
      p.peak_rss_mib = health.peak_rss_mib;
      p.peak_private_mib = health.peak_private_mib;
    } else {
      double mem[2] = {static_cast<double>(peak_rss_bytes()) / (1 << 20),
                       static_cast<double>(peak_private_rss_bytes()) / (1 << 20)};
      at::Tensor t = at::from_blob(mem, {2}, at::kDouble);
      comm.host().all_reduce(t, comm::ReduceOp::kMax);
      p.peak_rss_mib = mem[0];
      p.peak_private_mib = mem[1];
    }
    p.elapsed_s = std::chrono::duration<double>(now - run_start_).count();
    const nlohmann::ordered_json rec = metrics::to_json(p);
    metrics.write(rec);
    result.final_loss = loss;
    result.images_per_second = all_rate;
    result.probe_images_per_second = probe_rate;
    start_ = now;
    steps_ = probe_ = gallery_ = 0;
    phases_.fill(0.0);
    clock_ = host_clock();
    return rec;
  }

  double elapsed() const {
    return std::chrono::duration<double>(Clock::now() - run_start_).count();
  }

  // Seconds spent outside training (an evaluation) leave the window's rate and train_seconds.
  void exclude(double seconds) {
    start_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    excluded_ += seconds;
  }
  double train_seconds() const { return elapsed() - excluded_; }

 private:
  using Clock = std::chrono::steady_clock;
  const Config& config_;
  int world_;
  int64_t end_;
  int64_t steps_per_epoch_;
  Clock::time_point start_;
  Clock::time_point run_start_;
  double excluded_ = 0;
  int64_t steps_ = 0;
  int64_t probe_ = 0;
  int64_t gallery_ = 0;
  std::array<double, kPhases> phases_{};
  // Whose clock phases_ is on: the host's, the synchronised host's (sync_phases), the device's.
  const char* host_clock() const { return config_.sync_phases ? "synchronised" : "host"; }
  std::string clock_ = host_clock();
};

// The training run: setup in the constructor, the loop in run(), one step in step().
class Trainer {
 public:
  Trainer(const Config& requested, comm::Communicator& world, const std::string& resume)
      : config_(with_resumed_defaults(requested, resume)),
        comm_(world),
        device_(comm_.device()),
        resuming_(!resume.empty() &&
                  (resume != "auto" || !ckpt::resume_candidates(checkpoint_dir(config_)).empty())),
        resume_(resume) {
    prepare_output(config_, comm_.rank(), resuming_);
    comm_.barrier();
    metrics_ = MetricsWriter(config_.output + "/metrics.jsonl", comm_.rank() == 0, resuming_);
    install_stop_signal_handlers();
    spdlog::info("ffc {} (git {}), method {}, {} rank(s) on {}; output {}", project_version(),
                 git_revision(), config_.method, comm_.size(), comm::describe_device(device_),
                 config_.output);
    norm_ = run_input_norm(config_);
    setup_data();
    setup_model();
    setup_optimiser();
  }

  TrainResult run();

 private:
  // Evaluates after `step` (every `verbose` steps, each epoch with eval_every_epoch, and at the
  // end), its time left out of the progress windows' rates and of train_s.
  void evaluate_now(int64_t step, TrainResult& result);
  enum class Outcome { kApplied, kSkipped, kStop };
  Outcome step(int64_t step, StepStats& stats, double& lr);
  // Whether step `s` ends a progress window (a progress line and metrics record after it).
  bool progress_step(int64_t s) const { return (s + 1) % config_.frequent == 0 || s + 1 == end_; }
  void setup_data();
  void setup_model();
  void setup_optimiser();
  // A non-finite step: skipped (the loss scaler's or the guard's) or the end of the run.
  Outcome handle_nonfinite(int64_t step, const StepHealth& health);
  std::string last_good_checkpoint() const;
  void plant_fault(int64_t step) {
    if (step == planted_fault_step() && !sgd_->params().empty()) {
      spdlog::warn("test fault: an infinite gradient planted at step {}", step);
      sgd_->params().front().mutable_grad().fill_(std::numeric_limits<float>::infinity());
    }
  }

  const Config config_;
  comm::TimedCommunicator comm_;
  const at::Device device_;
  const bool resuming_;
  const std::string resume_;
  InputNorm norm_;
  MetricsWriter metrics_;
  std::shared_ptr<const data::ImageSource> source_;
  std::shared_ptr<const data::BatchPlanner> planner_;
  std::unique_ptr<data::Loader> loader_;
  std::shared_ptr<model::Backbone> probe_;
  Config method_config_;  // config_ with num_classes from the data where it is 0 (methods keep it)
  std::unique_ptr<Method> method_;
  std::unique_ptr<Sgd> sgd_;
  std::unique_ptr<comm::GradientAllReducer> reducer_;
  std::unique_ptr<LossScaler> scaler_;
  ScheduleSpec sched_;
  int64_t end_ = 0;
  PhaseTimer timer_;
  TrainingState state_;
  std::unique_ptr<ProgressWindow> window_;
  int64_t bad_in_a_row_ = 0;
  int64_t skipped_ = 0;
  bool placement_checked_ = false;
  StepHealth health_;
};

void Trainer::setup_data() {
  source_ = data::open_dataset(config_);
  planner_ = data::make_planner(config_, *source_, comm_.rank(), comm_.size());
  data::LoaderOptions lo;
  lo.threads = static_cast<int>(config_.num_workers);
  lo.prefetch = static_cast<int>(config_.prefetch);
  lo.device = device_;
  lo.norm = norm_;
  loader_ = std::make_unique<data::Loader>(source_, planner_, lo);
  spdlog::info("data: {}", source_->describe());
}

void Trainer::setup_model() {
  at::manual_seed(static_cast<uint64_t>(config_.seed));
  const model::BackboneSpec spec = model::spec_from_config(config_);
  // Built (and initialised from the seed) on the CPU, so every device starts from the same
  // weights, then moved once.
  probe_ = model::make_backbone(spec);
  if (!config_.init_backbone.empty()) {
    const model::BackboneSpec file_spec = model::read_backbone_spec_h5(config_.init_backbone);
    if (file_spec.name != spec.name) {
      throw ConfigError("init_backbone: " + config_.init_backbone + " holds network " +
                        file_spec.name + ", this run trains " + spec.name + "; set network=" +
                        file_spec.name + " (and its embedding_size, image_size)");
    }
    model::load_backbone_h5(*probe_, config_.init_backbone);
    spdlog::info("network: starts from {} (init_backbone)", config_.init_backbone);
  }
  probe_->to(device_);
  broadcast_module(*probe_, comm_);
  // The methods size their heads from num_classes; 0 (the default) means the dataset's own.
  method_config_ = config_;
  if (method_config_.num_classes <= 0) {
    method_config_.num_classes = source_->num_classes();
    spdlog::info("num_classes: {} (from the data)", method_config_.num_classes);
  }
  method_ = make_method(method_config_, *probe_, comm_, planner_->view_rows().back());
  const at::ScalarType amp = model::autocast_dtype(spec, device_);
  spdlog::info("network: {}, embedding {}, image {}x{}, trunk in {}, input {}", spec.name,
               spec.embedding_size, spec.image_size, spec.image_size,
               amp == at::kFloat ? std::string("float32") : std::string(c10::toString(amp)),
               describe(norm_));
  spdlog::info("head: {}", method_->describe());
  LossScalerOptions lso;
  lso.enabled = amp == at::kHalf;
  lso.init_scale = config_.loss_scale;
  lso.growth_interval = config_.loss_scale_growth_interval;
  scaler_ = std::make_unique<LossScaler>(lso);
  at::globalContext().setAllowTF32CuBLAS(config_.tf32);
  at::globalContext().setAllowTF32CuDNN(config_.tf32);
  if (config_.sync_phases) {
    const at::Device d = device_;
    timer_.set_sync([d] { comm::synchronize(d); });
  } else {
    timer_.use_device_marks(device_);
  }
}

void Trainer::setup_optimiser() {
  std::vector<at::Tensor> params;
  std::vector<std::string> names;
  for (const auto& item : probe_->named_parameters()) {
    names.push_back(item.key());
    params.push_back(item.value());
  }
  for (auto& [name, tensor] : method_->replicated_parameters()) {
    names.push_back(name);
    params.push_back(tensor);
  }
  SgdOptions so;
  so.momentum = config_.momentum;
  so.weight_decay = config_.weight_decay;
  so.nesterov = config_.nesterov;
  sgd_ = std::make_unique<Sgd>(params, names, so);
  reducer_ =
      std::make_unique<comm::GradientAllReducer>(sgd_->params(), config_.grad_bucket_mb << 20);
  sched_.kind = config_.lr_schedule;
  sched_.base_lr = config_.lr;
  sched_.steps_per_epoch =
      data::schedule_steps_per_epoch(config_, *source_, *planner_, comm_.rank(), comm_.size());
  if (config_.schedule_steps > 0) {
    // A schedule fitted to a budget: its warm-up is the share warmup_epoch is of num_epoch.
    sched_.total_steps = config_.schedule_steps;
    sched_.warmup_steps = static_cast<int64_t>(std::llround(
        static_cast<double>(config_.schedule_steps) * static_cast<double>(config_.warmup_epoch) /
        static_cast<double>(config_.num_epoch)));
  } else {
    sched_.total_steps = config_.num_epoch * sched_.steps_per_epoch;
    sched_.warmup_steps = config_.warmup_epoch * sched_.steps_per_epoch;
  }
  sched_.milestones_epochs = config_.lr_steps;
  end_ =
      config_.max_steps > 0 ? std::min(config_.max_steps, sched_.total_steps) : sched_.total_steps;
  if (config_.schedule_steps > 0) {
    spdlog::info(
        "schedule: {} steps (schedule_steps; {} warm-up), epochs of {} steps{}{}, lr {} ({}), "
        "batch {} per rank",
        sched_.total_steps, sched_.warmup_steps, sched_.steps_per_epoch,
        config_.epoch_basis == "images" ? " (epoch_basis images)" : "",
        end_ < sched_.total_steps ? " (stopping at " + std::to_string(end_) + ")" : "", config_.lr,
        config_.lr_schedule, config_.batch_size);
  } else {
    spdlog::info("schedule: {} epochs x {} steps{} = {} steps{}, lr {} ({}), batch {} per rank",
                 config_.num_epoch, sched_.steps_per_epoch,
                 config_.epoch_basis == "images" ? " (epoch_basis images)" : "", sched_.total_steps,
                 end_ < sched_.total_steps ? " (stopping at " + std::to_string(end_) + ")" : "",
                 config_.lr, config_.lr_schedule, config_.batch_size);
  }
  state_.config = &config_;
  state_.comm = &comm_;
  state_.probe = probe_.get();
  state_.method = method_.get();
  state_.sgd = sgd_.get();
  state_.planner = planner_.get();
  state_.scaler = scaler_.get();
  state_.input_norm = norm_;
  // Every rank's host, gathered once: for the checkpoints and for the watchdog's reports.
  const std::vector<std::string> hosts = comm::all_host_names(comm_);
  for (const std::string& h : comm::host_layout(hosts)) {
    state_.hosts += (state_.hosts.empty() ? "" : " ") + h;
  }
  comm::enable_watchdog_reports(comm_, config_.output + "/watchdog", hosts);
}

std::string Trainer::last_good_checkpoint() const {
  const auto latest = ckpt::latest_checkpoint(checkpoint_dir(config_));
  return latest ? *latest + " (resume from it with --resume auto, e.g. with a lower lr)"
                : "none: no checkpoint was written yet (" + checkpoint_dir(config_) + ")";
}

Trainer::Outcome Trainer::handle_nonfinite(int64_t step, const StepHealth& h) {
  // float16 overflow of finite losses: the loss scaler's business, not divergence.
  if (scaler_->enabled() && !h.bad_loss && !scaler_->collapsed()) {
    scaler_->update(true);
    ++skipped_;
    spdlog::debug("step {}: float16 gradients overflowed; skipped, loss scale now {}", step + 1,
                  scaler_->scale());
    return Outcome::kSkipped;
  }
  const std::string what =
      h.bad_loss ? "the loss is " + std::to_string(h.loss)
                 : "the gradient of " + first_nonfinite_gradient(*sgd_) + " is not finite" +
                       (scaler_->collapsed() ? " at every loss scale (it fell below 2^-24)" : "");
  ++bad_in_a_row_;
  if (bad_in_a_row_ <= config_.nonfinite_skip) {
    ++skipped_;
    spdlog::warn("step {}: {}; the step is skipped ({} of nonfinite_skip {} in a row)", step + 1,
                 what, bad_in_a_row_, config_.nonfinite_skip);
    return Outcome::kSkipped;
  }
  throw AgreedError("training diverged at step " + std::to_string(step + 1) + " (" +
                    (h.bad_loss ? "loss" : "backward") + "): " + what +
                    ". The step was not applied and no checkpoint is written from this state; "
                    "the last good checkpoint: " +
                    last_good_checkpoint() +
                    ". Lower lr, raise warmup_epoch or set clip_grad_norm; nonfinite_skip lets "
                    "a run skip isolated bad steps.");
}

// One step; its lines are the phases.
Trainer::Outcome Trainer::step(int64_t step, StepStats& stats, double& lr) {
  timer_.start(Phase::kData);
  const data::Batch& batch = loader_->get(step);
  sgd_->zero_grad();
  comm_.take_seconds();
  const at::Tensor loss = method_->forward(batch, timer_, stats);  // fwd, gallery, head
  const double coll_forward = comm_.take_seconds();
  timer_.start(Phase::kBackward);
  (scaler_->enabled() ? loss * scaler_->scale() : loss).backward();
  plant_fault(step);
  const double coll_backward = comm_.take_seconds();
  timer_.start(Phase::kComm);
  reducer_->all_reduce_sum(comm_, 1.0 / scaler_->scale());
  health_ = agree(comm_, stats.loss, reducer_->sum_of_squares(), progress_step(step));
  timer_.start(Phase::kOptimizer);
  lr = learning_rate(sched_, step);
  Outcome outcome = Outcome::kApplied;
  if (health_.bad_loss || health_.bad_grad) {
    outcome = handle_nonfinite(step, health_);
  } else {
    bad_in_a_row_ = 0;
    scaler_->update(false);
    if (config_.clip_grad_norm > 0) {
      // The norm is on the host already (the step's one read): a factor, not a device tensor.
      scale_gradients(sgd_->params(),
                      std::min(1.0, config_.clip_grad_norm / (health_.grad_norm + 1e-6)));
    }
    sgd_->step(lr);
    method_->after_step(lr, 1.0 / scaler_->scale());
  }
  comm_.take_seconds();  // the all-reduce is in the comm phase already
  auto phases = timer_.take();
  // Collectives inside the head's forward and the backward count as comm, not there.
  phases[static_cast<int>(Phase::kHead)] -= coll_forward;
  phases[static_cast<int>(Phase::kBackward)] -= coll_backward;
  phases[static_cast<int>(Phase::kComm)] += coll_forward + coll_backward;
  window_->add(phases, stats);
  if (!placement_checked_) {
    check_placement(device_, *probe_, *method_, *sgd_, *reducer_, batch, loss);
    placement_checked_ = true;
  }
  return health_.stop ? Outcome::kStop : outcome;
}

void Trainer::evaluate_now(int64_t step, TrainResult& result) {
  const auto t0 = std::chrono::steady_clock::now();
  evaluate(config_, norm_, *method_, *probe_, comm_, step,
           static_cast<double>(step) / static_cast<double>(sched_.steps_per_epoch),
           window_->train_seconds(), metrics_, result);
  window_->exclude(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TrainResult Trainer::run() {
  const int64_t first_step = resume_training(state_, resume_);
  TrainResult result;
  result.steps = first_step;
  int64_t saved_at = -1;
  window_ = std::make_unique<ProgressWindow>(config_, comm_.size(), end_, sched_.steps_per_epoch);
  for (int64_t s = first_step; s < end_; ++s) {
    comm::watch_step(s + 1);  // counted from 1, as the progress lines
    StepStats stats;
    double lr = 0;
    const Outcome outcome = step(s, stats, lr);
    result.steps = s + 1;
    if (progress_step(s) || outcome == Outcome::kStop) {
      if (timer_.device_clock()) {
        window_->use_device_phases(timer_.take_device());
      }
      StepFigures extra;
      extra.add("grad_norm", health_.grad_norm);
      extra.add("skipped_steps", skipped_);
      if (scaler_->enabled()) {
        extra.add("loss_scale", scaler_->scale());
      }
      state_.last_metrics =
          window_->report(s, lr, stats, extra, health_, *method_, comm_, metrics_, result).dump();
    }
    if (config_.save_every > 0 && (s + 1) % config_.save_every == 0) {
      save_checkpoint(state_, s + 1);
      saved_at = s + 1;
    }
    // Evaluation every `verbose` steps, at the end of every epoch with eval_every_epoch, and at
    // the end (below).
    const bool epoch_end = config_.eval_every_epoch && (s + 1) % sched_.steps_per_epoch == 0;
    if ((epoch_end || (config_.verbose > 0 && (s + 1) % config_.verbose == 0)) && s + 1 < end_) {
      evaluate_now(s + 1, result);
    }
    // SIGUSR1/SIGTERM on any rank: all ranks stop here, at the same step, save and exit with
    // status 3 (job scripts requeue on it).
    if (outcome == Outcome::kStop) {
      spdlog::warn("stop requested by signal {} at step {}: saving and exiting", last_stop_signal(),
                   s + 1);
      if (saved_at != s + 1) {
        save_checkpoint(state_, s + 1);
      }
      result.stopped_by_signal = true;
      return result;
    }
  }
  if (config_.save_last && saved_at != result.steps) {
    save_checkpoint(state_, result.steps);
  }
  evaluate_now(result.steps, result);
  spdlog::info("done: {} steps in {}; log {}/train.log, metrics {}/metrics.jsonl", result.steps,
               format_duration(window_->elapsed()), config_.output, config_.output);
  return result;
}

}  // namespace

TrainResult train(const Config& requested, comm::Communicator& world, const std::string& resume) {
  Trainer trainer(requested, world, resume);
  return trainer.run();
}

}  // namespace ffc::train
