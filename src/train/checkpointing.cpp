#include "train/checkpointing.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "ckpt/checkpoint.h"
#include "comm/watchdog.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/version.h"
#include "h5/input_norm.h"
#include "model/backbone.h"
#include "model/state_dict.h"
#include "train/loss_scaler.h"
#include "train/method.h"
#include "train/optimizer.h"

namespace ffc::train {
namespace {

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

at::Tensor started_tensor(Sgd& sgd) {
  std::vector<uint8_t> v;
  for (bool b : sgd.started()) {
    v.push_back(b ? 1 : 0);
  }
  return at::from_blob(v.data(), {static_cast<int64_t>(v.size())}, at::kByte).clone();
}

// A save that failed on some rank, agreed by all: `why` (what failed, then what became of the
// files) and what `latest` still names; with save_failure warn logged ("" returned: training goes
// on), else thrown.
std::string failed_save(const Config& config, const std::string& dir, int64_t step,
                        const std::string& why) {
  const std::string what = "checkpoint at step " + std::to_string(step) +
                           " could not be written (" + why + "`latest` still names " +
                           ckpt::latest_checkpoint(dir).value_or(std::string("no checkpoint"));
  if (config.save_failure == "warn") {
    spdlog::warn("{}; training continues (save_failure warn)", what);
    return "";
  }
  throw AgreedError(what + ". Free space (df -h " + dir +
                    ") or set output elsewhere, then resume with --resume auto");
}

// On rank 0: "" when the checkpoint folder has room for the file `count` describes (what its
// tensors, chunks and HDF5's metadata take), else the figures of what is missing.
std::string space_problem(const std::string& dir, const ckpt::CheckpointWriter& count) {
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(dir, ec);
  if (ec) {
    return {};
  }
  const auto want = static_cast<double>(count.needed_bytes());
  if (static_cast<double>(space.available) >= want) {
    return {};
  }
  constexpr double kMiB = 1 << 20;
  char buf[200];
  std::snprintf(buf, sizeof(buf),
                "%.2f MiB needed (%.2f MiB of tensors in %lld datasets, and HDF5's chunks and "
                "metadata), %.2f MiB free",
                want / kMiB, static_cast<double>(count.counted_bytes()) / kMiB,
                static_cast<long long>(count.counted_datasets()),
                static_cast<double>(space.available) / kMiB);
  return dir + ": no room for the checkpoint: " + buf;
}

// The first floating-point tensor of the state that holds a NaN or an infinity, or "" (collective:
// sharded tensors differ between ranks). One reduction per tensor, one host read.
std::string first_nonfinite_tensor(const TrainingState& s) {
  const auto tensors = state_tensors(*s.probe, *s.sgd, *s.method);
  std::vector<at::Tensor> sums;
  std::vector<size_t> which;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i].second;
    if (t.defined() && t.numel() > 0 && at::isFloatingType(t.scalar_type())) {
      // A sum is not finite when an element is not (or the sum overflows: a diverged state too).
      sums.push_back(t.detach().sum().to(at::kDouble));
      which.push_back(i);
    }
  }
  std::string name;
  if (!sums.empty()) {
    const at::Tensor all = at::stack(sums).cpu();  // one copy from the device
    const at::Tensor bad = at::isfinite(all).logical_not();
    if (bad.any().item<bool>()) {
      name = tensors[which[bad.to(at::kLong).argmax().item<int64_t>()]].first;
    }
  }
  const bool here = !name.empty();
  if (comm::any_rank(*s.comm, here)) {
    return here ? name : std::string("a tensor of another rank's shard");
  }
  return {};
}

// Removes a partial checkpoint and the lock files MPI-IO may have left beside it
// ("<name>-<id>.lock"), and says so once.
void remove_partial_checkpoint(const std::string& tmp, const std::string& dir) {
  std::error_code ec;
  const bool removed = std::filesystem::remove(tmp, ec);
  const std::string prefix = std::filesystem::path(tmp).filename().string() + "-";
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() > 5 && name.substr(name.size() - 5) == ".lock") {
      std::filesystem::remove(e.path(), ec);
    }
  }
  if (removed) {
    spdlog::error("removed the partial checkpoint {}; `latest` still names {}", tmp,
                  ckpt::latest_checkpoint(dir).value_or("no checkpoint"));
  }
}

}  // namespace

std::string checkpoint_dir(const Config& config) {
  return config.output + "/checkpoints";
}

std::vector<std::pair<std::string, at::Tensor>> state_tensors(model::Backbone& probe, Sgd& sgd,
                                                              Method& method) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [key, t] : model::state_dict(probe)) {
    out.emplace_back("probe/" + key, t);
  }
  for (size_t i = 0; i < sgd.params().size(); ++i) {
    out.emplace_back("optimizer/momentum/" + sgd.names()[i], sgd.momentum_buffers()[i]);
  }
  for (auto& item : method.state_tensors()) {
    out.push_back(std::move(item));
  }
  return out;
}

