// ffc: one executable, one subcommand per task. All command-line parsing is here; each command's
// work is in apps/cmd_<name>.cpp behind a plain options struct (apps/commands.h).

#include <CLI/CLI.hpp>

#include <functional>

#include "apps/commands.h"
#include "apps/guarded_main.h"
#include "apps/version_info.h"
#include "comm/runtime.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/memory.h"
#include "common/methods.h"

namespace ffc::app {
namespace {

using Action = std::function<int()>;

void add_config_options(CLI::App& cmd, ConfigOptions& options) {
  cmd.add_option("--config", options.file, "YAML configuration file (flat key: value mapping)");
  cmd.add_option("--set", options.sets,
                 "Override one key, e.g. --set lr=0.05 or --set margin_list=[1.0,0.0,0.4]; "
                 "repeatable, applied after --config in order")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  cmd.add_flag("--dump-config", options.dump, "Print the resolved configuration as YAML and exit");
}

void add_backend_option(CLI::App& cmd, std::string& backend) {
  cmd.add_option("--backend", backend, "Communication backend")
      ->check(CLI::IsMember({"mpi", "nccl", "single"}))
      ->capture_default_str();
}

void add_config_command(CLI::App& app, Action& action) {
  auto* sub = app.add_subcommand(
      "config",
      "Resolve a configuration (defaults <- --config <- --set), validate it and print it");
  auto cmd = std::make_shared<ConfigCommand>();
  add_config_options(*sub, cmd->config);
  sub->add_flag("--keys", cmd->keys,
                "List every key with its type, default, allowed values and meaning");
  sub->add_flag("--markdown", cmd->markdown,
                "With --keys: print a Markdown table (docs/config.md)");
  sub->callback([&action, cmd] { action = [cmd] { return run_config(*cmd); }; });
}

void add_env_command(CLI::App& app, Action& action) {
  auto* sub = app.add_subcommand(
      "env",
      "Start the world as training would (MPI, threads, devices), print it rank by rank and "
      "check the collectives");
  auto cmd = std::make_shared<EnvCommand>();
  add_config_options(*sub, cmd->config);
  add_backend_option(*sub, cmd->backend);
  sub->callback([&action, cmd] { action = [cmd] { return run_env(*cmd); }; });
}

void add_train_command(CLI::App& app, Action& action) {
  auto cmd = std::make_shared<TrainCommand>();
  auto* sub = app.add_subcommand(
      "train",
      "Train as configured (docs/training.md); run it under mpirun or srun for several "
      "ranks, or alone for one");
  add_config_options(*sub, cmd->config);
  add_backend_option(*sub, cmd->backend);
  sub->add_option("--resume", cmd->resume,
                  "auto: continue from the newest valid checkpoint of the output folder (or start "
                  "afresh); or a checkpoint file");
  sub->callback([&action, cmd] { action = [cmd] { return run_train(*cmd); }; });
}

void add_plan_command(CLI::App& app, Action& action) {
  auto cmd = std::make_shared<PlanCommand>();
  auto* sub = app.add_subcommand(
      "plan",
      "Memory per rank (backbone, head, logits, pool) and head FLOPs of a method at a "
      "scale, and whether it fits (docs/plan.md)");
  auto* method = sub->add_option("--method", cmd->method, method_list() + " (no head)")
                     ->check(CLI::IsMember(method_names()))
                     ->capture_default_str();
  auto* classes = sub->add_option("--num-classes", cmd->num_classes, "Identities N");
  sub->add_option("--embedding", cmd->embedding, "Embedding size D")->capture_default_str();
  sub->add_option("--batch", cmd->batch, "Batch per rank (FFC: identity items)")
      ->capture_default_str();
  sub->add_option("--ranks", cmd->ranks, "Ranks P")->capture_default_str();
  sub->add_option("--sample-rate", cmd->sample_rate, "Partial FC's r")->capture_default_str();
  sub->add_option("--pool", cmd->pool, "FFC's pool Q; 0: 1% of N, at least the global batch")
      ->capture_default_str();
  sub->add_option("--vfc-rows", cmd->vfc_rows, "Virtual FC's M")->capture_default_str();
  sub->add_option("--images", cmd->images,
                  "Training images of a RecordIO set: adds its binary index (0: none)");
  sub->add_option("--network", cmd->network, "Backbone (ffc model list)")->capture_default_str();
  sub->add_option("--image-size", cmd->image_size, "0: the network's natural size");
  sub->add_option("--memory-gib", cmd->memory_gib,
                  "Memory per rank to fit in, GiB; 0: this machine's memory");
  sub->add_flag("--json", cmd->json, "Print JSON");
  sub->add_option("--cluster", cmd->cluster,
                  "GPU[,key=value...]: step time, images/s, communication and memory per GPU on "
                  "this hardware (e.g. h100-80gb,nodes=8,net=ib-ndr); list: the presets");
  sub->add_option("--cluster-file", cmd->cluster_file,
                  "Presets file instead of the built-in inputs/clusters.json");
  sub->add_option("--impl", cmd->impl,
                  "--cluster: the implementation modelled: ffc, or insightface (arcface_torch's "
                  "partial_fc.py of its published speed table)")
      ->check(CLI::IsMember({"ffc", "insightface"}))
      ->capture_default_str();
  sub->add_option("--methods", cmd->methods,
                  "--cluster: methods to plan (default: --method if given, else " +
                      method_list(true, ",", false, ",") + ")")
      ->delimiter(',')
      ->check(CLI::IsMember(method_names()));
  sub->callback([&action, cmd, method, classes] {
    cmd->method_given = method->count() > 0;
    if (cmd->cluster != "list" && classes->count() == 0) {
      throw CLI::RequiredError("--num-classes");
    }
    action = [cmd] { return run_plan(*cmd); };
  });
}

void add_bench_common(CLI::App* sub, BenchCommon& c) {
  sub->add_option("--network", c.network, "Backbone")->capture_default_str();
  sub->add_option("--image-size", c.image_size, "Image size")->capture_default_str();
  sub->add_option("--embedding", c.embedding, "Embedding size D")->capture_default_str();
  sub->add_option("--batch", c.batch, "Batch per rank")->capture_default_str();
  sub->add_option("--sample-rate", c.sample_rate, "Partial FC's r")->capture_default_str();
  sub->add_option("--launcher", c.launcher,
                  "Launch command; {ranks} is replaced by the number of ranks (srun: "
                  "'srun --mpi=pmix -n {ranks}')")
      ->capture_default_str();
  sub->add_option("--config", c.config, "Base configuration file of every run");
  sub->add_option("--set", c.sets, "KEY=VALUE for every run (repeatable)");
  sub->add_option("--out", c.out, "Results folder (runs/ holds each run's log and metrics)")
      ->capture_default_str();
}

void add_bench_commands(CLI::App& app, Action& action) {
  auto* bench = app.add_subcommand("bench",
                                   "Scaling and accuracy benchmarks over the methods "
                                   "(docs/benchmarks.md)")
                    ->require_subcommand(1);
  auto scaling = std::make_shared<BenchScalingCommand>();
  auto* sub = bench->add_subcommand(
      "scaling",
      "images/s, head share and GFLOP/s, peak RSS per rank and ffc plan's prediction over "
      "methods x classes x ranks; CSV and Markdown");
  add_bench_common(sub, scaling->common);
  sub->add_option("--methods", scaling->methods, "Methods (" + method_list(false, ", ") + ")")
      ->delimiter(',')
      ->check(CLI::IsMember(method_names(false)));
  sub->add_option("--classes", scaling->classes, "Class counts N")->delimiter(',');
  sub->add_option("--ranks", scaling->ranks, "Rank counts")->delimiter(',');
  sub->add_option("--window", scaling->window, "Steps per measured window")->capture_default_str();
  sub->add_option("--repeats", scaling->repeats, "Measured windows after the warm-up one")
      ->capture_default_str();
  sub->add_option("--memory-fraction", scaling->memory_fraction,
                  "Share of this node's memory the ranks may plan to use; points over it are "
                  "recorded as 'does not fit' and not run")
      ->capture_default_str();
  sub->add_option("--pool", scaling->pool,
                  "FFC's pool Q at every N; 0: 1% of N, at least the global gallery batch")
      ->capture_default_str();
  sub->callback([&action, scaling] { action = [scaling] { return run_bench_scaling(*scaling); }; });
  auto accuracy = std::make_shared<BenchAccuracyCommand>();
  accuracy->common.batch = 32;  // the published report's batch (docs/benchmarks.md)
  sub = bench->add_subcommand(
      "accuracy",
      "every method trained to the end of one schedule (epochs, warm-up, poly decay), "
      "evaluated every epoch on held-out and trained identities, seeds as mean and range, "
      "FFC's loader ablation; Markdown, JSON and CSV (curves: tools/ffc_plot.py accuracy)");
  add_bench_common(sub, accuracy->common);
  sub->add_option("--runs", accuracy->runs,
                  "METHOD[@POOL%|@POOLx][:LOADER] each: fc, pfc, vfc, ffc; FFC's pool as a share "
                  "of N or a multiple of the global gallery batch (default 1% of N); a loader "
                  "(instance or identity) alone is the ablation")
      ->delimiter(',');
  sub->add_option("--classes", accuracy->classes, "Identities N")->capture_default_str();
  sub->add_option("--difficulty", accuracy->difficulty,
                  "synthetic_difficulty of the procedural identities (0 to 1)")
      ->capture_default_str();
  sub->add_option("--ranks", accuracy->ranks, "Ranks of every run")->capture_default_str();
  sub->add_option("--epochs", accuracy->epochs, "Epochs of the schedule (every run to its end)")
      ->capture_default_str();
  sub->add_option("--warmup-epochs", accuracy->warmup_epochs, "Epochs of linear warm-up")
      ->capture_default_str();
  sub->add_option("--lr", accuracy->lr, "Base learning rate")->capture_default_str();
  sub->add_option("--seeds", accuracy->seeds, "Seeds of the main runs")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--ablation-seeds", accuracy->ablation_seeds, "Seeds of the loader-ablation runs")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--converged", accuracy->converged,
                  "Converged: the held-out accuracy of the last two evaluations differs by less")
      ->capture_default_str();
  sub->add_option("--val-pairs", accuracy->val_pairs, "Held-out verification pairs")
      ->capture_default_str();
  sub->add_option("--val-identities", accuracy->val_identities, "Identities per long-tail bucket")
      ->capture_default_str();
  sub->add_option("--rec", accuracy->rec,
                  "synthetic (procedural identities) or a packed dataset folder (ffc pack; e.g. "
                  "the glyph set, with --set flip=false)")
      ->capture_default_str();
  sub->add_option("--val-targets", accuracy->val_targets,
                  "--rec DATASET: the set files to evaluate on (held-out pairs, long-tail "
                  "buckets)")
      ->delimiter(',');
  sub->add_option("--budget", accuracy->budget_s,
                  "Equal cost: seconds of training of every run, its schedule fitted to the steps "
                  "it makes in them (0: --epochs for every run)")
      ->capture_default_str();
  sub->add_option("--evals", accuracy->evals, "--budget: evaluations along each run")
      ->capture_default_str();
  sub->add_option("--probe-steps", accuracy->probe_steps,
                  "--budget: steps of the probe run that measures each configuration's speed")
      ->capture_default_str();
  sub->add_option("--lrs", accuracy->lrs,
                  "--budget: learning rates to sweep per configuration (the best final held-out "
                  "accuracy wins; first seed)")
      ->delimiter(',');
  sub->add_option("--sweep-budget", accuracy->sweep_budget_s,
                  "--budget: seconds of each sweep run (0: --budget)")
      ->capture_default_str();
  sub->callback(
      [&action, accuracy] { action = [accuracy] { return run_bench_accuracy(*accuracy); }; });
}

void add_ckpt_commands(CLI::App& app, Action& action) {
  auto* ckpt = app.add_subcommand("ckpt", "Inspect, check, compare and export checkpoints")
                   ->require_subcommand(1);
  auto info = std::make_shared<CkptCommand>();
  auto* sub = ckpt->add_subcommand(
      "info", "Step, method, ranks, model, datasets with shapes and sizes, configuration");
  sub->add_option("path", info->path, "Checkpoint file")->required();
  sub->add_flag("--json", info->json, "Print JSON");
  sub->add_flag("--all", info->all, "List every dataset, the networks' tensors too");
  sub->callback([&action, info] { action = [info] { return run_ckpt_info(*info); }; });

  auto verify = std::make_shared<CkptCommand>();
  sub = ckpt->add_subcommand("verify", "Check completeness and every checksum; exit 1 if bad");
  sub->add_option("path", verify->path, "Checkpoint file")->required();
  sub->callback([&action, verify] { action = [verify] { return run_ckpt_verify(*verify); }; });

  auto diff = std::make_shared<CkptCommand>();
  sub = ckpt->add_subcommand(
      "diff", "Per-tensor max abs difference of the training state; exit 0 when within --atol");
  sub->add_option("a", diff->path, "First checkpoint")->required();
  sub->add_option("b", diff->other, "Second checkpoint")->required();
  sub->add_option("--atol", diff->atol, "Tolerated absolute difference")->capture_default_str();
  sub->add_option("--rtol", diff->rtol,
                  "Tolerated difference relative to the second file's values (|a - b| <= atol + "
                  "rtol |b|)")
      ->capture_default_str();
  sub->add_flag("--all", diff->all, "Also the configuration and metrics datasets");
  sub->add_flag("--verbose", diff->verbose, "A line for every tensor, not only those that differ");
  sub->callback([&action, diff] { action = [diff] { return run_ckpt_diff(*diff); }; });

  auto exp = std::make_shared<CkptCommand>();
  sub = ckpt->add_subcommand(
      "export", "Write the backbone with PyTorch state-dict names (tools/ffc_h5.py loads it)");
  sub->add_option("path", exp->path, "Checkpoint file")->required();
  sub->add_option("--out", exp->out, "Backbone file to write")->required();
  sub->add_option("--net", exp->net, "probe or gallery")
      ->check(CLI::IsMember({"probe", "gallery"}))
      ->capture_default_str();
  sub->callback([&action, exp] { action = [exp] { return run_ckpt_export(*exp); }; });

  auto pool = std::make_shared<CkptCommand>();
  sub =
      ckpt->add_subcommand("pool-stats",
                           "FFC's pool: fill, age of entries, row norms, shard balance, images per "
                           "identity of the pooled identities");
  sub->add_option("path", pool->path, "Checkpoint file")->required();
  sub->add_option("--ranks", pool->ranks, "Shard balance at this number of ranks");
  sub->add_flag("--json", pool->json, "Print JSON");
  sub->callback([&action, pool] { action = [pool] { return run_ckpt_pool_stats(*pool); }; });
}

void add_data_commands(CLI::App& app, Action& action) {
  auto* data = app.add_subcommand("data", "Inspect and check datasets")->require_subcommand(1);
  auto stat = std::make_shared<DataCommand>();
  auto* sub = data->add_subcommand(
      "stat",
      "Print JSON: images, identities, image size, images per identity (min, median, "
      "max, buckets)");
  sub->add_option("path", stat->path,
                  "Dataset folder (train.rec, train.idx, property), a .rec file, or synthetic")
      ->required();
  add_config_options(*sub, stat->config);
  sub->callback([&action, stat] { action = [stat] { return run_data_stat(*stat); }; });

  auto verify = std::make_shared<DataCommand>();
  sub = data->add_subcommand(
      "verify",
      "Decode every record; list bad ones (image, record, byte offset, reason); exit 1 "
      "if any is bad");
  sub->add_option("path", verify->path, "Dataset folder, .rec file, or synthetic")->required();
  add_config_options(*sub, verify->config);
  sub->callback([&action, verify] { action = [verify] { return run_data_verify(*verify); }; });

  auto index = std::make_shared<DataCommand>();
  sub = data->add_subcommand(
      "index",
      "Build the binary index (train.ffcidx) that every rank memory-maps, for sets packed "
      "elsewhere (docs/data.md); --check verifies an existing one, exit 1 if stale or damaged");
  sub->add_option("path", index->path, "Dataset folder, .rec file, or a glob of them")->required();
  sub->add_flag("--check", index->check, "Check the index instead of building it");
  sub->callback([&action, index] { action = [index] { return run_data_index(*index); }; });

  auto read = std::make_shared<DataCommand>();
  sub = data->add_subcommand(
      "read",
      "Read STEPS batches through the training loader of the configured method (batch_size, "
      "num_workers, read_order, read_block, read_window from the config) and print images/s and "
      "MiB/s: what the storage and the decoder give the trainer");
  sub->add_option("path", read->path, "Dataset folder, .rec file, or a glob of them")->required();
  sub->add_option("--steps", read->steps, "Batches to read")->capture_default_str();
  sub->add_flag("--cold", read->cold,
                "Drop the set's pages from the page cache first (reads then come from storage)");
  sub->add_flag("--plan-only", read->plan_only,
                "Run the samplers only (batch plans with their class-table lookups), no reads");
  add_config_options(*sub, read->config);
  sub->callback([&action, read] { action = [read] { return run_data_read(*read); }; });
}

void add_pack_command(CLI::App& app, Action& action) {
  auto cmd = std::make_shared<PackCommand>();
  auto* sub = app.add_subcommand(
      "pack",
      "Build train.rec, train.idx and property (insightface's layout) from an image folder "
      "or from procedural identities");
  sub->add_option("--from-folder", cmd->from_folder,
                  "Folder with one sub-folder per identity holding its JPEG files");
  sub->add_flag("--synthetic", cmd->synthetic,
                "Procedural identities from the config (num_classes, image_size, synthetic_*)");
  sub->add_option("--out", cmd->out, "Output folder")->required();
  sub->add_option("--quality", cmd->quality, "JPEG quality for --synthetic")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  sub->add_flag("--no-flip", cmd->no_flip,
                "A mirrored image is another identity (glyphs): dataset.json says so, training "
                "then refuses flip: true and evaluation never mirrors");
  add_config_options(*sub, cmd->config);
  sub->callback([&action, cmd] { action = [cmd] { return run_pack(*cmd); }; });
}

void add_model_commands(CLI::App& app, Action& action) {
  auto* model = app.add_subcommand("model", "Backbones: list them, their size and cost, export")
                    ->require_subcommand(1);
  auto list = std::make_shared<ModelCommand>();
  auto* sub = model->add_subcommand("list", "The networks of the registry (insightface names)");
  sub->callback([&action, list] { action = [list] { return run_model_list(*list); }; });

  auto info = std::make_shared<ModelCommand>();
  sub = model->add_subcommand(
      "info", "Parameters, GFLOPs and activation memory per image of a freshly built network");
  sub->add_option("name", info->network, "Network, e.g. r50, mbf, tiny (ffc model list)")
      ->required();
  sub->add_option("--embedding-size", info->embedding_size, "Embedding dimension D")
      ->capture_default_str();
  sub->add_option("--image-size", info->image_size, "Image side (default: the network's own)");
  sub->add_flag("--json", info->json, "Print JSON");
  sub->callback([&action, info] { action = [info] { return run_model_info(*info); }; });

  auto exp = std::make_shared<ModelCommand>();
  sub = model->add_subcommand(
      "export",
      "Write a freshly initialised backbone to HDF5 (tools/ffc_h5.py loads it into "
      "PyTorch)");
  sub->add_option("name", exp->network, "Network, e.g. r50")->required();
  sub->add_option("--out", exp->out, "Output file (.h5)")->required();
  sub->add_option("--seed", exp->seed, "Random seed of the initialisation")->capture_default_str();
  sub->add_option("--embedding-size", exp->embedding_size, "Embedding dimension D")
      ->capture_default_str();
  sub->add_option("--image-size", exp->image_size, "Image side (default: the network's own)");
  sub->add_option("--input-norm", exp->input_norm,
                  "Input normalisation the file records: ffc (x-127.5)/128 or insightface "
                  "(x-127.5)/127.5")
      ->check(CLI::IsMember({"ffc", "insightface"}))
      ->capture_default_str();
  sub->callback([&action, exp] { action = [exp] { return run_model_export(*exp); }; });
}

void add_network_options(CLI::App& sub, NetworkOptions& options) {
  auto* backbone = sub.add_option("--backbone", options.backbone,
                                  "Backbone file, .h5 (ffc model export, ffc ckpt export, "
                                  "tools/ffc_h5.py --from-pt)");
  auto* checkpoint = sub.add_option("--checkpoint", options.checkpoint, "Checkpoint file, .h5");
  backbone->excludes(checkpoint);
  sub.add_option("--net", options.net, "The net of a checkpoint")
      ->check(CLI::IsMember({"probe", "gallery"}))
      ->capture_default_str();
  sub.add_option("--input-norm", options.input_norm,
                 "Input normalisation, overriding the one the file records (for files written "
                 "before ffc recorded it): ffc (x-127.5)/128 or insightface (x-127.5)/127.5")
      ->check(CLI::IsMember({"ffc", "insightface"}));
}

void add_embed_command(CLI::App& app, Action& action) {
  auto cmd = std::make_shared<EmbedCommand>();
  auto* sub = app.add_subcommand(
      "embed",
      "Embeddings of an image folder, RecordIO dataset or verification set file into HDF5 "
      "(docs/eval.md); under mpirun the work is split over the ranks");
  add_network_options(*sub, cmd->network);
  sub->add_option("--input", cmd->input,
                  "Image folder (JPEG; one sub-folder per identity, or flat), RecordIO dataset "
                  "folder or train.rec, or verification set file (.h5)")
      ->required();
  sub->add_option("--out", cmd->out, "Output file, .h5")->required();
  sub->add_flag("--no-flip", cmd->no_flip,
                "The images' embeddings only (default: plus their mirror images')");
  sub->add_option("--batch", cmd->batch, "Images per forward")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--chunk", cmd->chunk, "Images per rank between writes")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  add_backend_option(*sub, cmd->backend);
  add_config_options(*sub, cmd->config);
  sub->callback([&action, cmd] { action = [cmd] { return run_embed(*cmd); }; });
}

void add_eval_command(CLI::App& app, Action& action) {
  auto cmd = std::make_shared<EvalCommand>();
  auto* sub = app.add_subcommand(
      "eval",
      "Verification (10 folds, TAR@FAR, ROC) of a backbone or checkpoint on converted "
      "verification sets and procedural held-out pairs, with the long-tail breakdown "
      "(docs/eval.md); under mpirun the work is split over the ranks");
  add_network_options(*sub, cmd->network);
  sub->add_option("--set-file", cmd->set_files,
                  "Verification set file (tools/bin2ffc.py converts insightface's .bin); "
                  "repeatable")
      ->allow_extra_args(false);
  sub->add_flag("--synthetic", cmd->synthetic,
                "Procedural held-out pairs (val_pairs) and the long-tail breakdown "
                "(val_identities) of the training run's identities (num_classes, seed, "
                "synthetic_* from --config/--set)");
  sub->add_flag("--no-flip", cmd->no_flip, "Embed the images only, not their mirrors");
  sub->add_option("--roc-csv", cmd->roc_csv,
                  "Write each target's ROC to PREFIX<target>.csv (far,tar,threshold)")
      ->type_name("PREFIX");
  sub->add_option("--batch", cmd->batch, "Images per forward")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_flag("--json", cmd->json, "Print the results as JSON");
  sub->add_option("--save-heldout", cmd->save_heldout,
                  "With --synthetic: write the val_pairs held-out pairs as a verification set "
                  "file (JPEG); without a network, only that");
  add_backend_option(*sub, cmd->backend);
  add_config_options(*sub, cmd->config);
  sub->callback([&action, cmd] { action = [cmd] { return run_eval(*cmd); }; });
}

int run_cli(int argc, char** argv) {
  CLI::App cli{
      "ffc: trains face-recognition classifiers over millions of identities (FFC and its "
      "baselines) on MPI clusters.",
      "ffc"};
  cli.set_version_flag(
      "--version", [] { return version_report(); },
      "Print versions of ffc and of the libraries it was built with");
  cli.require_subcommand(1);
  cli.footer(
      "Run `ffc <command> --help` for a command's options. Exit status: 0 success, 1 error, "
      "2 bad configuration or usage, 3 stopped by a signal after saving.");
  Action action;
  add_config_command(cli, action);
  add_env_command(cli, action);
  add_train_command(cli, action);
  add_plan_command(cli, action);
  add_ckpt_commands(cli, action);
  add_bench_commands(cli, action);
  add_data_commands(cli, action);
  add_pack_command(cli, action);
  add_model_commands(cli, action);
  add_eval_command(cli, action);
  add_embed_command(cli, action);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  return action ? action() : kExitOk;
}

}  // namespace
}  // namespace ffc::app

int main(int argc, char** argv) {
  ffc::configure_allocator();
  ffc::init_logging(ffc::comm::launcher_rank(), 1, "info");
  return ffc::app::guarded_main([&] { return ffc::app::run_cli(argc, argv); });
}
