#include "plan/cluster_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/json_get.h"
#include "common/text.h"
#include "plan/cluster_presets.h"

namespace ffc::plan {
namespace {

using Json = nlohmann::ordered_json;

std::string source_of(const Json& j, const std::string& field) {
  const auto sources = j.find("sources");
  if (sources == j.end() || !sources->is_object()) {
    return "";
  }
  return json_string(*sources, field);
}

const Json& section(const Json& presets, const std::string& name) {
  if (!presets.contains(name) || !presets[name].is_object()) {
    throw ConfigError("cluster presets: no '" + name + "' section");
  }
  return presets[name];
}

std::string known_keys(const Json& sec) {
  std::string out;
  for (const auto& [k, v] : sec.items()) {
    out += (out.empty() ? "" : ", ") + k;
  }
  return out;
}

// The network presets a multi-node job can use (not "none").
std::string replace_none(std::string keys) {
  const std::string none = "none, ";
  const size_t at = keys.find(none);
  if (at != std::string::npos) {
    keys.erase(at, none.size());
  }
  return keys;
}

double number(const std::string& key, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v) && v >= 0) {
      return v;
    }
  } catch (const std::exception&) {
  }
  throw ConfigError("--cluster " + key + "=" + text + ": not a number >= 0");
}

void apply_network(ClusterSpec& c, const Json& presets, const std::string& key) {
  const Json& nets = section(presets, "networks");
  if (!nets.contains(key)) {
    throw ConfigError("--cluster net=" + key + ": no such network preset (" + known_keys(nets) +
                      "; ffc plan --cluster list)");
  }
  const Json& n = nets[key];
  c.net = key;
  c.net_name = json_string(n, "name", key);
  c.net_gbits = json_number(n, "gbits", 0.0);
  c.net_latency_us = json_number(n, "latency_us", 0.0);
}

// Ring collectives over `p` ranks at bus bandwidth `bw` (bytes/s) with `alpha` seconds each.
double ring_all_reduce(double bytes, int p, double bw, double alpha) {
  return p <= 1 ? 0.0 : alpha + 2.0 * (p - 1) / p * bytes / bw;
}
double ring_gather(double total_bytes, int p, double bw, double alpha) {  // all-gather or RS
  return p <= 1 ? 0.0 : alpha + 1.0 * (p - 1) / p * total_bytes / bw;
}

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// One section of `--cluster list`: each preset, its values and their sources.
void list_presets(std::ostream& o, const Json& presets) {
  for (const auto& [k, p] : presets.items()) {
    o << "\n  " << k << ": " << json_string(p, "name", k) << "\n";
    for (const auto& [field, v] : p.items()) {
      if (field == "name" || field == "sources") {
        continue;
      }
      const std::string source = source_of(p, field);
      char line[96];
      std::snprintf(line, sizeof(line), "    %-14s %8s", field.c_str(), v.dump().c_str());
      o << line << (source.empty() ? "" : "   " + source) << "\n";
    }
  }
}

// The backbone runs in 16 bits when asked and the GPU has 16-bit tensor cores.
bool mixed_precision(const ClusterSpec& c) {
  return c.precision == "mixed" && (c.tflops_bf16 > 0 || c.tflops_fp16 > 0);
}

// The backbone's peak and achievable share: the BF16 (else FP16) tensor rate, or FP32.
double backbone_peak_tflops(const ClusterSpec& c) {
  return mixed_precision(c) ? std::max(c.tflops_bf16, c.tflops_fp16) : c.tflops_fp32;
}
double backbone_fraction(const ClusterSpec& c) {
  return mixed_precision(c) ? kBackboneMixedFraction : kBackboneFp32Fraction;
}

// ffc's head runs in TF32 where the GPU has it (tf32: true); insightface's in FP32.
bool head_in_tf32(const ClusterSpec& c, bool insightface) {
  return !insightface && c.tflops_tf32 > 0;
}
double head_peak_tflops(const ClusterSpec& c, bool insightface) {
  return head_in_tf32(c, insightface) ? c.tflops_tf32 : c.tflops_fp32;
}

}  // namespace

