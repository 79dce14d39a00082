#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "common/error.h"

namespace ffc {
namespace {

// Thrown by a key's parser; turned into a ConfigError naming the key and the source.
struct BadValue {
  std::string reason;
};

struct KeySpec {
  std::string name;
  std::string type;
  std::string allowed;
  std::string doc;
  std::function<void(Config&, const YAML::Node&)> parse;
  std::function<std::string(const Config&)> format;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) {
    return "";
  }
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string scalar_text(const YAML::Node& node) {
  if (!node.IsScalar()) {
    throw BadValue{node.IsSequence() ? "got a list"
                   : node.IsMap()    ? "got a mapping"
                                     : "got nothing"};
  }
  return node.Scalar();
}

int64_t parse_int(const std::string& text) {
  const std::string t = trim(text);
  int64_t v = 0;
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, v);
  if (t.empty() || ec != std::errc() || ptr != end) {
    throw BadValue{"'" + text + "' is not an integer"};
  }
  return v;
}

double parse_real(const std::string& text) {
  const std::string t = trim(text);
  double v = 0;
  const char* begin = t.data();
  const char* end = t.data() + t.size();
  if (begin != end && *begin == '+') {
    ++begin;
  }
  auto [ptr, ec] = std::from_chars(begin, end, v);
  if (begin == end || ec != std::errc() || ptr != end || !std::isfinite(v)) {
    throw BadValue{"'" + text + "' is not a finite number"};
  }
  return v;
}

bool parse_bool(const std::string& text) {
  std::string t = trim(text);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "yes" || t == "on") {
    return true;
  }
  if (t == "false" || t == "no" || t == "off") {
    return false;
  }
  throw BadValue{"'" + text + "' is not a boolean"};
}

std::string format_real(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;
  std::string s(buf, ptr);
  // Keep the value a float in YAML's eyes ("1" -> "1.0") without changing it.
  if (s.find_first_of(".eEn") == std::string::npos) {
    s += ".0";
  }
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char hex[8];
          std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(c));
          out += hex;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string range_text(const std::string& what, double lo, double hi, bool lo_open, bool hi_open,
                       bool integer) {
  auto fmt = [integer](double v) {
    if (integer) {
      return std::to_string(static_cast<int64_t>(v));
    }
    return format_real(v);
  };
  const bool has_hi = hi < std::numeric_limits<double>::max();
  if (!has_hi) {
    return what + (lo_open ? " > " : " >= ") + fmt(lo);
  }
  return what + " in " + (lo_open ? "(" : "[") + fmt(lo) + ", " + fmt(hi) + (hi_open ? ")" : "]");
}

KeySpec int_key(const char* name, int64_t Config::*member, int64_t lo, int64_t hi,
                const char* doc) {
  const bool unbounded = hi == std::numeric_limits<int64_t>::max();
  const std::string allowed = range_text(
      "integer", static_cast<double>(lo),
      unbounded ? std::numeric_limits<double>::max() : static_cast<double>(hi), false, false, true);
  return {name,
          "int",
          allowed,
          doc,
          [member, lo, hi, allowed](Config& c, const YAML::Node& n) {
            const int64_t v = parse_int(scalar_text(n));
            if (v < lo || v > hi) {
              throw BadValue{std::to_string(v) + " is out of range"};
            }
            c.*member = v;
          },
          [member](const Config& c) { return std::to_string(c.*member); }};
}

KeySpec real_key(const char* name, double Config::*member, double lo, double hi, bool lo_open,
                 bool hi_open, const char* doc) {
  const std::string allowed = range_text("number", lo, hi, lo_open, hi_open, false);
  return {name,
          "float",
          allowed,
          doc,
          [member, lo, hi, lo_open, hi_open](Config& c, const YAML::Node& n) {
            const double v = parse_real(scalar_text(n));
            if (v < lo || (lo_open && v == lo) || v > hi || (hi_open && v == hi)) {
              throw BadValue{format_real(v) + " is out of range"};
            }
            c.*member = v;
          },
          [member](const Config& c) { return format_real(c.*member); }};
}

KeySpec bool_key(const char* name, bool Config::*member, const char* doc) {
  return {name,
          "bool",
          "true or false",
          doc,
          [member](Config& c, const YAML::Node& n) { c.*member = parse_bool(scalar_text(n)); },
          [member](const Config& c) { return std::string(c.*member ? "true" : "false"); }};
}