std::string save_checkpoint(const TrainingState& s, int64_t step) {
  comm::Communicator& comm = *s.comm;
  const Config& config = *s.config;
  const std::string dir = checkpoint_dir(config);
  const std::string name = ckpt::checkpoint_file_name(step);
  const std::string tmp = dir + "/." + name + ".partial";
  // The whole save is watched: past save_timeout (a disk that fills while HDF5 writes, a stuck
  // filesystem, a rank lost in the middle) the job ends with status 1. The first rank whose
  // watchdog gets there removes the partial file (and MPI-IO's lock files beside it) before the
  // job goes down, so `latest` and the earlier checkpoints are what a resume finds.
  comm::WatchedPhase watched("checkpoint save at step " + std::to_string(step), config.save_timeout,
                             kExitFailure, [tmp, dir] { remove_partial_checkpoint(tmp, dir); });
  if (comm.rank() == 0) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      throw IoError(dir + ": cannot create the checkpoint folder (" + ec.message() + ")");
    }
  }
  comm.barrier();
  const std::string bad = first_nonfinite_tensor(s);
  if (!bad.empty()) {
    const auto latest = ckpt::latest_checkpoint(dir);
    throw AgreedError("refusing to write a checkpoint at step " + std::to_string(step) + ": " +
                      bad + " is not finite (the run diverged); the last good checkpoint " +
                      (latest ? *latest : std::string("is none")) +
                      " and `latest` are left as they are");
  }
  const auto start = std::chrono::steady_clock::now();
  // Everything the file holds, in order: run once to count what the save needs on disk, then to
  // write it.
  const auto write_state = [&](ckpt::CheckpointWriter& w) {
    const int64_t spe = s.planner->steps_per_epoch();
    w.attribute("step", step);
    w.attribute("epoch", step / spe);
    w.attribute("method", config.method);
    w.attribute("world_size", static_cast<int64_t>(comm.size()));
    w.attribute("hosts", s.hosts);
    w.attribute("num_classes", config.num_classes);
    w.attribute("embedding_size", config.embedding_size);
    w.attribute("image_size", config.image_size);
    w.attribute("network", config.network);
    for (const auto& [key, value] : h5::input_norm_attributes(s.input_norm)) {
      w.attribute(key, value);
    }
    w.attribute("steps_per_epoch", spe);
    w.attribute("items_per_step", s.planner->items_per_step() * comm.size());
    w.attribute("seed", config.seed);
    w.attribute("ffc_version", project_version());
    w.attribute("git_revision", git_revision());
    w.attribute("saved_at", now_text());
    for (const auto& [key, value] : s.method->checkpoint_attributes()) {
      w.attribute(key, value);
    }
    w.bytes("config", dump_config(config));
    for (const auto& [key, t] : model::state_dict(*s.probe)) {
      w.replicated("probe/" + key, t);
    }
    Sgd& sgd = *s.sgd;
    for (size_t i = 0; i < sgd.params().size(); ++i) {
      w.replicated("optimizer/momentum/" + sgd.names()[i], sgd.momentum_buffers()[i]);
    }
    w.replicated("optimizer/started", started_tensor(sgd));
    w.attribute("optimizer_steps", sgd.steps());
    if (s.scaler != nullptr && s.scaler->enabled()) {
      w.attribute("loss_scale", s.scaler->scale());
      w.attribute("loss_scale_growth_tracker", s.scaler->growth_tracker());
    }
    s.method->save_state(w);
    w.bytes("metrics/last", s.last_metrics);
  };
  // Room first: what the file will take is counted without writing (the same calls on a counting
  // writer). A save that cannot fit is refused before it starts, and the file then reserves that
  // disk before the first collective write: a collective write that runs out of space fails on
  // some ranks only, and HDF5 then waits forever in its own collectives (chunk allocation) on the
  // others.
  ckpt::CheckpointWriter count{ckpt::CheckpointWriter::CountOnly{}};
  std::string failure;
  try {
    write_state(count);
    if (comm.rank() == 0) {
      failure = space_problem(dir, count);
    }
    if (comm::any_rank(comm, !failure.empty())) {
      throw IoError(failure.empty() ? std::string("rank 0 found no room") : failure);
    }
    ckpt::CheckpointWriter w(tmp, comm);
    w.reserve(count.needed_bytes());
    write_state(w);
    w.close();
    if (w.fell_back_to_independent()) {
      spdlog::warn("checkpoint {}: some collective writes ran as independent I/O", name);
    }
  } catch (const Error& e) {
    // Every HDF5 object of the writer is closed by now (RAII), so this rank can report and go on.
    failure = e.what();
  }
  // A write fails on every rank or on some: all decide together, so nobody waits for a rank that
  // gave up. The partial file goes; `latest` and the earlier checkpoints stay.
  if (comm::any_rank(comm, !failure.empty())) {
    if (comm.rank() == 0) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
    }
    return failed_save(config, dir, step,
                       (failure.empty() ? std::string("another rank failed") : failure) +
                           "); the partial file is removed; ");
  }
  // The commit (rename, `latest`, rotation) runs on rank 0; its failure (the disk filled since the
  // write: `latest` cannot be written) is agreed too, so that every rank stops with its message.
  std::string commit_failure;
  if (comm.rank() == 0) {
    try {
      ckpt::commit_checkpoint(tmp, dir, name, static_cast<int>(config.save_keep));
    } catch (const Error& e) {
      commit_failure = e.what();
    }
  }
  if (comm::any_rank(comm, !commit_failure.empty())) {
    std::error_code ec;
    const bool complete = comm.rank() == 0 && std::filesystem::exists(dir + "/" + name, ec);
    return failed_save(
        config, dir, step,
        (commit_failure.empty() ? std::string("rank 0 could not commit it") : commit_failure) +
            "); " + (complete ? name + " is complete, but " : std::string()));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uintmax_t bytes = 0;
  std::error_code ec;
  if (comm.rank() == 0) {
    bytes = std::filesystem::file_size(dir + "/" + name, ec);
  }
  spdlog::info("checkpoint: {}/{} ({:.1f} MiB in {:.2f} s)", dir, name,
               static_cast<double>(bytes) / (1 << 20), seconds);
  return dir + "/" + name;
}