Json cluster_presets(const std::string& file) {
  if (file.empty()) {
    return Json::parse(kClusterPresetsJson);
  }
  std::ifstream in(file);
  if (!in) {
    throw IoError(file + ": cannot read the cluster presets");
  }
  try {
    return Json::parse(in);
  } catch (const std::exception& e) {
    throw ConfigError(file + ": not valid JSON (" + e.what() + ")");
  }
}

namespace {

// One key=value override of --cluster `spec`; net= also sets `net_given`.
void apply_override(ClusterSpec& c, const Json& presets, const std::string& spec,
                    const std::string& k, const std::string& v, bool& net_given) {
  if (k == "net") {
    apply_network(c, presets, v);
    net_given = true;
  } else if (k == "precision") {
    if (v != "mixed" && v != "fp32") {
      throw ConfigError("--cluster precision=" + v + ": mixed or fp32");
    }
    c.precision = v;
  } else if (k == "nodes" || k == "gpus_per_node" || k == "nics") {
    const double n = number(k, v);
    if (n != std::floor(n) || n > 1e6 || (k != "nics" && n < 1)) {
      throw ConfigError("--cluster " + k + "=" + v + ": a whole number" +
                        (k == "nics" ? "" : " >= 1"));
    }
    (k == "nodes"           ? c.nodes
     : k == "gpus_per_node" ? c.gpus_per_node
                            : c.nics) = static_cast<int>(n);
  } else if (k == "memory_gib") {
    c.memory_gib = number(k, v);
  } else if (k == "tflops_fp16") {
    c.tflops_fp16 = number(k, v);
  } else if (k == "tflops_bf16") {
    c.tflops_bf16 = number(k, v);
  } else if (k == "tflops_tf32") {
    c.tflops_tf32 = number(k, v);
  } else if (k == "tflops_fp32") {
    c.tflops_fp32 = number(k, v);
  } else if (k == "memory_gbs") {
    c.memory_gbs = number(k, v);
  } else if (k == "bus_gbs") {
    c.bus_gbs = number(k, v);
  } else if (k == "latency_us") {
    c.latency_us = number(k, v);
  } else if (k == "net_gbits") {
    c.net_gbits = number(k, v);
  } else if (k == "net_latency_us") {
    c.net_latency_us = number(k, v);
  } else {
    throw ConfigError("--cluster " + spec + ": unknown key '" + k +
                      "' (nodes, gpus_per_node, net, nics, precision, memory_gib, tflops_fp16, "
                      "tflops_bf16, tflops_tf32, tflops_fp32, memory_gbs, bus_gbs, latency_us, "
                      "net_gbits, net_latency_us)");
  }
}

}  // namespace

ClusterSpec parse_cluster(const std::string& spec, const Json& presets) {
  const Json& gpus = section(presets, "gpus");
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ',');) {
    if (!part.empty()) {
      parts.push_back(part);
    }
  }
  if (parts.empty() || parts[0].find('=') != std::string::npos) {
    throw ConfigError("--cluster " + spec + ": start with a GPU preset (" + known_keys(gpus) +
                      "), then key=value overrides, e.g. h100-80gb,nodes=8,net=ib-ndr");
  }
  if (!gpus.contains(parts[0])) {
    throw ConfigError("--cluster " + spec + ": no GPU preset '" + parts[0] + "' (" +
                      known_keys(gpus) + "; ffc plan --cluster list)");
  }
  const Json& g = gpus[parts[0]];
  ClusterSpec c;
  c.gpu = parts[0];
  c.gpu_name = json_string(g, "name", c.gpu);
  c.memory_gib = json_number(g, "memory_gib", 0.0);
  c.tflops_fp16 = json_number(g, "tflops_fp16", 0.0);
  c.tflops_bf16 = json_number(g, "tflops_bf16", 0.0);
  c.tflops_tf32 = json_number(g, "tflops_tf32", 0.0);
  c.tflops_fp32 = json_number(g, "tflops_fp32", 0.0);
  c.memory_gbs = json_number(g, "memory_gbs", 0.0);
  c.gpus_per_node = static_cast<int>(json_number(g, "gpus_per_node", 8));
  c.bus_gbs = json_number(g, "bus_gbs", 0.0);
  c.latency_us = json_number(g, "latency_us", 0.0);
  apply_network(c, presets, "none");
  bool net_given = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == std::string::npos) {
      throw ConfigError("--cluster " + spec + ": '" + parts[i] + "' is not key=value");
    }
    apply_override(c, presets, spec, parts[i].substr(0, eq), parts[i].substr(eq + 1), net_given);
  }
  if (c.nodes > 1 && (!net_given && c.net_gbits <= 0)) {
    throw ConfigError("--cluster " + spec + ": " + std::to_string(c.nodes) +
                      " nodes need a network between them: add net=one of " +
                      replace_none(known_keys(section(presets, "networks"))));
  }
  if (c.nodes > 1 && c.net_gbits <= 0) {
    throw ConfigError("--cluster " + spec + ": net " + c.net + " has no bandwidth for " +
                      std::to_string(c.nodes) + " nodes");
  }
  if (c.tflops_fp32 <= 0 || c.memory_gbs <= 0 || c.memory_gib <= 0 ||
      (c.gpus() > 1 && c.bus_gbs <= 0)) {
    throw ConfigError("--cluster " + spec +
                      ": tflops_fp32, memory_gbs, memory_gib and (more than one GPU) bus_gbs "
                      "must be positive");
  }
  if (c.nics == 0) {
    c.nics = c.gpus_per_node;
  }
  return c;
}

