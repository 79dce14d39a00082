// `ffc ckpt info | verify | diff | export | pool-stats`: inspect and use checkpoints
// (docs/checkpoint-format.md). Serial: no launcher needed.

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "apps/commands.h"
#include "ckpt/checkpoint.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/text.h"
#include "data/dataset.h"
#include "data/synthetic.h"
#include "h5/input_norm.h"
#include "h5/state_dict.h"
#include "model/export.h"

namespace ffc::app {
namespace {

std::string shape_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(d[i]);
  }
  return s + "]";
}

int64_t elements(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) {
    n *= x;
  }
  return n;
}

// Datasets that hold training state (not the run's description).
bool is_state(const std::string& name) {
  for (const char* prefix : {"/probe/", "/gallery/", "/optimizer/", "/head/"}) {
    if (name.rfind(prefix, 0) == 0) {
      return true;
    }
  }
  return false;
}

// Max |a - b| over a dataset present in both, read in row blocks.
// The largest |a - b| of a dataset, and the largest excess |a - b| - rtol * |b| over it.
struct Difference {
  double abs = 0;
  double excess = 0;
};

Difference max_abs_diff(const ckpt::CheckpointReader& a, const ckpt::CheckpointReader& b,
                        const std::string& name, double rtol) {
  auto measure = [rtol](const at::Tensor& x, const at::Tensor& y, Difference& out) {
    const at::Tensor d = (x - y).abs();
    out.abs = std::max(out.abs, d.max().item<double>());
    out.excess = std::max(out.excess, (d - rtol * y.abs()).max().item<double>());
  };
  Difference worst;
  const std::vector<int64_t> d = a.dims(name);
  if (d.empty()) {
    measure(a.read(name).to(at::kDouble), b.read(name).to(at::kDouble), worst);
    return worst;
  }
  const int64_t row = std::max<int64_t>(1, elements(d) / std::max<int64_t>(d[0], 1));
  const int64_t block = std::max<int64_t>(1, (int64_t{2} << 20) / row);
  std::vector<int64_t> shape = d;
  for (int64_t first = 0; first < d[0]; first += block) {
    shape[0] = std::min(block, d[0] - first);
    at::Tensor x = at::empty(shape, at::kDouble);
    at::Tensor y = at::empty(shape, at::kDouble);
    a.read_rows_into(name, x, first);
    b.read_rows_into(name, y, first);
    if (x.numel() > 0) {
      measure(x, y, worst);
    }
  }
  return worst;
}

}  // namespace