Config with_resumed_defaults(const Config& config, const std::string& resume) {
  Config out = config;
  if (resume.empty() || config.method != "ffc" || config.pool_size > 0) {
    return out;
  }
  const std::vector<std::string> candidates = resume == "auto"
                                                  ? ckpt::resume_candidates(checkpoint_dir(config))
                                                  : std::vector<std::string>{resume};
  if (candidates.empty()) {
    return out;
  }
  try {
    ckpt::CheckpointReader r(candidates.front());
    if (r.string_attribute("method") == "ffc" && r.has_attribute("pool_size")) {
      out.pool_size = r.int_attribute("pool_size");
      spdlog::info("resume: pool_size automatic; keeping the checkpoint's {} slots", out.pool_size);
    }
  } catch (const Error&) {
    // Unreadable: resume_training reports it, or skips it for an older one.
  }
  return out;
}

void check_compatible(const std::string& path, const Config& config, const InputNorm& norm,
                      const std::vector<std::pair<std::string, int64_t>>& method_attributes) {
  ckpt::CheckpointReader r(path);
  std::vector<std::string> diffs;
  auto cmp_s = [&](const char* key, const std::string& mine) {
    const std::string theirs = r.string_attribute(key);
    if (theirs != mine) {
      diffs.push_back(std::string(key) + ": checkpoint " + theirs + ", this run " + mine);
    }
  };
  auto cmp_i = [&](const std::string& key, int64_t mine) {
    if (!r.has_attribute(key)) {
      diffs.push_back(key + ": missing in the checkpoint, this run " + std::to_string(mine));
      return;
    }
    const int64_t theirs = r.int_attribute(key);
    if (theirs != mine) {
      diffs.push_back(key + ": checkpoint " + std::to_string(theirs) + ", this run " +
                      std::to_string(mine));
    }
  };
  cmp_s("method", config.method);
  cmp_s("network", config.network);
  cmp_i("embedding_size", config.embedding_size);
  cmp_i("image_size", config.image_size);
  cmp_i("num_classes", config.num_classes);
  const InputNorm theirs = h5::recorded_input_norm_of(r, path).value_or(legacy_input_norm());
  if (theirs.name != norm.name) {
    diffs.push_back("input_norm: checkpoint " + theirs.name + ", this run " + norm.name);
  }
  for (const auto& [key, value] : method_attributes) {
    cmp_i(key, value);
  }
  if (!diffs.empty()) {
    std::string msg = path + " was written for another model or data:";
    for (const auto& d : diffs) {
      msg += "\n  " + d;
    }
    throw ConfigError(msg +
                      "\nresume with the configuration it was written with, or set another "
                      "output folder to start afresh");
  }
}