std::string cluster_list_text(const Json& presets) {
  std::ostringstream o;
  o << "GPUs (--cluster GPU[,key=value...]):\n";
  list_presets(o, section(presets, "gpus"));
  o << "\nNetworks between nodes (net=...; nics=ports per node, default one per GPU):\n";
  list_presets(o, section(presets, "networks"));
  o << "\nOther keys: nodes, gpus_per_node, precision (mixed or fp32: the backbone's).\n";
  return o.str();
}

namespace {

// The shapes of a step that every part of its plan reads.
struct StepShape {
  std::string method;
  bool insightface = false;
  int p = 1;           // GPUs
  double n = 0;        // classes
  double d = 0;        // embedding
  double b = 0;        // batch per GPU
  double params = 0;   // backbone parameters
  double local = 0;    // classes per GPU
  double sampled = 0;  // the classes a step computes per GPU (Partial FC: its sample)
  double passes = 1;   // FFC with rollback: two
  double big_b = 0;    // the global batch
};

// Memory per GPU: ffc's items, with mixed precision's halved activations and 16-bit copies; for
// insightface's implementation its head tensors instead of ffc's. Sets fits and tight.
void plan_gpu_memory(StepPlan& s, const StepShape& k, const PlanInput& pin, const ClusterSpec& c) {
  const std::string& m = k.method;
  const double d = k.d;
  const double b = k.b;
  const int p = k.p;
  const double params = k.params;
  const double local = k.local;
  const double sampled = k.sampled;
  const bool insightface = k.insightface;
  const bool mixed = mixed_precision(c);
  if (mixed) {
    // Activations in 16 bits; autocast's 16-bit copies of the weights.
    for (auto& item : s.memory.items) {
      if (item.name == "activations kept for backward") {
        item.bytes /= 2;
        item.formula += ", 16-bit (mixed precision)";
      }
    }
    s.memory.items.push_back({"16-bit weight copies (autocast)", 2 * params, "2 B x parameters"});
  }
  if (insightface) {
    // arcface_torch v1 partial_fc.py: every head tensor in float32. Model parallel (r = 1): the
    // weight and its momentum, the gradient and the normalised weight. Partial FC: the full
    // weight and momentum, and for the sampled rows their copies, gradient and normalised rows.
    // Eight logits-sized buffers live at the peak: the logits, the copies autograd saves for
    // the in-place acos_ and cos_ of the margin, the softmax (which becomes the gradient), and
    // the margin backward's temporaries.
    std::vector<PlanItem> items;
    for (const auto& item : s.memory.items) {
      if (item.name.rfind("head", 0) != 0 && item.name.rfind("logits", 0) != 0 &&
          item.name.rfind("sampled", 0) != 0) {
        items.push_back(item);
      }
    }
    const double f = 4;
    const double big_b = b * p;
    if (m == "fc") {
      items.push_back({"head weight, momentum, gradient, normalised weight (fp32)",
                       4 * f * local * d, "4 x 4 B x ceil(N/P) x D"});
    } else if (m == "pfc") {
      items.push_back(
          {"head weight + momentum (fp32)", 2 * f * local * d, "2 x 4 B x ceil(N/P) x D"});
      items.push_back({"sampled rows: copy, momentum copy, gradient, normalised (fp32)",
                       4 * f * sampled * d, "4 x 4 B x floor(r x N/P) x D"});
    }
    if (m == "fc" || m == "pfc") {
      items.push_back({"logits-sized buffers at the peak (fp32)", 8 * f * big_b * sampled,
                       "8 x 4 B x (B x P) x classes on the GPU"});
      items.push_back(
          {"gathered embeddings and their gradient", 2 * f * big_b * d, "2 x 4 B x (B x P) x D"});
    }
    s.memory.items = items;
  }
  s.memory.total_bytes = 0;
  for (const auto& item : s.memory.items) {
    s.memory.total_bytes += item.bytes;
  }
  s.capacity_bytes = pin.memory_bytes;
  s.memory.memory_bytes = s.capacity_bytes;
  s.fits = s.memory.total_bytes <= s.capacity_bytes;
  s.memory.fits = s.fits;
  s.tight = std::abs(s.memory.total_bytes / s.capacity_bytes - 1) <= kTightShare;
}

// Compute: the backbone, the head, the optimiser's memory traffic. Returns the backbone's
// backward seconds (what the gradient all-reduce can hide under) and the images of a step.
double plan_compute(StepPlan& s, const StepShape& k, const PlanInput& pin, const ClusterSpec& c,
                    double& probe_images, double& gallery_images) {
  const std::string& m = k.method;
  const double b = k.b;
  const double d = k.d;
  const double params = k.params;
  const double local = k.local;
  const double sampled = k.sampled;
  const double passes = k.passes;
  const bool insightface = k.insightface;
  const double bb_rate = backbone_fraction(c) * backbone_peak_tflops(c) * 1e12;
  const double head_rate = kHeadFraction * head_peak_tflops(c, insightface) * 1e12;
  const double mem_bw = c.memory_gbs * 1e9;
  // Compute: the backbone's images (FFC: probe forward + backward, gallery forward only).
  const double fwd = s.memory.backbone_flops_per_image;
  probe_images = b;
  gallery_images = 0;
  if (m == "ffc") {
    probe_images = passes * 1.5 * b;
    gallery_images = passes * 1.5 * b;
  }
  s.backbone_s = (3 * probe_images + gallery_images) * fwd / bb_rate;
  const double bwd_s = 2 * probe_images * fwd / bb_rate;
  double head_flops = s.memory.head_flops_per_step;
  if (m == "backbone") {
    head_flops = 0;
  }
  s.head_s = head_flops / head_rate;
  // The optimiser: SGD with momentum reads weight, gradient and momentum and writes weight and
  // momentum (20 B a float32 parameter), over the backbone and the head rows it updates;
  // insightface's Partial FC also gathers and scatters the sampled rows and their momentum.
  double head_rows = 0;
  if (m == "fc") {
    head_rows = local;
  } else if (m == "pfc") {
    head_rows = sampled * (insightface ? 2 : 1);
  } else if (m == "vfc") {
    head_rows = static_cast<double>(pin.vfc_rows);
  }
  s.update_s = 20 * (params + head_rows * d) / mem_bw;

  return bwd_s;
}

// Communication: the collectives of a step, their seconds and what of them is exposed (not
// under the backward).
void plan_communication(StepPlan& s, const StepShape& k, const PlanInput& pin, const ClusterSpec& c,
                        double bwd_s) {
  const std::string& m = k.method;
  const int p = k.p;
  const double d = k.d;
  const double b = k.b;
  const double params = k.params;
  const double passes = k.passes;
  const bool insightface = k.insightface;
  // Communication: intra-node bus, or the nodes' network ports when the job spans nodes.
  double bw = c.bus_gbs * 1e9;
  double alpha = c.latency_us * 1e-6;
  if (c.nodes > 1) {
    bw = std::min(bw, kNetworkFraction * c.nics * c.net_gbits / 8 * 1e9);
    alpha = c.net_latency_us * 1e-6;
  }
  // Data-parallel gradients (float32) in buckets: DDP overlaps them with the backward
  // (insightface); ffc all-reduces after the backward.
  double grad_bytes = 4 * params;
  if (m == "vfc") {
    grad_bytes += 4 * static_cast<double>(pin.vfc_rows) * d;  // the virtual rows, replicated
  }
  const double buckets = std::ceil(grad_bytes / kBucketBytes);
  Collective grads{"all_reduce gradients (" + fmt(buckets, 0) + " buckets)", grad_bytes, 0,
                   insightface};
  grads.seconds = p <= 1 ? 0.0 : ring_all_reduce(grad_bytes, p, bw, buckets * alpha);
  s.collectives.push_back(grads);
  const double big_b = b * p;
  if (m == "fc" || m == "pfc") {
    s.collectives.push_back(
        {"all_gather labels", 8 * big_b, ring_gather(8 * big_b, p, bw, alpha), false});
    s.collectives.push_back(
        {"all_gather embeddings", 4 * big_b * d, ring_gather(4 * big_b * d, p, bw, alpha), false});
    s.collectives.push_back({"all_reduce softmax max, sum, loss (3)", 3 * 4 * big_b,
                             3 * ring_all_reduce(4 * big_b, p, bw, alpha), false});
    s.collectives.push_back({"reduce_scatter embedding gradient", 4 * big_b * d,
                             ring_gather(4 * big_b * d, p, bw, alpha), false});
  } else if (m == "ffc" && p > 1) {
    // Per pass: the gallery embeddings and labels to every rank (pool update), and with the
    // pool sharded the probes too, the softmax's max and sum, and the probes' gradient back.
    const double rows = 1.5 * big_b;
    s.collectives.push_back({"all_gather gallery embeddings + labels (x" + fmt(passes, 0) + ")",
                             passes * rows * (4 * d + 8),
                             passes * ring_gather(rows * (4 * d + 8), p, bw, alpha), false});
    if (pin.ffc_sharded) {
      s.collectives.push_back({"all_gather probe embeddings (x" + fmt(passes, 0) + ")",
                               passes * rows * 4 * d,
                               passes * ring_gather(rows * 4 * d, p, bw, alpha), false});
      s.collectives.push_back({"all_reduce softmax max, sum (2 x" + fmt(passes, 0) + ")",
                               passes * 2 * 4 * rows,
                               passes * 2 * ring_all_reduce(4 * rows, p, bw, alpha), false});
      s.collectives.push_back({"reduce_scatter probe gradient (x" + fmt(passes, 0) + ")",
                               passes * rows * 4 * d,
                               passes * ring_gather(rows * 4 * d, p, bw, alpha), false});
    }
  }
  for (const auto& col : s.collectives) {
    s.comm_s += col.seconds;
    if (!col.overlapped) {
      s.comm_exposed_s += col.seconds;
    } else {
      // Under the backward; the last bucket waits after it.
      const double last = col.seconds / std::max(1.0, std::ceil(col.bytes / kBucketBytes));
      s.comm_exposed_s += std::max(col.seconds - bwd_s, last);
    }
  }
}

}  // namespace