// Longer than 80 lines: one summary line after another, in the order `ffc ckpt info` prints them;
// cutting it would only move the lines apart.
int run_ckpt_info(const CkptCommand& cmd) {
  const ckpt::CheckpointReader r(cmd.path);
  nlohmann::ordered_json j;
  j["path"] = cmd.path;
  j["file_bytes"] = std::filesystem::file_size(cmd.path);
  for (const char* key : {"format",
                          "format_version",
                          "step",
                          "epoch",
                          "method",
                          "world_size",
                          "hosts",
                          "network",
                          "embedding_size",
                          "image_size",
                          "input_norm",
                          "num_classes",
                          "pool_size",
                          "vfc_rows",
                          "steps_per_epoch",
                          "items_per_step",
                          "seed",
                          "loss_scale",
                          "loss_scale_growth_tracker",
                          "ffc_version",
                          "git_revision",
                          "saved_at"}) {
    if (r.has_attribute(key)) {
      const auto v = r.attribute(key);
      if (const auto* i = std::get_if<int64_t>(&v)) {
        j[key] = *i;
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        j[key] = *s;
      } else {
        j[key] = std::get<double>(v);
      }
    }
  }
  nlohmann::ordered_json groups;
  nlohmann::ordered_json datasets = nlohmann::ordered_json::array();
  for (const auto& name : r.datasets()) {
    const auto d = r.dims(name);
    const double bytes = static_cast<double>(elements(d)) * h5::dtype_size(r.dtype(name));
    const std::string group = name.substr(0, name.find('/', 1));
    auto& g = groups[group];
    const bool seen = g.is_object();
    g["datasets"] = (seen ? g["datasets"].get<int64_t>() : 0) + 1;
    g["bytes"] = (seen ? g["bytes"].get<double>() : 0.0) + bytes;
    datasets.push_back(
        {{"name", name}, {"shape", d}, {"dtype", h5::dtype_name(r.dtype(name))}, {"bytes", bytes}});
  }
  if (cmd.json) {
    j["groups"] = groups;
    j["datasets"] = datasets;
    j["config"] = r.bytes("/config");
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << cmd.path << " ("
            << human_bytes(static_cast<double>(j["file_bytes"].get<uintmax_t>())) << ")\n";
  for (const auto& [k, v] : j.items()) {
    if (k != "path" && k != "file_bytes") {
      std::cout << "  " << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
    }
  }
  std::cout << "groups:\n";
  for (const auto& [g, v] : groups.items()) {
    std::cout << "  " << g << ": " << v["datasets"].get<int64_t>() << " datasets, "
              << human_bytes(v["bytes"].get<double>()) << "\n";
  }
  std::cout << "datasets:\n";
  for (const auto& d : datasets) {
    const std::string name = d["name"].get<std::string>();
    const bool tensor_of_a_net = name.rfind("/probe/", 0) == 0 || name.rfind("/gallery/", 0) == 0 ||
                                 name.rfind("/optimizer/momentum/", 0) == 0;
    if (cmd.all || !tensor_of_a_net) {
      std::cout << "  " << d["name"].get<std::string>() << "  "
                << shape_text(d["shape"].get<std::vector<int64_t>>()) << " "
                << d["dtype"].get<std::string>() << "  " << human_bytes(d["bytes"].get<double>())
                << "\n";
    }
  }
  if (!cmd.all) {
    std::cout << "  (the tensors of /probe, /gallery and /optimizer/momentum: --all lists them)\n";
  }
  std::cout << "config:\n" << r.bytes("/config");
  return 0;
}

int run_ckpt_verify(const CkptCommand& cmd) {
  const int64_t n = ckpt::verify_checkpoint(cmd.path);
  std::cout << cmd.path << ": ok, " << n << " datasets complete, every checksum verified\n";
  return 0;
}

int run_ckpt_diff(const CkptCommand& cmd) {
  const ckpt::CheckpointReader a(cmd.path);
  const ckpt::CheckpointReader b(cmd.other);
  std::vector<std::string> names = a.datasets();
  for (const auto& n : b.datasets()) {
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      names.push_back(n);
    }
  }
  int64_t compared = 0;
  int64_t differing = 0;
  double worst = 0;
  std::string worst_name;
  for (const auto& name : names) {
    if (!cmd.all && !is_state(name)) {
      continue;
    }
    if (!a.has(name) || !b.has(name)) {
      std::cout << name << ": only in " << (a.has(name) ? cmd.path : cmd.other) << "\n";
      ++differing;
      continue;
    }
    if (a.dims(name) != b.dims(name)) {
      std::cout << name << ": shapes " << shape_text(a.dims(name)) << " and "
                << shape_text(b.dims(name)) << "\n";
      ++differing;
      continue;
    }
    const Difference diff = max_abs_diff(a, b, name, cmd.rtol);
    ++compared;
    if (diff.abs > worst) {
      worst = diff.abs;
      worst_name = name;
    }
    const bool differs = diff.excess > cmd.atol;
    if (differs || cmd.verbose) {
      std::cout << name << ": max abs diff " << diff.abs << "\n";
    }
    if (differs) {
      ++differing;
    }
  }
  std::cout << "compared " << compared << " tensors: " << differing << " differ beyond atol "
            << cmd.atol << (cmd.rtol > 0 ? " + rtol " + std::to_string(cmd.rtol) + " |b|" : "")
            << "; largest difference " << worst
            << (worst_name.empty() ? "" : " (" + worst_name + ")") << "\n";
  return differing == 0 ? kExitOk : kExitFailure;
}

int run_ckpt_export(const CkptCommand& cmd) {
  const ckpt::CheckpointReader r(cmd.path);
  const std::string group = "/" + cmd.net;
  h5::NamedTensors tensors;
  for (const auto& name : r.datasets(group)) {
    tensors.emplace_back(name.substr(group.size() + 1), r.read(name));
  }
  if (tensors.empty()) {
    throw FormatError(cmd.path + ": no " + group + " network in this checkpoint (method " +
                      r.string_attribute("method") + ")");
  }
  h5::Attributes attrs = {{"format", std::string(model::kBackboneFormat)},
                          {"format_version", model::kBackboneFormatVersion},
                          {"network", r.string_attribute("network")},
                          {"embedding_size", r.int_attribute("embedding_size")},
                          {"image_size", r.int_attribute("image_size")},
                          {"producer", std::string("ffc ckpt export of ") + cmd.path + " step " +
                                           std::to_string(r.int_attribute("step"))}};
  // The normalisation the network was trained with; checkpoints written before ffc recorded it
  // were trained with ffc's.
  const InputNorm norm = h5::recorded_input_norm_of(r, cmd.path).value_or(legacy_input_norm());
  for (auto& a : h5::input_norm_attributes(norm)) {
    attrs.push_back(std::move(a));
  }
  h5::write_tensors(cmd.out, tensors, attrs);
  std::cout << "exported the " << cmd.net << " network (" << tensors.size() << " tensors) of "
            << cmd.path << " to " << cmd.out << "\n";
  return 0;
}

