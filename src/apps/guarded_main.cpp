#include "apps/guarded_main.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <exception>

#include "common/error.h"
#include "common/logging.h"
#include "h5/library.h"

namespace ffc::app {
namespace {

int report(const char* kind, const std::string& what, int code) {
  // Before MPI is up only the launcher's rank 0 reports, so a config error printed by every rank
  // of a 64-rank job appears once.
  if (process_size() > 1 || comm::launcher_rank() == 0) {
    // In a multi-rank job every message says where it happened (library errors already do).
    const std::string label = process_label();
    const bool add_label = process_size() > 1 && what.find(label) == std::string::npos;
    spdlog::error("{}{}{}", kind, what, add_label ? " (on " + label + ")" : std::string());
  }
  flush_logs();
  return code;
}

}  // namespace

int guarded_main(const std::function<int()>& body) {
  int code = kExitOk;
  bool agreed = false;
  try {
    code = body();
  } catch (const AgreedError& e) {
    // Every rank stops here together: rank 0 says why, and nobody needs to be aborted.
    agreed = true;
    code = process_rank() == 0 ? report("", e.what(), kExitFailure) : kExitFailure;
  } catch (const ConfigError& e) {
    code = report("configuration error: ", e.what(), kExitUsage);
  } catch (const Error& e) {
    code = report("", e.what(), kExitFailure);
  } catch (const std::exception& e) {
    code = report("unexpected error: ", e.what(), kExitFailure);
  } catch (...) {
    code = report("unexpected error of unknown type", "", kExitFailure);
  }
  if (code != kExitOk && code != kExitSavedOnSignal && !agreed && comm::mpi_initialized() &&
      process_size() > 1) {
    comm::abort_job(code);
  }
  flush_logs();
  // A file still open here is one whose close failed (a full disk during a save; the error was
  // reported): HDF5's teardown of it crashes in its close callback, from H5close or from
  // MPI_Finalize, so the process leaves with its status without either.
  if (h5::open_file_count() > 0) {
    std::_Exit(code);
  }
  h5::shut_down();
  comm::finalize_mpi();
  if (code == kExitSavedOnSignal) {
    // Every rank leaves MPI_Finalize together; leaving at once (no static destructors) keeps
    // them together, so that a launcher that kills a step on the first non-zero exit (srun
    // --kill-on-bad-exit) finds every rank already gone with status 3, not killed on the way out.
    std::_Exit(code);
  }
  return code;
}

Session start_session(const Config& config, comm::Backend backend) {
  // Read before MPI starts, which may add variables of its own to the environment.
  const int slurm_ranks = comm::slurm_expected_world_size();
  std::string yield_note;
  if (backend != comm::Backend::kSingle) {
    const int node_tasks = comm::slurm_step_tasks_on_node();
    yield_note = comm::yield_when_oversubscribed(
        choose_num_threads(config.num_threads, std::max(1, node_tasks)).threads);
    comm::init_mpi(nullptr, nullptr);
  }
  Session s;
  comm::CommOptions options;
  options.comm_timeout_seconds = config.comm_timeout;
  s.comm = comm::make_world_communicator(backend, options);
  comm::check_world_matches_slurm(slurm_ranks, s.comm->size());
  set_process_identity(s.comm->rank(), s.comm->size());
  init_logging(s.comm->rank(), s.comm->size(), config.log_level);
  s.threads = choose_num_threads(config.num_threads, s.comm->local_size());
  at::set_num_threads(s.threads.threads);
  const std::vector<std::string> hosts = comm::host_layout(*s.comm);
  constexpr size_t kShown = 8;
  std::string shown;
  for (size_t i = 0; i < hosts.size() && i < kShown; ++i) {
    shown += (i ? " " : "") + hosts[i];
  }
  if (hosts.size() > kShown) {
    shown += " ...";
  }
  spdlog::info(
      "world: {} rank(s) on {} host(s) ({}), {} on this node, backend {}, {} thread(s) "
      "per rank ({})",
      s.comm->size(), hosts.size(), shown, s.comm->local_size(), s.comm->backend(),
      s.threads.threads, s.threads.reason);
  if (!yield_note.empty()) {
    spdlog::info("{}", yield_note);
  }
  return s;
}

}  // namespace ffc::app