KeySpec string_key(const char* name, std::string Config::*member, bool allow_empty,
                   const char* doc) {
  return {name,
          "string",
          allow_empty ? "any string" : "a non-empty string",
          doc,
          [member, allow_empty](Config& c, const YAML::Node& n) {
            std::string v = n.IsNull() ? std::string() : scalar_text(n);
            if (!allow_empty && trim(v).empty()) {
              throw BadValue{"the value is empty"};
            }
            c.*member = std::move(v);
          },
          [member](const Config& c) { return quote(c.*member); }};
}

// `aliases` map other spellings to a choice (e.g. bf16 -> bfloat16); the choice is stored.
KeySpec choice_key(const char* name, std::string Config::*member, std::vector<std::string> choices,
                   const std::string& doc,
                   std::vector<std::pair<std::string, std::string>> aliases = {}) {
  std::string allowed = "one of";
  for (const auto& ch : choices) {
    allowed += " " + ch;
  }
  if (!aliases.empty()) {
    allowed += " (or";
    for (const auto& [alias, choice] : aliases) {
      allowed += " " + alias;
    }
    allowed += ")";
  }
  return {name,
          "string",
          allowed,
          doc,
          [member, choices, aliases](Config& c, const YAML::Node& n) {
            std::string v = trim(scalar_text(n));
            for (const auto& [alias, choice] : aliases) {
              if (v == alias) {
                v = choice;
              }
            }
            if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
              throw BadValue{"'" + v + "' is not a choice"};
            }
            c.*member = v;
          },
          [member](const Config& c) { return c.*member; }};
}

KeySpec real_list_key(const char* name, std::vector<double> Config::*member, size_t count,
                      std::vector<std::pair<double, double>> ranges, const char* doc) {
  std::string allowed = "[";
  for (size_t i = 0; i < ranges.size(); ++i) {
    allowed += (i ? ", " : "") + std::string("[") + format_real(ranges[i].first) + ", " +
               format_real(ranges[i].second) + "]";
  }
  allowed += "]";
  return {name,
          "list of " + std::to_string(count) + " floats",
          allowed,
          doc,
          [member, count, ranges](Config& c, const YAML::Node& n) {
            if (!n.IsSequence()) {
              throw BadValue{"expected a list like [1.0, 0.5, 0.0]"};
            }
            if (n.size() != count) {
              throw BadValue{"the list has " + std::to_string(n.size()) + " elements"};
            }
            std::vector<double> v;
            for (size_t i = 0; i < count; ++i) {
              const double x = parse_real(scalar_text(n[i]));
              if (x < ranges[i].first || x > ranges[i].second) {
                throw BadValue{"element " + std::to_string(i) + " (" + format_real(x) +
                               ") is out of range"};
              }
              v.push_back(x);
            }
            c.*member = std::move(v);
          },
          [member](const Config& c) {
            std::string s = "[";
            for (size_t i = 0; i < (c.*member).size(); ++i) {
              s += (i ? ", " : "") + format_real((c.*member)[i]);
            }
            return s + "]";
          }};
}

KeySpec int_list_key(const char* name, std::vector<int64_t> Config::*member, int64_t lo,
                     const char* doc) {
  const std::string allowed = "a list of increasing integers >= " + std::to_string(lo);
  return {name,
          "list of ints",
          allowed,
          doc,
          [member, lo](Config& c, const YAML::Node& n) {
            if (!n.IsSequence()) {
              throw BadValue{"expected a list like [8, 14, 17]"};
            }
            std::vector<int64_t> v;
            for (size_t i = 0; i < n.size(); ++i) {
              const int64_t x = parse_int(scalar_text(n[i]));
              if (x < lo || (!v.empty() && x <= v.back())) {
                throw BadValue{"element " + std::to_string(i) + " (" + std::to_string(x) +
                               ") is out of range or not increasing"};
              }
              v.push_back(x);
            }
            c.*member = std::move(v);
          },
          [member](const Config& c) {
            std::string s = "[";
            for (size_t i = 0; i < (c.*member).size(); ++i) {
              s += (i ? ", " : "") + std::to_string((c.*member)[i]);
            }
            return s + "]";
          }};
}