StepPlan plan_step(const StepInput& in, const ClusterSpec& c) {
  StepPlan s;
  const std::string& m = in.plan.method;
  s.method = m;
  const bool insightface = in.impl == "insightface";
  if (in.impl != "ffc" && !insightface) {
    throw ConfigError("plan: --impl " + in.impl + " is not ffc or insightface");
  }
  PlanInput pin = in.plan;
  pin.ranks = c.gpus();
  pin.memory_bytes = c.memory_gib * 1024.0 * 1024.0 * 1024.0;
  pin.images = 0;  // the dataset index lives in host memory, not the GPU's
  // ffc's own memory items; insightface's below replace the head's.
  s.memory = make_plan(pin);
  if (insightface && (m == "vfc" || m == "ffc")) {
    s.note = "insightface's arcface_torch has no " + m + " head";
    return s;
  }
  StepShape k;
  k.method = m;
  k.insightface = insightface;
  k.p = c.gpus();
  k.n = static_cast<double>(pin.num_classes);
  k.d = static_cast<double>(pin.embedding);
  k.b = static_cast<double>(pin.batch);
  k.params = static_cast<double>(s.memory.backbone_parameters);
  k.local = std::ceil(k.n / k.p);
  k.sampled = m == "pfc" ? std::floor(pin.sample_rate * k.local) : k.local;
  k.passes = m == "ffc" && pin.ffc_rollback ? 2 : 1;
  k.big_b = k.b * k.p;
  plan_gpu_memory(s, k, pin, c);
  double probe_images = 0;
  double gallery_images = 0;
  const double bwd_s = plan_compute(s, k, pin, c, probe_images, gallery_images);
  plan_communication(s, k, pin, c, bwd_s);
  const int p = k.p;
  const double big_b = k.big_b;
  s.step_s = s.backbone_s + s.head_s + s.update_s + s.comm_exposed_s;
  s.probe_images_per_s = p * probe_images / s.step_s;
  s.images_per_s = p * (probe_images + gallery_images) / s.step_s;
  if (m != "ffc") {
    s.probe_images_per_s = s.images_per_s;
  }
  if (in.images > 0) {
    // An epoch: one pass over the images at `batch` per GPU (FFC: its instance loader).
    s.hours_per_epoch = std::ceil(static_cast<double>(in.images) / big_b) * s.step_s / 3600;
  }
  const std::pair<double, const char*> parts[] = {{s.backbone_s, "backbone"},
                                                  {s.head_s, "head"},
                                                  {s.comm_exposed_s, "communication"},
                                                  {s.update_s, "optimiser memory traffic"}};
  s.bottleneck = std::max_element(std::begin(parts), std::end(parts))->second;
  if (!s.fits && !s.tight) {
    s.bottleneck = "memory: does not fit";
  }
  return s;
}