namespace {

// Loads everything from `path` into the state; returns the saved step and world size.
void load(const TrainingState& s, const std::string& path, int64_t& step, int64_t& world,
          int64_t& items_per_step, int64_t& steps_per_epoch) {
  check_compatible(path, *s.config, s.input_norm, s.method->checkpoint_attributes());
  ckpt::CheckpointReader r(path, *s.comm);
  step = r.int_attribute("step");
  world = r.int_attribute("world_size");
  items_per_step = r.int_attribute("items_per_step");
  steps_per_epoch = r.int_attribute("steps_per_epoch");
  for (const auto& [key, t] : model::state_dict(*s.probe)) {
    r.read_into("probe/" + key, t);
  }
  Sgd& sgd = *s.sgd;
  for (size_t i = 0; i < sgd.params().size(); ++i) {
    r.read_into("optimizer/momentum/" + sgd.names()[i], sgd.momentum_buffers()[i]);
  }
  const at::Tensor started = r.read("optimizer/started");
  if (started.numel() != static_cast<int64_t>(sgd.params().size())) {
    throw FormatError(path + ": optimizer state for " + std::to_string(started.numel()) +
                      " parameters, this run trains " + std::to_string(sgd.params().size()));
  }
  for (size_t i = 0; i < sgd.params().size(); ++i) {
    sgd.started()[i] = started[static_cast<int64_t>(i)].item<uint8_t>() != 0;
  }
  sgd.set_steps(r.int_attribute("optimizer_steps"));
  if (s.scaler != nullptr && s.scaler->enabled() && r.has_attribute("loss_scale")) {
    const auto scale = r.attribute("loss_scale");
    s.scaler->restore(std::holds_alternative<double>(scale)
                          ? std::get<double>(scale)
                          : static_cast<double>(std::get<int64_t>(scale)),
                      r.int_attribute("loss_scale_growth_tracker"));
  }
  s.method->load_state(r);
}

}  // namespace

int64_t resume_training(const TrainingState& s, const std::string& resume) {
  if (resume.empty()) {
    return 0;
  }
  const bool automatic = resume == "auto";
  const std::vector<std::string> candidates =
      automatic ? ckpt::resume_candidates(checkpoint_dir(*s.config))
                : std::vector<std::string>{resume};
  if (candidates.empty()) {
    spdlog::info("resume auto: no checkpoint in {}; starting afresh", checkpoint_dir(*s.config));
    return 0;
  }
  for (const auto& path : candidates) {
    // Reading is watched like saving: a stuck filesystem or a lost rank ends the job.
    comm::WatchedPhase watched("checkpoint load of " + path, s.config->save_timeout, kExitFailure);
    // Rank 0 reads the whole file first (every checksum) so that all ranks decide together
    // whether to load it: a rank failing alone in the middle of a collective read would leave
    // the others waiting.
    std::string problem;
    if (s.comm->rank() == 0) {
      try {
        ckpt::verify_checkpoint(path);
      } catch (const Error& e) {
        problem = e.what();
      }
    }
    if (comm::any_rank(*s.comm, !problem.empty())) {
      if (!automatic) {
        throw Error(problem.empty() ? path + ": cannot be loaded (rank 0 says why)"
                                    : "resume: " + problem);
      }
      if (s.comm->rank() == 0) {
        spdlog::warn("resume auto: skipping {}: {}", path, problem);
      }
      continue;
    }
    int64_t step = 0;
    int64_t world = 0;
    int64_t items = 0;
    int64_t spe = 0;
    load(s, path, step, world, items, spe);
    const data::BatchPlanner& planner = *s.planner;
    const int64_t now_items = planner.items_per_step() * s.comm->size();
    int64_t start = step;
    if (world != s.comm->size() || items != now_items || spe != planner.steps_per_epoch()) {
      start = data::remap_step(step, spe, items, planner.steps_per_epoch(), now_items);
      spdlog::info(
          "resume: {} was written by {} rank(s) at step {}; continuing at step {} with {} "
          "rank(s)",
          path, world, step, start, s.comm->size());
      if (planner.blocked() && world != s.comm->size() && s.comm->rank() == 0 &&
          start % planner.steps_per_epoch() != 0) {
        spdlog::warn(
            "resume: read_order block deals blocks to ranks, so the rest of epoch {} is dealt "
            "afresh over {} rank(s): some of its images may come twice or not at all in this "
            "epoch; from epoch {} the order is exact (docs/data.md)",
            start / planner.steps_per_epoch() + 1, s.comm->size(),
            start / planner.steps_per_epoch() + 2);  // counted from 1, as the progress lines
      }
    } else {
      spdlog::info("resume: {} at step {}", path, step);
    }
    return start;
  }
  throw Error("resume auto: none of the " + std::to_string(candidates.size()) + " checkpoints of " +
              checkpoint_dir(*s.config) +
              " could be loaded (see the warnings above); remove them or set resume to a file");
}

}  // namespace ffc::train
