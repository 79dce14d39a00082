#pragma once
// The subcommands of `ffc`. Each takes a plain options struct and returns the exit status; all
// command-line parsing lives in main.cpp (CLI11 is expensive to compile, so one file includes it).

#include <cstdint>
#include <string>
#include <vector>

#include "apps/config_cli.h"
#include "bench/options.h"

namespace ffc::app {

struct ConfigCommand {
  ConfigOptions config;
  bool keys = false;
  bool markdown = false;
};
int run_config(const ConfigCommand& cmd);

struct EnvCommand {
  ConfigOptions config;
  std::string backend = "mpi";
};
int run_env(const EnvCommand& cmd);

struct TrainCommand {
  ConfigOptions config;
  std::string backend = "mpi";
  std::string resume;  // "", "auto" or a checkpoint path (overrides the config key resume)
};
int run_train(const TrainCommand& cmd);

struct PlanCommand {
  std::string method = "ffc";
  int64_t num_classes = 0;
  int64_t embedding = 512;
  int64_t batch = 128;
  int ranks = 1;
  double sample_rate = 0.1;
  int64_t pool = 0;
  int64_t vfc_rows = 1000;
  int64_t images = 0;
  std::string network = "r50";
  int64_t image_size = 0;
  double memory_gib = 0;
  bool json = false;
  // --cluster: the step-time model on named hardware (plan/cluster_plan.h).
  std::string cluster;               // GPU[,key=value...], or "list"
  std::string cluster_file;          // presets instead of the built-in ones
  std::string impl = "ffc";          // ffc or insightface (arcface_torch's partial_fc.py, 2021)
  std::vector<std::string> methods;  // with --cluster; empty: --method if given, else all
  bool method_given = false;
};
int run_plan(const PlanCommand& cmd);

// `ffc ckpt ...` (apps/cmd_ckpt.cpp, docs/checkpoint-format.md).
struct CkptCommand {
  std::string path;
  std::string other;  // diff: the second checkpoint
  std::string out;    // export: the backbone file
  std::string net = "probe";
  double atol = 0.0;
  double rtol = 0.0;
  bool json = false;
  bool all = false;
  bool verbose = false;
  int64_t ranks = 0;  // pool-stats: shard balance at this world size (0: the save's)
};
int run_ckpt_info(const CkptCommand& cmd);
int run_ckpt_verify(const CkptCommand& cmd);
int run_ckpt_diff(const CkptCommand& cmd);
int run_ckpt_export(const CkptCommand& cmd);
int run_ckpt_pool_stats(const CkptCommand& cmd);

struct DataCommand {
  ConfigOptions config;
  std::string path;        // dataset folder, train.rec, or "synthetic"
  bool check = false;      // data index: check the existing index instead of building it
  int64_t steps = 100;     // data read: batches to read
  bool cold = false;       // data read: drop the set's cached pages first
  bool plan_only = false;  // data read: run the samplers only (no record is read)
};
int run_data_stat(const DataCommand& cmd);
int run_data_read(const DataCommand& cmd);
int run_data_verify(const DataCommand& cmd);
int run_data_index(const DataCommand& cmd);

struct PackCommand {
  ConfigOptions config;
  std::string from_folder;
  bool synthetic = false;
  std::string out;
  int quality = 95;
  bool no_flip = false;
};
int run_pack(const PackCommand& cmd);

// `ffc model list | info NAME | export NAME --out FILE.h5` (apps/cmd_model.cpp).
struct ModelCommand {
  std::string network;
  int64_t embedding_size = 512;
  int64_t image_size = 0;  // 0: the network's natural size (112; tiny 32, small 64)
  bool json = false;
  std::string out;
  int64_t seed = 2048;
  std::string input_norm = "ffc";  // recorded in the exported file
};
int run_model_list(const ModelCommand& cmd);
int run_model_info(const ModelCommand& cmd);
int run_model_export(const ModelCommand& cmd);

// `ffc bench scaling | accuracy` (apps/cmd_bench.cpp, apps/cmd_bench_accuracy.cpp,
// docs/benchmarks.md); their options and pieces live in src/bench.
using BenchCommon = bench::Common;
using BenchScalingCommand = bench::ScalingOptions;
using BenchAccuracyCommand = bench::AccuracyOptions;
int run_bench_scaling(const BenchScalingCommand& cmd);
int run_bench_accuracy(const BenchAccuracyCommand& cmd);

// `ffc eval` (apps/cmd_eval.cpp, docs/eval.md).
// The network `ffc eval` and `ffc embed` read (eval/network_file.h).
struct NetworkOptions {
  std::string backbone;       // an exported backbone, or
  std::string checkpoint;     // a checkpoint
  std::string net = "probe";  // the net of a checkpoint: probe or gallery
  std::string input_norm;     // "": the one the file records
};

struct EvalCommand {
  ConfigOptions config;
  std::string backend = "mpi";
  NetworkOptions network;
  std::vector<std::string> set_files;
  bool synthetic = false;
  bool no_flip = false;
  std::string roc_csv;  // prefix of <prefix><target>.csv
  int64_t batch = 256;
  bool json = false;
  std::string save_heldout;  // write the procedural held-out pairs as a set file
};
int run_eval(const EvalCommand& cmd);

struct EmbedCommand {
  ConfigOptions config;
  std::string backend = "mpi";
  NetworkOptions network;
  std::string input;  // image folder, RecordIO dataset, or verification set file
  std::string out;
  bool no_flip = false;
  int64_t batch = 256;
  int64_t chunk = 8192;
};
int run_embed(const EmbedCommand& cmd);

}  // namespace ffc::app