std::string step_plans_text(const std::vector<StepPlan>& plans, const StepInput& in,
                            const ClusterSpec& c) {
  std::ostringstream o;
  const PlanInput& pin = in.plan;
  const bool insightface = in.impl == "insightface";
  o << "plan on " << c.gpus() << " x " << c.gpu_name << " (" << c.nodes << " node(s) x "
    << c.gpus_per_node << "; within a node " << fmt(c.bus_gbs, 0) << " GB/s bus, "
    << fmt(c.latency_us, 0) << " us";
  if (c.nodes > 1) {
    o << "; between nodes " << c.nics << " x " << c.net_name << ", " << fmt(c.net_latency_us, 0)
      << " us";
  }
  o << ")\n"
    << "job: N = " << grouped(pin.num_classes) << ", D = " << pin.embedding << ", batch "
    << pin.batch << " per GPU, network " << pin.network << " ("
    << fmt((plans.empty() ? 0 : plans[0].memory.backbone_flops_per_image) / 1e9, 2)
    << " GFLOP forward per image), implementation " << in.impl << "\n"
    << "model: backbone " << (mixed_precision(c) ? "mixed precision" : "fp32") << " at "
    << fmt(backbone_fraction(c), 2) << " x " << fmt(backbone_peak_tflops(c), 1) << " TFLOPS; head "
    << (head_in_tf32(c, insightface) ? "tf32" : "fp32") << " at " << fmt(kHeadFraction, 2) << " x "
    << fmt(head_peak_tflops(c, insightface), 1) << " TFLOPS; memory " << fmt(c.memory_gbs, 0)
    << " GB/s; GPU memory " << fmt(c.memory_gib, 2) << " GiB (docs/plan.md)\n\n";
  char line[512];
  std::snprintf(line, sizeof(line), "%-9s %12s %-6s %9s %9s %8s %8s %10s %11s %11s  %s\n", "method",
                "memory/GPU", "fits", "step ms", "backbone", "head", "update", "comm (exp)",
                "images/s", "probe img/s", "bottleneck");
  o << line;
  for (const auto& s : plans) {
    if (!s.note.empty()) {
      o << s.method << ": " << s.note << "\n";
      continue;
    }
    const std::string fits = s.tight ? "tight" : s.fits ? "yes" : "NO";
    std::snprintf(line, sizeof(line), "%-9s %12s %-6s %9.1f %9.1f %8.1f %8.1f %10s %11s %11s  %s\n",
                  s.method.c_str(), human_bytes(s.memory.total_bytes, 2).c_str(), fits.c_str(),
                  1e3 * s.step_s, 1e3 * s.backbone_s, 1e3 * s.head_s, 1e3 * s.update_s,
                  (fmt(1e3 * s.comm_exposed_s, 1) + "/" + fmt(1e3 * s.comm_s, 1)).c_str(),
                  grouped(std::llround(s.images_per_s)).c_str(),
                  grouped(std::llround(s.probe_images_per_s)).c_str(), s.bottleneck.c_str());
    o << line;
  }
  if (in.images > 0) {
    o << "\nhours per epoch of " << grouped(in.images)
      << " images (one pass at the batch per GPU):";
    for (const auto& s : plans) {
      if (s.note.empty()) {
        o << " " << s.method << " " << fmt(s.hours_per_epoch, 2) << (s.fits ? "" : " (no fit)")
          << ";";
      }
    }
    o << "\n";
  }
  o << "\nms per step; comm: exposed / all collectives (gradient buckets under the backward "
    << (insightface ? "with DDP" : "only with DDP; ffc all-reduces after it") << ")."
    << " fits: tight = within " << fmt(100 * kTightShare, 0)
    << "% of the GPU's memory, which the model cannot call.\n\ncollectives per step:\n";
  for (const auto& s : plans) {
    if (!s.note.empty()) {
      continue;
    }
    o << "  " << s.method << ":";
    for (const auto& col : s.collectives) {
      o << " " << col.name << " " << human_bytes(col.bytes, 1) << " " << fmt(1e3 * col.seconds, 2)
        << " ms" << (col.overlapped ? " (overlapped)" : "") << ";";
    }
    o << "\n";
  }
  return o.str();
}

