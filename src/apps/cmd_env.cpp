// `ffc env`: start the world as a training job would and report it, rank by rank; then check that
// the collectives work. The first thing to run on a new cluster or a new sbatch script.

#include <ATen/ATen.h>

#include <iostream>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "apps/guarded_main.h"
#include "apps/version_info.h"
#include "common/error.h"
#include "common/threads.h"

namespace ffc::app {

int run_env(const EnvCommand& cmd) {
  const Config config = resolve_config(cmd.config);
  if (cmd.config.dump) {
    std::cout << dump_config(config);
    return 0;
  }
  Session session = start_session(config, comm::parse_backend(cmd.backend));
  comm::Communicator& comm = *session.comm;

  // One fixed-size record per rank: host name, local rank/size, threads, usable cores.
  constexpr int64_t kHost = 64;
  at::Tensor mine = at::zeros({kHost + 4}, at::kLong);
  const std::string& host = host_name();
  for (size_t i = 0; i < host.size() && i < static_cast<size_t>(kHost); ++i) {
    mine[static_cast<int64_t>(i)] = static_cast<int64_t>(static_cast<unsigned char>(host[i]));
  }
  mine[kHost] = comm.local_rank();
  mine[kHost + 1] = comm.local_size();
  mine[kHost + 2] = session.threads.threads;
  mine[kHost + 3] = affinity_cores();
  at::Tensor all = comm::all_gather(comm, mine.to(comm.device())).cpu().view({comm.size(), -1});

  // Collectives check: the sum of ranks and a broadcast from the last rank.
  at::Tensor sum =
      at::full({1}, comm.rank(), at::TensorOptions().dtype(at::kLong).device(comm.device()));
  comm.all_reduce(sum, comm::ReduceOp::kSum);
  at::Tensor bc = at::full({1}, comm.rank() * 7 + 1, sum.options());
  comm.broadcast(bc, comm.size() - 1);
  const int64_t n = comm.size();
  const bool ok =
      sum.cpu().item<int64_t>() == n * (n - 1) / 2 && bc.cpu().item<int64_t>() == (n - 1) * 7 + 1;
  comm.barrier();

  if (comm.rank() == 0) {
    std::cout << version_report() << "\n\n";
    std::cout << "world: " << n << " rank(s), backend " << comm.backend() << "\n";
    std::cout << "rank  host                  local  threads  usable-cores\n";
    for (int64_t r = 0; r < n; ++r) {
      std::string h;
      for (int64_t i = 0; i < kHost && all[r][i].item<int64_t>() != 0; ++i) {
        h += static_cast<char>(all[r][i].item<int64_t>());
      }
      char line[160];
      std::snprintf(line, sizeof(line), "%4lld  %-20s  %2lld/%-2lld  %7lld  %12lld\n",
                    static_cast<long long>(r), h.c_str(),
                    static_cast<long long>(all[r][kHost].item<int64_t>()),
                    static_cast<long long>(all[r][kHost + 1].item<int64_t>()),
                    static_cast<long long>(all[r][kHost + 2].item<int64_t>()),
                    static_cast<long long>(all[r][kHost + 3].item<int64_t>()));
      std::cout << line;
    }
    std::cout << "collectives: " << (ok ? "ok" : "FAILED") << "\n";
  }
  if (!ok) {
    throw Error("collective check failed on " + process_label());
  }
  return 0;
}

}  // namespace ffc::app
