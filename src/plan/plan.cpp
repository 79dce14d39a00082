#include "plan/plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/error.h"
#include "common/methods.h"
#include "common/text.h"
#include "model/info.h"

namespace ffc::plan {
namespace {

// Backbone facts, measured once per network and image size.
model::ModelInfo backbone_info(const std::string& network, int64_t embedding, int64_t image) {
  static std::mutex mu;
  static std::map<std::string, model::ModelInfo> cache;
  const std::string key = network + "/" + std::to_string(embedding) + "/" + std::to_string(image);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) {
    model::BackboneSpec spec;
    spec.name = network;
    spec.embedding_size = embedding;
    spec.image_size = image > 0 ? image : model::natural_image_size(network);
    it = cache.emplace(key, model::model_info(spec)).first;
  }
  return it->second;
}

}  // namespace

double machine_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string name;
  double kib = 0;
  std::string unit;
  while (in >> name >> kib >> unit) {
    if (name == "MemTotal:") {
      return kib * 1024;
    }
  }
  return 0;
}

// Longer than 80 lines: every method's memory items side by side, so that their formulas can be
// read against each other (and against docs/plan.md).
Plan make_plan(const PlanInput& in) {
  const std::string& m = in.method;
  if (find_method(m) == nullptr) {
    throw ConfigError("plan: method '" + m + "' is not " + method_list());
  }
  if (in.num_classes < 1 || in.embedding < 1 || in.batch < 1 || in.ranks < 1) {
    throw ConfigError("plan: num-classes, embedding, batch and ranks must be positive");
  }
  if (m == "pfc" && !(in.sample_rate > 0 && in.sample_rate <= 1)) {
    throw ConfigError("plan: sample-rate must be in (0, 1]");
  }
  Plan p;
  p.input = in;
  const double f = 4;  // float32
  const double n = static_cast<double>(in.num_classes);
  const double d = static_cast<double>(in.embedding);
  const double b = static_cast<double>(in.batch);
  const double ranks = in.ranks;
  const model::ModelInfo info = backbone_info(in.network, in.embedding, in.image_size);
  p.backbone_parameters = info.parameters;
  p.backbone_flops_per_image = static_cast<double>(info.flops_per_image);
  p.activation_bytes_per_image = static_cast<double>(info.activation_bytes_per_image);
  const double params = static_cast<double>(info.parameters);

  // Backbone: weights, gradients, momentum; FFC adds the gallery net's weights.
  p.items.push_back({"backbone weights + gradients + momentum", 3 * f * params,
                     "3 x 4 B x " + std::to_string(info.parameters) + " parameters"});
  double held_images = b;  // images whose activations are kept for the backward
  if (m == "ffc") {
    p.items.push_back({"gallery net weights", f * params, "4 B x parameters"});
    held_images = (in.ffc_rollback ? 2 : 1) * (b + b / 2);
  }
  p.items.push_back({"activations kept for backward",
                     held_images * static_cast<double>(info.activation_bytes_per_image),
                     std::to_string(static_cast<int64_t>(held_images)) + " images x " +
                         human_bytes(static_cast<double>(info.activation_bytes_per_image), 2)});

  const double local = std::ceil(n / ranks);
  const double gathered = m == "ffc" ? (b + b / 2) * ranks : b * ranks;
  if (m == "fc") {
    p.items.push_back({"head weights + momentum", 2 * f * local * d, "2 x 4 B x ceil(N/P) x D"});
    p.items.push_back({"head weight gradient", f * local * d, "4 B x ceil(N/P) x D"});
    p.items.push_back({"logits (and their gradient, in place)", f * gathered * local,
                       "4 B x (B x P) x ceil(N/P)"});
    p.head_flops_per_step = 6 * gathered * local * d;
  } else if (m == "pfc") {
    const double s = std::floor(in.sample_rate * local);
    p.items.push_back({"head weights + momentum", 2 * f * local * d, "2 x 4 B x ceil(N/P) x D"});
    p.items.push_back({"sampled rows, their momentum and gradient", 3 * f * s * d,
                       "3 x 4 B x floor(r x N/P) x D"});
    p.items.push_back({"logits (and their gradient, in place)", f * gathered * s,
                       "4 B x (B x P) x floor(r x N/P)"});
    p.head_flops_per_step = 6 * gathered * s * d;
  } else if (m == "vfc") {
    const double rows = static_cast<double>(in.vfc_rows);
    p.items.push_back(
        {"virtual rows, gradient, momentum, saved rows", 4 * f * rows * d, "4 x 4 B x M x D"});
    p.items.push_back({"logits and softmax (autograd)", 3 * f * b * rows, "3 x 4 B x B x M"});
    p.head_flops_per_step = 6 * b * rows * d;
  } else if (m == "ffc") {
    const double q = static_cast<double>(
        in.pool > 0 ? in.pool : default_pool_size(in.num_classes, static_cast<int64_t>(gathered)));
    p.pool = static_cast<int64_t>(q);
    const double q_local = in.ffc_sharded ? std::ceil(q / ranks) : q;
    const double probes = in.ffc_sharded ? gathered : b + b / 2;
    p.items.push_back({"pool rows", 2 * f * q_local * d,
                       in.ffc_sharded ? "2 x 4 B x ceil(Q/P) x D" : "2 x 4 B x Q x D"});
    p.items.push_back({"pool metadata (replicated)", 73 * q,
                       "about 73 B per slot: label map, LRU links, labels, toggles, steps"});
    p.items.push_back({"logits of cos1 and cos2 (in place)", 2 * f * probes * q_local,
                       "2 x 4 B x gathered probes x slots on the rank"});
    p.head_flops_per_step = (in.ffc_rollback ? 2 : 1) * 4 * probes * q_local * d;
  }
  if (in.images > 0) {
    // The binary dataset index (data/record_index.h): offsets of the images, identity records
    // and header, and the class table. Mapped and shared by the ranks of a node through the page
    // cache; counted here in full, as a rank that reads every page would hold it.
    const double entries = static_cast<double>(in.images) + n + 1;
    p.items.push_back({"dataset index (mapped, node-shared)", 8 * entries + 8 * (n + 1),
                       "8 B x (images + N + 1) + 8 B x (N + 1)"});
  }
  for (const auto& item : p.items) {
    p.total_bytes += item.bytes;
  }
  p.memory_bytes = in.memory_bytes > 0 ? in.memory_bytes : machine_memory_bytes();
  p.fits = p.total_bytes <= p.memory_bytes;
  return p;
}

