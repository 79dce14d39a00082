// `ffc bench accuracy` (docs/benchmarks.md): every method trained to the end of one schedule
// (the same epochs, steps and learning rates), evaluated every epoch on held-out and trained
// identities; several seeds per main run; a report of where each run ends, whether it converged
// and what reaching 99% of its final accuracy cost. The pieces (specs, collection, report) are
// src/bench/accuracy.h; this file launches the runs and writes the files.

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <utility>

#include "apps/commands.h"
#include "bench/accuracy.h"
#include "bench/runner.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/metrics_record.h"
#include "common/version.h"

namespace ffc::app {
namespace {

// Launches one run (one configuration, one seed) and collects its figures: with `steps` > 0 a
// budget run of that schedule at `lr`, else the epochs of the command at its lr.
bench::Run train_one(const BenchAccuracyCommand& cmd, const bench::RunKind& kind, int64_t seed,
                     double lr = std::nan(""), int64_t steps = 0, const std::string& tag = "") {
  const BenchCommon& c = cmd.common;
  bench::Run run;
  run.kind = kind;
  run.seed = seed;
  run.lr = std::isnan(lr) ? cmd.lr : lr;
  run.schedule_steps = steps;
  run.id = bench::run_folder(kind) + tag + "-s" + std::to_string(seed);
  bench::RunSpec spec;
  spec.id = run.id;
  spec.ranks = cmd.ranks;
  spec.sets = steps > 0 ? bench::budget_sets(cmd, kind, seed, run.lr, steps)
                        : bench::run_sets(cmd, kind, seed);
  std::filesystem::remove_all(c.out + "/runs/" + run.id);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = bench::launch(c, spec, c.out + "/runs");
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.status = rc == 0 ? "ok" : "failed (exit " + std::to_string(rc) + ", " + run.id + ".log)";
  bench::collect(run, metrics::read_file(c.out + "/runs/" + run.id + "/metrics.jsonl"),
                 cmd.converged);
  const int64_t evals = steps > 0 ? cmd.evals : cmd.epochs;
  if (run.status == "ok" && run.evals.size() < static_cast<size_t>(evals)) {
    run.status = "failed (" + std::to_string(run.evals.size()) + " evaluations of " +
                 std::to_string(evals) + ")";
  }
  spdlog::info(
      "bench accuracy: {} seed {}: {}, {} evaluations, final held-out accuracy {:.4f}"
      ", {}converged",
      kind.label, seed, run.status, run.evals.size(),
      run.evals.empty() ? std::nan("") : run.last().accuracy(), run.converged ? "" : "not ");
  return run;
}

// A probe run of a configuration: its training speed in steps per second and the head's share of
// its step (NaN if it failed).
std::pair<double, double> probe_speed(const BenchAccuracyCommand& cmd, const bench::RunKind& kind,
                                      int64_t seed, double lr) {
  const BenchCommon& c = cmd.common;
  bench::RunSpec spec;
  spec.id = bench::run_folder(kind) + "-probe";
  spec.ranks = cmd.ranks;
  spec.sets = bench::probe_sets(cmd, kind, seed, lr);
  std::filesystem::remove_all(c.out + "/runs/" + spec.id);
  const int rc = bench::launch(c, spec, c.out + "/runs");
  const std::vector<bench::Json> records =
      rc == 0 ? metrics::read_file(c.out + "/runs/" + spec.id + "/metrics.jsonl")
              : std::vector<bench::Json>{};
  const double rate = rc == 0 ? bench::steps_per_second(records) : std::nan("");
  const double share = rc == 0 ? bench::head_share(records) : std::nan("");
  spdlog::info("bench accuracy: {}: probe {} ({:.2f} steps/s, head {:.0f}% of a step)", kind.label,
               rc == 0 ? "ok" : "failed (exit " + std::to_string(rc) + ")", rate, 100 * share);
  return {rate, share};
}

// Equal cost: the configuration's speed, its learning rate (the sweep's best, where asked), and
// the runs of every seed, each with the schedule fitted to the budget.
std::vector<bench::Run> train_budgeted(const BenchAccuracyCommand& cmd, const bench::RunKind& kind,
                                       std::vector<bench::Run>& sweep_runs) {
  const std::vector<int64_t>& seeds = kind.ablation() ? cmd.ablation_seeds : cmd.seeds;
  const auto [rate, share] = probe_speed(cmd, kind, seeds.front(), cmd.lr);
  double lr = cmd.lr;
  if (!cmd.lrs.empty()) {
    const double sweep_budget = cmd.sweep_budget_s > 0 ? cmd.sweep_budget_s : cmd.budget_s;
    const size_t first = sweep_runs.size();
    for (double candidate : cmd.lrs) {
      sweep_runs.push_back(train_one(cmd, kind, seeds.front(), candidate,
                                     bench::fit_steps(sweep_budget, rate),
                                     "-lr" + bench::fmt_num(candidate, 4)));
      sweep_runs.back().probe_rate = rate;
      sweep_runs.back().head_share = share;
    }
    std::vector<const bench::Run*> tried;
    for (size_t i = first; i < sweep_runs.size(); ++i) {
      tried.push_back(&sweep_runs[i]);
    }
    const double best = bench::best_lr(tried);
    lr = std::isnan(best) ? cmd.lr : best;
    spdlog::info("bench accuracy: {}: learning rate {} (the sweep's best)", kind.label, lr);
  }
  std::vector<bench::Run> out;
  const int64_t steps = bench::fit_steps(cmd.budget_s, rate);
  for (int64_t seed : seeds) {
    out.push_back(train_one(cmd, kind, seed, lr, steps));
    out.back().probe_rate = rate;
    out.back().head_share = share;
  }
  return out;
}

}  // namespace

int run_bench_accuracy(const BenchAccuracyCommand& cmd) {
  const BenchCommon& c = cmd.common;
  if (cmd.budget_s < 0 || cmd.evals < 2 || cmd.probe_steps < 6) {
    throw ConfigError(
        "--budget must be 0 (equal epochs) or positive, --evals at least 2 and "
        "--probe-steps at least 6");
  }
  if (cmd.epochs < 2 || cmd.warmup_epochs >= cmd.epochs) {
    throw ConfigError(
        "--epochs must be at least 2 (convergence compares the last two "
        "evaluations) and larger than --warmup-epochs");
  }
  if (cmd.seeds.empty()) {
    throw ConfigError("--seeds: at least one seed");
  }
  std::vector<bench::RunKind> kinds;
  for (const auto& spec : cmd.runs) {
    kinds.push_back(bench::parse_run(spec));
  }
  std::filesystem::create_directories(c.out + "/runs");
  std::vector<bench::Run> runs;
  bench::Json json_runs = bench::Json::array();
  std::string csv = bench::accuracy_csv_header();
  std::vector<bench::Run> sweep_runs;
  auto record = [&](const bench::Run& run) {
    csv += bench::csv_rows(run);
    json_runs.push_back(bench::run_json(run));
    // As it goes: a long benchmark can be watched.
    bench::write_text(c.out + "/accuracy.csv", csv);
    bench::write_text(c.out + "/accuracy.json", bench::Json{{"runs", json_runs}}.dump(2) + "\n");
  };
  for (const bench::RunKind& kind : kinds) {
    if (cmd.budget_s > 0) {
      for (bench::Run& run : train_budgeted(cmd, kind, sweep_runs)) {
        runs.push_back(std::move(run));
        record(runs.back());
      }
      continue;
    }
    for (int64_t seed : kind.ablation() ? cmd.ablation_seeds : cmd.seeds) {
      runs.push_back(train_one(cmd, kind, seed));
      record(runs.back());
    }
  }
  bench::Json json_sweep = bench::Json::array();
  for (const bench::Run& run : sweep_runs) {
    json_sweep.push_back(bench::run_json(run));
  }
  const std::string machine = bench::machine_text();
  const std::string md =
      bench::markdown_report(cmd, kinds, runs, machine, project_version(), git_revision());
  const bench::Json setup = bench::setup_json(cmd, machine, project_version(), git_revision());
  bench::Json doc{{"setup", setup}, {"runs", json_runs}};
  if (!sweep_runs.empty()) {
    doc["lr_sweep"] = json_sweep;
  }
  bench::write_text(c.out + "/accuracy.json", doc.dump(2) + "\n");
  bench::write_text(c.out + "/accuracy.md", md);
  std::cout << md << "\nwrote " << c.out << "/accuracy.md, accuracy.json and accuracy.csv; "
            << "curves: tools/ffc_plot.py accuracy " << c.out << "/accuracy.csv\n";
  int failed = 0;
  for (const auto& r : runs) {
    failed += r.ok() && r.status == "ok" ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace ffc::app