// Longer than 80 lines: the pool's figures computed and printed in one pass over its metadata.
int run_ckpt_pool_stats(const CkptCommand& cmd) {
  const ckpt::CheckpointReader r(cmd.path);
  if (!r.has("/head/pool/labels")) {
    throw FormatError(cmd.path + ": no FFC pool (method " + r.string_attribute("method") + ")");
  }
  const int64_t step = r.int_attribute("step");
  const at::Tensor labels = r.read("/head/pool/labels");
  const at::Tensor last = r.read("/head/pool/last_step");
  const at::Tensor rows = r.read("/head/pool/rows");  // [Q, 2, D]
  const int64_t q = labels.numel();
  const at::Tensor filled_mask = labels >= 0;
  const int64_t filled = filled_mask.sum().item<int64_t>();
  nlohmann::ordered_json j;
  j["path"] = cmd.path;
  j["step"] = step;
  j["pool_size"] = q;
  j["filled"] = filled;
  j["fill"] = q > 0 ? static_cast<double>(filled) / q : 0.0;
  if (filled > 0) {
    const at::Tensor age = (step - last.masked_select(filled_mask)).to(at::kDouble);
    const at::Tensor sorted = std::get<0>(age.sort());
    j["age_steps"] = {{"min", sorted[0].item<double>()},
                      {"median", sorted[sorted.numel() / 2].item<double>()},
                      {"mean", age.mean().item<double>()},
                      {"max", sorted[-1].item<double>()}};
    const at::Tensor live = rows.index_select(0, filled_mask.nonzero().squeeze(1));
    const at::Tensor n0 = live.select(1, 0).norm(2, 1);
    const at::Tensor n1 = live.select(1, 1).norm(2, 1);
    j["row_norms"] = {{"row0_min", n0.min().item<double>()},
                      {"row0_mean", n0.mean().item<double>()},
                      {"row0_max", n0.max().item<double>()},
                      {"slots_with_row1", (n1 > 0).sum().item<int64_t>()}};
    // Per-shard balance at the world size of the save (and any --ranks given).
    const int64_t world = cmd.ranks > 0 ? cmd.ranks : r.int_attribute("world_size");
    std::vector<int64_t> per_rank(static_cast<size_t>(world), 0);
    const at::Tensor slots = filled_mask.nonzero().squeeze(1).contiguous();
    const int64_t* slot = slots.data_ptr<int64_t>();
    for (int64_t i = 0; i < slots.numel(); ++i) {
      ++per_rank[static_cast<size_t>(slot[i] % world)];
    }
    j["ranks"] = world;
    j["filled_per_rank"] = per_rank;
    // Images per identity of the pooled identities, where the training data can be opened (the
    // procedural data always can; a RecordIO set when its files are where the config says).
    ConfigLoader loader;
    loader.load_string(r.bytes("/config"), cmd.path + ":/config");
    const Config config = loader.finish();
    std::shared_ptr<const data::ImageSource> source;
    try {
      source = data::open_dataset(config);
    } catch (const Error& e) {
      j["pooled_identities_by_training_images"] =
          std::string("unknown: cannot open the training data (") + e.what() + ")";
    }
    if (source) {
      const std::vector<std::pair<const char*, int64_t>> upper = {
          {"1", 1}, {"2-5", 5}, {"6-20", 20}, {"21-100", 100}, {">100", INT64_MAX}};
      std::vector<int64_t> counts(upper.size(), 0);
      const at::Tensor pooled = labels.masked_select(filled_mask).contiguous();
      const int64_t* p = pooled.data_ptr<int64_t>();
      for (int64_t i = 0; i < pooled.numel(); ++i) {
        const int64_t c = source->class_size(p[i]);
        size_t b = 0;
        while (c > upper[b].second) {
          ++b;
        }
        ++counts[b];
      }
      nlohmann::ordered_json buckets;
      for (size_t b = 0; b < upper.size(); ++b) {
        buckets[upper[b].first] = counts[b];
      }
      j["pooled_identities_by_training_images"] = buckets;
    }
  }
  if (cmd.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << cmd.path << " (step " << step << ")\n";
  for (const auto& [k, v] : j.items()) {
    if (k != "path" && k != "step") {
      std::cout << "  " << k << ": " << v.dump() << "\n";
    }
  }
  return 0;
}

}  // namespace ffc::app
