#pragma once
// The one configuration struct of ffc. Every tunable has a default here, a doc line and a check in
// config.cpp's key table. Resolution order: defaults <- YAML file (--config) <- --set key=value
// (in command-line order). Key names follow insightface's arcface_torch where one exists.

#include <cstdint>
#include <string>
#include <vector>

#include "common/methods.h"

namespace ffc {

struct Config {
  // --- model ---
  std::string network = "r50";
  int64_t embedding_size = 512;
  int64_t image_size = 112;
  bool fp16 = false;
  std::string amp_dtype = "auto";
  bool tf32 = true;             // TF32 tensor cores for float32 (Ampere and later)
  double loss_scale = 65536.0;  // float16: initial dynamic loss scale
  int64_t loss_scale_growth_interval = 2000;
  double alpha = 0.99;  // FFC gallery EMA (authors' --alpha)

  // --- data ---
  std::string rec;          // dataset folder(s), comma-separated, or "synthetic"
  int64_t num_classes = 0;  // 0: read from the dataset's property file
  int64_t num_image = 0;    // 0: read from the dataset
  std::string color_order = "rgb";
  std::string input_norm = "auto";  // auto: init_backbone's, else ffc
  bool resize = false;
  bool flip = true;
  int64_t num_workers = 2;
  int64_t prefetch = 2;
  std::string loader_mode = "both";
  std::string read_order = "random";  // random | block (data/sampler.h)
  int64_t read_block = 1024;          // block order: consecutive records per block
  int64_t read_window = 16;           // block order: blocks a rank shuffles together
  int64_t images_per_identity = 0;    // 0: the largest divisor of batch_size up to 10
  int64_t synthetic_min_images = 1;
  int64_t synthetic_max_images = 100;
  double synthetic_power = 1.5;
  double synthetic_difficulty = 0.5;

  // --- head / method ---
  std::string method = "ffc";
  double sample_rate = 1.0;
  std::vector<double> margin_list = {1.0, 0.5, 0.0};
  std::string loss_type = "auto";
  double margin = 0.0;    // 0: the method's default (0.5)
  double scale = 0.0;     // 0: the method's default (64 insightface, 32 FFC/VFC)
  int64_t pool_size = 0;  // 0: 1% of num_classes, at least the global gallery batch
  std::string pool_placement = "auto";
  bool pool_random_init = false;
  bool rollback = true;
  int64_t fresh_k = 0;  // 0: clamp(int(0.0002 * pool_size), 3, 10)
  int64_t vfc_rows = 1000;
  double fresh_weight = 1.0;

  // --- optimisation ---
  int64_t batch_size = 128;  // per rank
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  int64_t num_epoch = 20;
  int64_t warmup_epoch = 0;
  std::string epoch_basis = "loader";  // what one epoch of the schedule is (docs/training.md)
  std::string lr_schedule = "poly";
  std::vector<int64_t> lr_steps = {8, 14, 17};
  bool nesterov = false;
  double clip_grad_norm = 0.0;
  int64_t max_steps = 0;       // 0: num_epoch epochs
  int64_t schedule_steps = 0;  // the schedule's length in steps; 0: num_epoch epochs
  int64_t save_every = 0;      // 0: at the end (and on a stop signal) only
  int64_t save_keep = 3;
  bool save_last = true;
  std::string resume;                 // "", "auto" or a checkpoint path
  std::string init_backbone;          // backbone file the probe (and gallery) start from
  int64_t nonfinite_skip = 0;         // consecutive non-finite steps skipped before stopping
  std::string save_failure = "stop";  // "stop" or "warn"

  // --- run ---
  std::string output = "work_dirs/ffc";
  int64_t seed = 2048;
  int64_t frequent = 10;
  int64_t verbose = 2000;
  bool eval_every_epoch = false;  // also evaluate at the end of every epoch
  int64_t num_threads = 0;        // 0: cores per node / ranks per node
  std::string log_level = "info";
  int64_t grad_bucket_mb = kDefaultGradBucketMiB;
  double comm_timeout = 600.0;   // seconds; 0: no watchdog
  double save_timeout = 1800.0;  // seconds
  bool sync_phases = false;
  int64_t val_pairs = 3000;
  std::string eval_net = "probe";
  std::vector<std::string> val_targets;  // verification set files (insightface's key)
  int64_t val_identities = 500;          // per training-count bucket, long-tail breakdown
  double val_hard_impostors = 0.0;       // share of procedural impostor pairs that are hard
};

// One documented key of the Config struct.
struct ConfigKeyInfo {
  std::string name;
  std::string type;     // "int", "float", "bool", "string", "list of 3 floats", ...
  std::string allowed;  // human description of the allowed values
  std::string doc;
  std::string default_value;  // as it would be written in YAML
};

// Builds the resolved configuration. Throws ConfigError naming the key, where it came from
// (file:line or --set) and what is allowed.
class ConfigLoader {
 public:
  ConfigLoader();
  // Applies a YAML file: a flat mapping of key: value.
  void load_file(const std::string& path);
  // Applies YAML text as if it were a file named `source_name` (used by tests and by checkpoints).
  void load_string(const std::string& text, const std::string& source_name);
  // Applies one "key=value" override. A value starting with [ or a quote is parsed as YAML
  // (lists: margin_list=[1.0,0.5,0.0]); any other value is taken verbatim.
  void set(const std::string& assignment);
  // Cross-key checks; call after every source was applied.
  const Config& finish();
  const Config& config() const { return config_; }
  // Where each key's value came from ("default", "run.yaml:12", "--set").
  const std::string& source_of(const std::string& key) const;

 private:
  Config config_;
  std::vector<std::string> sources_;  // parallel to the key table
};

// The table of keys, in documentation order.
std::vector<ConfigKeyInfo> config_keys();
// The resolved configuration as YAML, each key preceded by its doc line. Loading the output gives
// back an equal Config.
std::string dump_config(const Config& config);
// A Markdown table of the keys (docs/config.md is generated from it and checked by a test).
std::string config_keys_markdown();
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) {
  return !(a == b);
}

}  // namespace ffc