KeySpec string_list_key(const char* name, std::vector<std::string> Config::*member,
                        const char* doc) {
  return {name,
          "list of strings",
          "a list of non-empty strings",
          doc,
          [member](Config& c, const YAML::Node& n) {
            if (!n.IsSequence()) {
              throw BadValue{"expected a list like [lfw, cfp_fp, agedb_30]"};
            }
            std::vector<std::string> v;
            for (size_t i = 0; i < n.size(); ++i) {
              std::string x = trim(scalar_text(n[i]));
              if (x.empty()) {
                throw BadValue{"element " + std::to_string(i) + " is empty"};
              }
              v.push_back(std::move(x));
            }
            c.*member = std::move(v);
          },
          [member](const Config& c) {
            std::string s = "[";
            for (size_t i = 0; i < (c.*member).size(); ++i) {
              s += (i ? ", " : "") + quote((c.*member)[i]);
            }
            return s + "]";
          }};
}

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kMaxReal = std::numeric_limits<double>::max();

const std::vector<KeySpec>& key_table() {
  static const std::vector<KeySpec> table = {
      string_key("network", &Config::network, false,
                 "Backbone by its insightface name (r18, r34, r50, r100, r200, mbf, ...)."),
      int_key("embedding_size", &Config::embedding_size, 1, 65536,
              "Dimension D of the face embedding."),
      int_key("image_size", &Config::image_size, 8, 1024,
              "Input images are image_size x image_size pixels (insightface: 112)."),
      bool_key("fp16", &Config::fp16,
               "insightface's mixed-precision switch: with amp_dtype auto, the backbone's trunk "
               "in float16 with dynamic loss scaling (CUDA)."),
      choice_key("amp_dtype", &Config::amp_dtype, {"auto", "float32", "bfloat16", "float16"},
                 "Mixed precision of the backbone's trunk; auto: bfloat16 on GPUs that have it, "
                 "float32 on the CPU (float16 when fp16 is true); float16 scales the loss; the "
                 "head, softmax, pool and optimiser stay float32.",
                 {{"bf16", "bfloat16"}, {"fp16", "float16"}, {"fp32", "float32"}}),
      bool_key("tf32", &Config::tf32,
               "GPUs of compute capability >= 8: TF32 tensor cores for float32 convolutions and "
               "matrix products (the head's GEMMs); false: full float32 (no effect on the CPU)."),
      real_key("loss_scale", &Config::loss_scale, 0.0, 1e30, true, false,
               "float16: initial dynamic loss scale (halved on a step with non-finite gradients, "
               "which is skipped)."),
      int_key("loss_scale_growth_interval", &Config::loss_scale_growth_interval, 1, kMaxInt,
              "float16: finite steps in a row after which the loss scale doubles."),
      real_key("alpha", &Config::alpha, 0.0, 1.0, false, false,
               "FFC: gallery net EMA, theta_g <- alpha*theta_g + (1-alpha)*theta_p each step."),
      string_key("rec", &Config::rec, true,
                 "Dataset folder(s) with train.rec/.idx/property (comma-separated to concatenate), "
                 "or synthetic for procedural identities."),
      int_key("num_classes", &Config::num_classes, 0, int64_t{1} << 40,
              "Number of identities N; 0 reads it from the dataset."),
      int_key("num_image", &Config::num_image, 0, int64_t{1} << 40,
              "Number of training images; 0 reads it from the dataset."),
      choice_key("color_order", &Config::color_order, {"rgb", "bgr"},
                 "Channel order of decoded images (insightface: rgb; the FFC authors: bgr)."),
      choice_key("input_norm", &Config::input_norm, {"auto", "ffc", "insightface"},
                 "Pixels to network input: ffc (x-127.5)/128 (the FFC authors), insightface "
                 "(x-127.5)/127.5; auto: the one init_backbone records, else ffc. Recorded in "
                 "checkpoints and exported backbones."),
      bool_key("resize", &Config::resize,
               "Resize images of another size to image_size instead of failing."),
      bool_key("flip", &Config::flip, "Random horizontal mirror of training images (p = 0.5)."),
      int_key("num_workers", &Config::num_workers, 1, 256, "Loader threads per rank."),
      int_key("prefetch", &Config::prefetch, 1, 64, "Batches the loader prepares ahead."),
      choice_key("loader_mode", &Config::loader_mode, {"both", "instance", "identity"},
                 "FFC loaders: both (identity + instance), or one alone (ablation)."),
      choice_key("read_order", &Config::read_order, {"random", "block"},
                 "Epoch order: random (any record at any time), or block: each rank reads "
                 "shuffled blocks of read_block consecutive records, read_window blocks "
                 "shuffled together, each window fetched ahead in large reads (cluster "
                 "filesystems; docs/data.md)."),
      int_key("read_block", &Config::read_block, 1, int64_t{1} << 30,
              "read_order block: consecutive records per block."),
      int_key("read_window", &Config::read_window, 1, 1 << 20,
              "read_order block: blocks a rank shuffles together (its shuffle buffer)."),
      int_key("images_per_identity", &Config::images_per_identity, 0, 1024,
              "Virtual FC: images per identity in a batch (batch_size must be a multiple); 0: "
              "the largest divisor of batch_size up to 10."),
      int_key("synthetic_min_images", &Config::synthetic_min_images, 1, 1000000,
              "rec: synthetic - fewest images of an identity."),
      int_key("synthetic_max_images", &Config::synthetic_max_images, 1, 1000000,
              "rec: synthetic - most images of an identity."),
      real_key("synthetic_power", &Config::synthetic_power, 0.0, 10.0, true, false,
               "rec: synthetic - the share of identities with >= k images falls as k^-power."),
      real_key("synthetic_difficulty", &Config::synthetic_difficulty, 0.0, 1.0, false, false,
               "rec: synthetic - strength of per-image variation and nuisances (0 to 1)."),
      choice_key("method", &Config::method, method_names(),
                 "Classification head: " + method_list(false, " or ", true) +
                     "; backbone: none, for benchmarks (the backbone's own speed, the ceiling of "
                     "every method)."),
      real_key("sample_rate", &Config::sample_rate, 0.0, 1.0, true, false,
               "Partial FC: fraction of each rank's classes sampled per step."),
      real_list_key("margin_list", &Config::margin_list, 3, {{1.0, 4.0}, {0.0, 1.5}, {0.0, 1.0}},
                    "Combined margin (m1, m2, m3): cos(m1*theta + m2) - m3, as insightface."),
      choice_key("loss_type", &Config::loss_type, {"auto", "combined", "am", "arc", "sv"},
                 "Margin: combined (margin_list), am (CosFace), arc (ArcFace), sv (FFC authors); "
                 "auto: ffc am, vfc arc, fc/pfc combined."),
      real_key("margin", &Config::margin, 0.0, 1.5, false, false,
               "Margin m of loss_type am, arc and sv; 0: 0.5 (the FFC authors' launcher)."),
      real_key("scale", &Config::scale, 0.0, 1024.0, false, false,
               "Logit scale s; 0: 64 for combined (insightface), 32 otherwise (FFC, VFC)."),
      int_key("pool_size", &Config::pool_size, 0, int64_t{1} << 31,
              "FFC: slots Q of the class pool; 0: 1% of num_classes, at least the global batch."),
      choice_key("pool_placement", &Config::pool_placement, {"auto", "sharded", "replicated"},
                 "FFC: pool rows split over ranks (sharded) or copied on each (replicated); "
                 "auto: sharded with more than one rank."),
      bool_key("pool_random_init", &Config::pool_random_init,
               "FFC: empty slots hold random vectors that act as classes (the authors), instead "
               "of being left out of the softmax."),
      bool_key("rollback", &Config::rollback,
               "FFC: the first pass of each step is undone on the pool (the authors); false: one "
               "pass per step."),
      int_key("fresh_k", &Config::fresh_k, 0, 1000,
              "FFC: top-k pool cosines of a fresh identity; 0: clamp(int(0.0002*Q), 3, 10)."),
      real_key("fresh_weight", &Config::fresh_weight, 0.0, 100.0, false, false,
               "FFC: weight of the fresh-identity term."),
      int_key("vfc_rows", &Config::vfc_rows, 1, int64_t{1} << 30,
              "Virtual FC: virtual rows M; identity y uses row y mod M (the authors: 1000)."),
      int_key("batch_size", &Config::batch_size, 1, int64_t{1} << 20, "Images per rank per step."),
      real_key("lr", &Config::lr, 0.0, kMaxReal, true, false, "Base learning rate."),
      real_key("momentum", &Config::momentum, 0.0, 1.0, false, true, "SGD momentum."),
      real_key("weight_decay", &Config::weight_decay, 0.0, 1.0, false, true,
               "L2 weight decay of the SGD optimizer."),
      int_key("num_epoch", &Config::num_epoch, 1, 1000000, "Number of training epochs."),
      int_key("warmup_epoch", &Config::warmup_epoch, 0, 1000000,
              "Epochs of linear learning-rate warm-up (must be < num_epoch)."),
      choice_key("epoch_basis", &Config::epoch_basis, {"loader", "images"},
                 "What an epoch of the schedule, the progress lines and num_epoch counts: loader: "
                 "one pass of the method's loader; images: one pass over the images at "
                 "batch_size per rank whatever the loader (every method the same steps: "
                 "comparisons, ffc bench accuracy)."),
      choice_key("lr_schedule", &Config::lr_schedule, {"poly", "multistep"},
                 "poly: linear decay to 0 after warm-up (insightface); multistep: x0.1 at each of "
                 "lr_steps (the FFC authors)."),
      int_list_key("lr_steps", &Config::lr_steps, 1,
                   "Epochs at which multistep multiplies the learning rate by 0.1."),
      bool_key("nesterov", &Config::nesterov, "Nesterov momentum (the FFC authors: true)."),
      real_key("clip_grad_norm", &Config::clip_grad_norm, 0.0, 1e6, false, false,
               "Clip the backbone's gradient norm to this value; 0: no clipping (insightface: 5)."),
      int_key("schedule_steps", &Config::schedule_steps, 0, kMaxInt,
              "The schedule's length in steps, fitted to a budget (ffc bench accuracy --budget): "
              "the run ends there, the poly decay reaches 0 there, and the warm-up is the same "
              "share of it as warmup_epoch of num_epoch; 0: num_epoch epochs."),
      int_key("max_steps", &Config::max_steps, 0, kMaxInt,
              "Stop after this many steps (the schedule still spans num_epoch); 0: no limit."),
      int_key("save_every", &Config::save_every, 0, kMaxInt,
              "Steps between checkpoints; 0: only at the end and when stopped by a signal."),
      int_key("save_keep", &Config::save_keep, 0, 1000000,
              "Checkpoints kept in <output>/checkpoints (the newest); 0: all."),
      bool_key("save_last", &Config::save_last,
               "Save a checkpoint at the end of the run (benchmarks turn it off)."),
      string_key("resume", &Config::resume, true,
                 "auto: continue from the newest valid checkpoint of output; or a checkpoint "
                 "file; empty: start afresh (ffc train --resume overrides)."),
      string_key("init_backbone", &Config::init_backbone, true,
                 "Backbone file (ffc model export / ckpt export, tools/ffc_h5.py --from-pt) the "
                 "probe and gallery nets start from (fine-tuning); a resumed checkpoint wins."),
      int_key("nonfinite_skip", &Config::nonfinite_skip, 0, 1000000,
              "Consecutive steps with a non-finite loss or gradient that are skipped (not "
              "applied) before the run stops with exit status 1; 0: stop at the first."),
      choice_key("save_failure", &Config::save_failure, {"stop", "warn"},
                 "A checkpoint that cannot be written (full disk, I/O error): stop with exit "
                 "status 1, or warn and keep training; the earlier checkpoints stay either way."),
      string_key("output", &Config::output, false,
                 "Run folder for logs, metrics.jsonl and checkpoints."),
      int_key("seed", &Config::seed, 0, kMaxInt,
              "Seed of every random stream; a fixed seed makes a run repeatable."),
      int_key("frequent", &Config::frequent, 1, kMaxInt, "Steps between progress lines."),
      int_key("verbose", &Config::verbose, 1, kMaxInt, "Steps between evaluations."),
      bool_key("eval_every_epoch", &Config::eval_every_epoch,
               "Also evaluate at the end of every epoch of the schedule (epoch_basis), for "
               "accuracy against epochs (ffc bench accuracy)."),
      int_key("num_threads", &Config::num_threads, 0, 4096,
              "Compute threads per rank; 0: cores per node / ranks per node (docs/config.md)."),
      choice_key("log_level", &Config::log_level, {"trace", "debug", "info", "warn", "error"},
                 "Log level; at debug and below every rank logs, with an [r/size] prefix."),
      int_key("grad_bucket_mb", &Config::grad_bucket_mb, 1, 4096,
              "Size in MiB of each bucket of the data-parallel gradient all-reduce."),
      real_key("comm_timeout", &Config::comm_timeout, 0.0, 1e7, false, false,
               "Seconds a collective (MPI or NCCL) may stay pending before the job ends with exit "
               "status 4, naming it and the ranks that had not arrived (a rank died or stopped, a "
               "link is down); 0 turns the watchdog off (docs/errors.md)."),
      real_key("nccl_timeout", &Config::comm_timeout, 0.0, 1e7, false, false,
               "Former name of comm_timeout, still read (the same value)."),
      real_key("save_timeout", &Config::save_timeout, 0.0, 1e7, true, false,
               "Seconds a checkpoint save or load may take before the job ends with exit status "
               "1 and the partial file is removed (a full disk, a stuck filesystem, a lost rank)."),
      bool_key("sync_phases", &Config::sync_phases,
               "Wait for the device at every phase boundary (profiling; slows a GPU run; no "
               "effect on the CPU). Without it a GPU's phases are timed by events on its stream, "
               "without waiting."),
      int_key("val_pairs", &Config::val_pairs, 0, 100000000,
              "Verification pairs of held-out synthetic identities evaluated at the end."),
      choice_key("eval_net", &Config::eval_net, {"probe", "gallery"},
                 "FFC: the network evaluated (the authors test the probe net)."),
      string_list_key("val_targets", &Config::val_targets,
                      "Verification set files evaluated in training (tools/bin2ffc.py converts "
                      "insightface's .bin); a bare name N is N.h5 in the dataset folder (rec)."),
      int_key("val_identities", &Config::val_identities, 0, 100000,
              "rec: synthetic - identities per training-count bucket of the long-tail "
              "breakdown; 0: none."),
      real_key("val_hard_impostors", &Config::val_hard_impostors, 0.0, 1.0, false, false,
               "rec: synthetic - share of the impostor pairs (held-out pairs and long-tail "
               "buckets) whose second identity is the nearest one in latent space instead of a "
               "random one (hard impostors)."),
  };
  return table;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string unknown_key_message(const std::string& key) {
  std::string best;
  size_t best_d = 3;
  for (const auto& spec : key_table()) {
    const size_t d = edit_distance(key, spec.name);
    if (d < best_d) {
      best_d = d;
      best = spec.name;
    }
  }
  std::string msg = "unknown key '" + key + "'";
  if (!best.empty()) {
    msg += " (did you mean '" + best + "'?)";
  }
  return msg + "; `ffc config --keys` lists the keys";
}

size_t find_key(const std::string& key) {
  const auto& table = key_table();
  for (size_t i = 0; i < table.size(); ++i) {
    if (table[i].name == key) {
      return i;
    }
  }
  return table.size();
}

// Parses one value into `config`, turning a BadValue into a ConfigError that names the key, where
// the value came from and what is allowed.
void apply_value(const KeySpec& spec, const YAML::Node& node, const std::string& where,
                 Config& config) {
  try {
    spec.parse(config, node);
  } catch (const BadValue& bad) {
    throw ConfigError(where + ": key '" + spec.name + "': " + bad.reason +
                      "; allowed: " + spec.allowed + " (" + spec.type + ")");
  }
}

// Applies a flat YAML mapping, recording "<source>:<line>" as the origin of each key it sets.
void apply_mapping(const YAML::Node& root, const std::string& source, Config& config,
                   std::vector<std::string>& sources) {
  if (root.IsNull()) {
    return;
  }
  if (!root.IsMap()) {
    throw ConfigError(source + ": a config must be a mapping of key: value lines");
  }
  std::set<std::string> seen;
  const auto& table = key_table();
  for (const auto& item : root) {
    const std::string where = source + ":" + std::to_string(item.first.Mark().line + 1);
    const std::string key = item.first.IsScalar() ? item.first.Scalar() : std::string("?");
    const size_t idx = find_key(key);
    if (idx == table.size()) {
      throw ConfigError(where + ": " + unknown_key_message(key));
    }
    if (!seen.insert(key).second) {
      throw ConfigError(where + ": key '" + key + "' appears twice");
    }
    apply_value(table[idx], item.second, where, config);
    sources[idx] = where;
  }
}

}  // namespace

