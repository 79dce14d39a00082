// `ffc bench accuracy` (docs/benchmarks.md): every method trained to the end of one schedule
// (the same epochs, steps and learning rates), evaluated every epoch on held-out and trained
// identities; several seeds per main run; a report of where each run ends, whether it converged
// and what reaching 99% of its final accuracy cost. The pieces (specs, collection, report) are
// src/bench/accuracy.h; this file launches the runs and writes the files.

#include <chrono>
#include <filesystem>
#include <iostream>

#include "apps/commands.h"
#include "bench/accuracy.h"
#include "bench/runner.h"
#include "common/error.h"
#include "common/logging.h"
#include "common/metrics_record.h"
#include "common/version.h"

namespace ffc::app {
namespace {

// Launches one run (one configuration, one seed) and collects its figures.
bench::Run train_one(const BenchAccuracyCommand& cmd, const bench::RunKind& kind, int64_t seed) {
  const BenchCommon& c = cmd.common;
  bench::Run run;
  run.kind = kind;
  run.seed = seed;
  run.id = bench::run_folder(kind) + "-s" + std::to_string(seed);
  bench::RunSpec spec;
  spec.id = run.id;
  spec.ranks = cmd.ranks;
  spec.sets = bench::run_sets(cmd, kind, seed);
  std::filesystem::remove_all(c.out + "/runs/" + run.id);
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = bench::launch(c, spec, c.out + "/runs");
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run.status = rc == 0 ? "ok" : "failed (exit " + std::to_string(rc) + ", " + run.id + ".log)";
  bench::collect(run, metrics::read_file(c.out + "/runs/" + run.id + "/metrics.jsonl"),
                 cmd.converged);
  if (run.status == "ok" && run.evals.size() < static_cast<size_t>(cmd.epochs)) {
    run.status = "failed (" + std::to_string(run.evals.size()) + " evaluations of " +
                 std::to_string(cmd.epochs) + ")";
  }
  spdlog::info(
      "bench accuracy: {} seed {}: {}, {} evaluations, final held-out accuracy {:.4f}"
      ", {}converged",
      kind.label, seed, run.status, run.evals.size(),
      run.evals.empty() ? std::nan("") : run.last().accuracy(), run.converged ? "" : "not ");
  return run;
}

}  // namespace

int run_bench_accuracy(const BenchAccuracyCommand& cmd) {
  const BenchCommon& c = cmd.common;
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
  for (const bench::RunKind& kind : kinds) {
    for (int64_t seed : kind.ablation() ? cmd.ablation_seeds : cmd.seeds) {
      runs.push_back(train_one(cmd, kind, seed));
      csv += bench::csv_rows(runs.back());
      json_runs.push_back(bench::run_json(runs.back()));
      // As it goes: a long benchmark can be watched.
      bench::write_text(c.out + "/accuracy.csv", csv);
      bench::write_text(c.out + "/accuracy.json", bench::Json{{"runs", json_runs}}.dump(2) + "\n");
    }
  }
  const std::string machine = bench::machine_text();
  const std::string md =
      bench::markdown_report(cmd, kinds, runs, machine, project_version(), git_revision());
  const bench::Json setup = bench::setup_json(cmd, machine, project_version(), git_revision());
  bench::write_text(c.out + "/accuracy.json",
                    bench::Json{{"setup", setup}, {"runs", json_runs}}.dump(2) + "\n");
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