std::string step_plans_json(const std::vector<StepPlan>& plans, const StepInput& in,
                            const ClusterSpec& c) {
  Json out;
  Json cl;
  cl["gpu"] = c.gpu;
  cl["gpu_name"] = c.gpu_name;
  cl["nodes"] = c.nodes;
  cl["gpus_per_node"] = c.gpus_per_node;
  cl["gpus"] = c.gpus();
  cl["net"] = c.net;
  cl["nics"] = c.nics;
  cl["precision"] = c.precision;
  cl["memory_gib"] = c.memory_gib;
  out["cluster"] = cl;
  out["impl"] = in.impl;
  out["num_classes"] = in.plan.num_classes;
  out["embedding"] = in.plan.embedding;
  out["batch_per_gpu"] = in.plan.batch;
  out["network"] = in.plan.network;
  Json rows = Json::array();
  for (const auto& s : plans) {
    Json r;
    r["method"] = s.method;
    if (!s.note.empty()) {
      r["note"] = s.note;
      rows.push_back(r);
      continue;
    }
    r["images_per_s"] = s.images_per_s;
    r["probe_images_per_s"] = s.probe_images_per_s;
    r["step_seconds"] = s.step_s;
    r["memory_per_gpu_gib"] = s.memory.total_bytes / (1024.0 * 1024.0 * 1024.0);
    r["fits"] = s.fits;
    r["tight"] = s.tight;
    r["bottleneck"] = s.bottleneck;
    r["backbone_seconds"] = s.backbone_s;
    r["head_seconds"] = s.head_s;
    r["update_seconds"] = s.update_s;
    r["comm_seconds"] = s.comm_s;
    r["comm_exposed_seconds"] = s.comm_exposed_s;
    if (in.images > 0) {
      r["hours_per_epoch"] = s.hours_per_epoch;
    }
    if (s.method == "ffc") {
      r["pool"] = s.memory.pool;
    }
    Json cols = Json::array();
    for (const auto& col : s.collectives) {
      cols.push_back({{"name", col.name},
                      {"bytes", col.bytes},
                      {"seconds", col.seconds},
                      {"overlapped", col.overlapped}});
    }
    r["collectives"] = cols;
    Json items = Json::array();
    for (const auto& item : s.memory.items) {
      items.push_back({{"name", item.name}, {"bytes", item.bytes}, {"formula", item.formula}});
    }
    r["memory_items"] = items;
    rows.push_back(r);
  }
  out["methods"] = rows;
  return out.dump(2);
}

}  // namespace ffc::plan