ConfigLoader::ConfigLoader() : sources_(key_table().size(), "default") {}

void ConfigLoader::load_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("config file " + path + " cannot be read; check the path given to --config");
  } catch (const YAML::Exception& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  apply_mapping(root, path, config_, sources_);
}

void ConfigLoader::load_string(const std::string& text, const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  apply_mapping(root, source_name, config_, sources_);
}

void ConfigLoader::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + assignment + ": expected key=value");
  }
  const std::string key = trim(assignment.substr(0, eq));
  const std::string value = assignment.substr(eq + 1);
  const auto& table = key_table();
  const size_t idx = find_key(key);
  if (idx == table.size()) {
    throw ConfigError("--set " + assignment + ": " + unknown_key_message(key));
  }
  YAML::Node node;
  const std::string t = trim(value);
  // Lists and quoted strings are YAML; anything else is taken verbatim as one scalar, so paths
  // with ": " or "#" need no quoting on the command line.
  if (!t.empty() && (t.front() == '[' || t.front() == '"' || t.front() == '\'')) {
    try {
      node = YAML::Load(t);
    } catch (const YAML::Exception& e) {
      throw ConfigError("--set " + assignment + ": the value is not valid YAML: " + e.msg);
    }
  } else {
    node = YAML::Node(value);
  }
  apply_value(table[idx], node, "--set " + assignment, config_);
  sources_[idx] = "--set";
}