std::string plan_text(const Plan& p) {
  std::ostringstream o;
  const auto& in = p.input;
  o << "plan: method " << in.method << ", N = " << in.num_classes << ", D = " << in.embedding
    << ", batch " << in.batch << " per rank, " << in.ranks << " rank(s), network " << in.network
    << " (" << p.backbone_parameters << " parameters)";
  if (in.method == "pfc") {
    o << ", sample rate " << in.sample_rate;
  }
  if (in.method == "ffc") {
    o << ", pool Q = " << p.pool << (in.ffc_sharded ? " (sharded)" : " (replicated)");
  }
  o << "\n\nper rank:\n";
  for (const auto& item : p.items) {
    char line[256];
    std::snprintf(line, sizeof(line), "  %-44s %12s   %s\n", item.name.c_str(),
                  human_bytes(item.bytes, 2).c_str(), item.formula.c_str());
    o << line;
  }
  char line[256];
  std::snprintf(line, sizeof(line), "  %-44s %12s\n", "total",
                human_bytes(p.total_bytes, 2).c_str());
  o << line;
  std::snprintf(line, sizeof(line), "\nhead: %.3g GFLOP per step per rank\n",
                p.head_flops_per_step / 1e9);
  o << line;
  o << "fits in " << human_bytes(p.memory_bytes, 2) << ": " << (p.fits ? "yes" : "NO") << "\n";
  return o.str();
}

std::string plan_json(const Plan& p) {
  nlohmann::ordered_json j;
  j["method"] = p.input.method;
  j["num_classes"] = p.input.num_classes;
  j["embedding"] = p.input.embedding;
  j["batch"] = p.input.batch;
  j["ranks"] = p.input.ranks;
  j["network"] = p.input.network;
  if (p.input.method == "ffc") {
    j["pool"] = p.pool;
  }
  nlohmann::ordered_json items = nlohmann::ordered_json::array();
  for (const auto& item : p.items) {
    items.push_back({{"name", item.name}, {"bytes", item.bytes}, {"formula", item.formula}});
  }
  j["per_rank"] = items;
  j["total_bytes"] = p.total_bytes;
  j["head_flops_per_step"] = p.head_flops_per_step;
  j["memory_bytes"] = p.memory_bytes;
  j["fits"] = p.fits;
  return j.dump(2);
}

}  // namespace ffc::plan
