// `ffc eval`: verification (insightface's protocol, TAR@FAR, ROC) of an exported backbone or a
// checkpoint on verification set files and on procedural held-out pairs, plus the long-tail
// breakdown (verification and identification by training count) on procedural identities
// (docs/eval.md). Under mpirun or srun the embedding work is split over the ranks.

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "apps/commands.h"
#include "apps/guarded_main.h"
#include "apps/network_cli.h"
#include "common/error.h"
#include "common/logging.h"
#include "data/dataset.h"
#include "eval/network_file.h"
#include "eval/validation.h"
#include "eval/verification_set.h"
#include "model/backbone.h"

namespace ffc::app {
namespace {

struct ResolvedEval {
  Config config;
  bool image_size_given = false;  // image_size came from --config or --set
};

ResolvedEval resolve(const EvalCommand& cmd) {
  ConfigLoader loader;
  if (!cmd.config.file.empty()) {
    loader.load_file(cmd.config.file);
  }
  for (const auto& s : cmd.config.sets) {
    loader.set(s);
  }
  ResolvedEval r;
  r.config = loader.finish();
  r.image_size_given = loader.source_of("image_size") != "default";
  return r;
}

// The procedural spec of the training run the network came from; image_size defaults to the
// network's.
data::SyntheticSpec synthetic_spec_for(const ResolvedEval& r, int64_t net_image_size) {
  if (r.config.num_classes <= 0) {
    throw ConfigError(
        "--synthetic needs the procedural identities the network was trained on: pass the "
        "training config (--config) or --set num_classes=N (and seed, synthetic_*)");
  }
  data::SyntheticSpec spec = data::synthetic_spec(r.config);
  if (!r.image_size_given) {
    spec.image_size = static_cast<int>(net_image_size);
  } else if (spec.image_size != net_image_size) {
    throw ConfigError("image_size is " + std::to_string(spec.image_size) +
                      " but the network takes " + std::to_string(net_image_size) +
                      "-pixel images; the procedural identities must be rendered at the size "
                      "the network was trained on");
  }
  return spec;
}

// The set files to evaluate (val_targets, then --set-file), opened before any work so that a
// wrong path fails at once.
struct SetFiles {
  std::vector<std::unique_ptr<eval::VerificationSetFile>> pairs;
  std::vector<std::unique_ptr<eval::LongtailSetFile>> longtail;
};

SetFiles open_set_files(const EvalCommand& cmd, const Config& config, bool has_network) {
  std::vector<std::string> set_files;
  for (const std::string& entry : config.val_targets) {
    set_files.push_back(eval::resolve_val_target(config, entry));
  }
  set_files.insert(set_files.end(), cmd.set_files.begin(), cmd.set_files.end());
  if (has_network && set_files.empty() && !cmd.synthetic) {
    throw ConfigError(
        "nothing to evaluate: give --set-file FILE.h5 (a converted verification set), "
        "val_targets in the config, or --synthetic");
  }
  if (!has_network && cmd.save_heldout.empty()) {
    throw ConfigError(
        "give the network to evaluate: --backbone FILE.h5 (ffc model export) or "
        "--checkpoint FILE.h5 [--net probe|gallery]");
  }
  SetFiles out;
  for (const std::string& path : set_files) {
    if (eval::set_file_format(path) == eval::kLongtailSetFormat) {
      out.longtail.push_back(std::make_unique<eval::LongtailSetFile>(path));
    } else {
      out.pairs.push_back(std::make_unique<eval::VerificationSetFile>(path));
    }
  }
  return out;
}

// --save-heldout: the procedural held-out pairs as a set file (rank 0 writes it).
void save_heldout(const EvalCommand& cmd, const ResolvedEval& resolved, comm::Communicator& comm) {
  const Config& config = resolved.config;
  if (config.val_pairs < 1) {
    throw ConfigError("--save-heldout: val_pairs must be at least 1");
  }
  if (comm.rank() == 0) {
    // Rendered at image_size as configured (the held-out identities need no network).
    const data::SyntheticSpec spec = synthetic_spec_for(resolved, config.image_size);
    const data::SyntheticSource source(spec);
    const eval::VerificationSet set = eval::synthetic_set(
        source, eval::heldout_pairs(spec, config.val_pairs, config.val_hard_impostors), "heldout",
        95);
    eval::write_verification_set(cmd.save_heldout, set);
    std::cerr << "wrote " << cmd.save_heldout << ": " << set.pairs()
              << " held-out pairs of procedural identities, " << spec.image_size << "x"
              << spec.image_size << " JPEG\n";
  }
  comm.barrier();
}

// What an evaluation found, on every rank.
struct EvalResults {
  std::vector<eval::VerificationReport> reports;  // the set files', then --synthetic's
  std::vector<eval::LongtailReport> longtails;    // the long-tail set files'
  bool has_longtail = false;                      // --synthetic's long-tail breakdown
  eval::LongtailReport longtail;
};

EvalResults evaluate_all(const EvalCommand& cmd, const ResolvedEval& resolved, const SetFiles& sets,
                         model::Backbone& net, const eval::EvalOptions& options,
                         comm::Communicator& comm) {
  const Config& config = resolved.config;
  const data::ColorOrder order = data::parse_color_order(config.color_order);
  EvalResults r;
  for (const auto& set : sets.pairs) {
    r.reports.push_back(eval::evaluate_set_file(net, *set, order, comm, options));
  }
  for (const auto& set : sets.longtail) {
    r.longtails.push_back(eval::evaluate_longtail_file(net, *set, order, comm, options.batch,
                                                       options.flip, options.norm));
  }
  if (cmd.synthetic) {
    const data::SyntheticSource synthetic(synthetic_spec_for(resolved, net.spec().image_size));
    if (config.val_pairs >= 10) {
      r.reports.push_back(eval::evaluate_heldout(net, synthetic, config.val_pairs, comm, options));
    }
    if (config.val_identities > 0) {
      r.longtail =
          eval::evaluate_longtail(net, synthetic, config.val_identities, comm, options.batch,
                                  options.flip, options.norm, options.hard_impostors);
      r.has_longtail = true;
    }
  }
  return r;
}

// --roc-csv: one CSV per target with a curve; the paths by report ("" for none).
std::vector<std::string> write_rocs(const EvalCommand& cmd, const EvalResults& r) {
  std::vector<std::string> roc_files(r.reports.size());
  if (!cmd.roc_csv.empty()) {
    for (size_t i = 0; i < r.reports.size(); ++i) {
      if (r.reports[i].roc.empty()) {
        continue;
      }
      roc_files[i] = cmd.roc_csv + r.reports[i].name + ".csv";
      eval::write_roc_csv(roc_files[i], r.reports[i].roc);
    }
  }
  return roc_files;
}

void print_json(const EvalCommand& cmd, const eval::LoadedNetwork& loaded, const SetFiles& sets,
                const EvalResults& r, const std::vector<std::string>& roc_files, int ranks,
                bool flip, double seconds) {
  const model::BackboneSpec& spec = loaded.net->spec();
  nlohmann::ordered_json doc;
  nlohmann::ordered_json n;
  n["file"] = cmd.network.backbone.empty() ? cmd.network.checkpoint : cmd.network.backbone;
  n["kind"] = cmd.network.backbone.empty() ? "checkpoint" : "backbone";
  if (!cmd.network.checkpoint.empty()) {
    n["net"] = cmd.network.net;
  }
  n["network"] = spec.name;
  n["embedding_size"] = spec.embedding_size;
  n["image_size"] = spec.image_size;
  n["step"] = loaded.step;
  n["input_norm"] = loaded.input_norm.name;
  doc["network"] = n;
  doc["ranks"] = ranks;
  doc["flip"] = flip;
  nlohmann::ordered_json targets = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.reports.size(); ++i) {
    nlohmann::ordered_json t = eval::to_json(r.reports[i]);
    t["file"] = i < sets.pairs.size() ? sets.pairs[i]->path() : std::string("synthetic");
    if (!roc_files[i].empty()) {
      t["roc_csv"] = roc_files[i];
    }
    targets.push_back(t);
  }
  doc["targets"] = targets;
  if (!r.longtails.empty()) {
    nlohmann::ordered_json sets_json = nlohmann::ordered_json::array();
    for (size_t i = 0; i < r.longtails.size(); ++i) {
      nlohmann::ordered_json t = eval::to_json(r.longtails[i]);
      t["file"] = sets.longtail[i]->path();
      sets_json.push_back(t);
    }
    doc["longtail_sets"] = sets_json;
  }
  if (r.has_longtail) {
    doc["longtail"] = eval::to_json(r.longtail);
  }
  doc["seconds"] = seconds;
  std::cout << doc.dump(2) << "\n";
}

void print_text(const eval::LoadedNetwork& loaded, const EvalResults& r,
                const std::vector<std::string>& roc_files, int ranks, double seconds) {
  std::cout << "network: " << loaded.description << "; " << ranks << " rank(s)\n";
  for (size_t i = 0; i < r.reports.size(); ++i) {
    for (const std::string& line : eval::report_lines(r.reports[i], loaded.step)) {
      std::cout << line << "\n";
    }
    if (!roc_files[i].empty()) {
      std::cout << "[" << r.reports[i].name << "][" << loaded.step << "] ROC: " << roc_files[i]
                << "\n";
    }
  }
  for (const eval::LongtailReport& t : r.longtails) {
    for (const std::string& line : eval::report_lines(t, loaded.step)) {
      std::cout << line << "\n";
    }
  }
  if (r.has_longtail) {
    for (const std::string& line : eval::report_lines(r.longtail, loaded.step)) {
      std::cout << line << "\n";
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f", seconds);
  std::cout << "done in " << buf << " s\n";
}

}  // namespace

int run_eval(const EvalCommand& cmd) {
  const auto started = std::chrono::steady_clock::now();
  const ResolvedEval resolved = resolve(cmd);
  const Config& config = resolved.config;
  if (cmd.config.dump) {
    std::cout << dump_config(config);
    return kExitOk;
  }
  const bool has_network = !cmd.network.backbone.empty() || !cmd.network.checkpoint.empty();
  if (!cmd.save_heldout.empty() && !cmd.synthetic) {
    throw ConfigError("--save-heldout writes procedural held-out pairs: add --synthetic");
  }
  const SetFiles sets = open_set_files(cmd, config, has_network);
  Session session = start_session(config, comm::parse_backend(cmd.backend));
  comm::Communicator& comm = *session.comm;
  if (!cmd.save_heldout.empty()) {
    save_heldout(cmd, resolved, comm);
    if (!has_network) {
      return kExitOk;
    }
  }
  eval::LoadedNetwork loaded = eval::load_network(network_source(cmd.network));
  loaded.net->to(comm.device());
  spdlog::info("evaluating {} on {} rank(s), {}", loaded.description, comm.size(),
               cmd.no_flip ? "without flip" : "with the flip test");
  spdlog::info("input normalisation {} ({})", describe(loaded.input_norm), loaded.input_norm_note);
  eval::EvalOptions options;
  options.flip = !cmd.no_flip;
  options.batch = cmd.batch;
  options.norm = loaded.input_norm;
  options.hard_impostors = config.val_hard_impostors;
  const EvalResults results = evaluate_all(cmd, resolved, sets, *loaded.net, options, comm);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (comm.rank() != 0) {
    return kExitOk;
  }
  const std::vector<std::string> roc_files = write_rocs(cmd, results);
  if (cmd.json) {
    print_json(cmd, loaded, sets, results, roc_files, comm.size(), options.flip, seconds);
  } else {
    print_text(loaded, results, roc_files, comm.size(), seconds);
  }
  return kExitOk;
}

}  // namespace ffc::app