const std::string& ConfigLoader::source_of(const std::string& key) const {
  const size_t idx = find_key(key);
  FFC_CHECK(idx < sources_.size(), "no config key named '" + key + "'");
  return sources_[idx];
}

const Config& ConfigLoader::finish() {
  if (config_.images_per_identity == 0) {
    // The largest divisor of the batch up to 10 (the VFC authors' K), so that any batch fits.
    for (int64_t k = std::min<int64_t>(10, config_.batch_size); k >= 1; --k) {
      if (config_.batch_size % k == 0) {
        config_.images_per_identity = k;
        break;
      }
    }
  } else if (config_.method == "vfc" && config_.batch_size % config_.images_per_identity != 0) {
    throw ConfigError(source_of("images_per_identity") + ": key 'images_per_identity' (" +
                      std::to_string(config_.images_per_identity) + ") must divide batch_size (" +
                      std::to_string(config_.batch_size) + ", from " + source_of("batch_size") +
                      ") for method vfc; set images_per_identity to a divisor of batch_size, or "
                      "0 for the largest one up to 10");
  }
  if (config_.synthetic_min_images > config_.synthetic_max_images) {
    throw ConfigError(source_of("synthetic_min_images") + ": key 'synthetic_min_images' (" +
                      std::to_string(config_.synthetic_min_images) +
                      ") must not exceed synthetic_max_images (" +
                      std::to_string(config_.synthetic_max_images) + ")");
  }
  if (config_.warmup_epoch >= config_.num_epoch) {
    throw ConfigError(source_of("warmup_epoch") + ": key 'warmup_epoch' (" +
                      std::to_string(config_.warmup_epoch) + ") must be smaller than num_epoch (" +
                      std::to_string(config_.num_epoch) + ", from " + source_of("num_epoch") + ")");
  }
  return config_;
}

std::vector<ConfigKeyInfo> config_keys() {
  const Config defaults;
  std::vector<ConfigKeyInfo> out;
  for (const auto& spec : key_table()) {
    out.push_back({spec.name, spec.type, spec.allowed, spec.doc, spec.format(defaults)});
  }
  return out;
}

std::string dump_config(const Config& config) {
  std::string out = "# ffc configuration; `ffc config --keys` documents every key.\n";
  for (const auto& spec : key_table()) {
    out += "# " + spec.doc + "\n" + spec.name + ": " + spec.format(config) + "\n";
  }
  return out;
}

std::string config_keys_markdown() {
  std::string out = "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  for (const auto& k : config_keys()) {
    out += "| `" + k.name + "` | " + k.type + " | `" + k.default_value + "` | " + k.allowed +
           " | " + k.doc + " |\n";
  }
  return out;
}

bool operator==(const Config& a, const Config& b) {
  for (const auto& spec : key_table()) {
    if (spec.format(a) != spec.format(b)) {
      return false;
    }
  }
  return true;
}

}  // namespace ffc
