#include "bench/runner.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/stats.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"
#include "plan/plan.h"

namespace ffc::bench {
namespace {
std::string self_exe() {
  std::vector<char> buf(4096, 0);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) {
    throw IoError("/proc/self/exe: cannot find the ffc executable to launch");
  }
  std::string path(buf.data(), static_cast<size_t>(n));
  // Rebuilt while the benchmark runs: launch the new file at the same path.
  const std::string deleted = " (deleted)";
  if (path.size() > deleted.size() &&
      path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0) {
    path.resize(path.size() - deleted.size());
  }
  return path;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) {
    s.replace(i, from.size(), to);
  }
  return s;
}

}  // namespace

// Best GFLOP/s of a square float32 matmul at `threads` threads (the machine's matmul peak as the
// head sees it), measured in this process.
double matmul_peak_gflops(int threads, int64_t n) {
  const int saved = at::get_num_threads();
  at::set_num_threads(threads);
  const at::Tensor a = at::randn({n, n});
  const at::Tensor b = at::randn({n, n});
  at::Tensor c = at::empty({n, n});
  double best = 0;
  for (int i = 0; i < 12; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 2) {
      best = std::max(best, 2.0 * n * n * n / s / 1e9);
    }
  }
  at::set_num_threads(saved);
  return best;
}

std::string machine_text() {
  std::string cpu = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  // LibTorch's build summary names its BLAS (BLAS_INFO=...).
  std::string blas = "unknown";
  const std::string config = at::show_config();
  const size_t at_blas = config.find("BLAS_INFO=");
  if (at_blas != std::string::npos) {
    blas = config.substr(at_blas + 10, config.find_first_of(", \n", at_blas) - at_blas - 10);
  }
  std::ostringstream o;
  o << cpu << ", " << std::thread::hardware_concurrency() << " cores, "
    << static_cast<int64_t>(plan::machine_memory_bytes() / (1 << 30)) << " GiB, BLAS " << blas;
  return o.str();
}

// Runs `ffc train` through the launcher; returns its exit status. Output in <dir>/<id>.log.
int launch(const Common& c, const RunSpec& run, const std::string& dir) {
  std::string cmd = replace_all(c.launcher, "{ranks}", std::to_string(run.ranks));
  cmd += " " + shell_quote(self_exe()) + " train";
  if (!c.config.empty()) {
    cmd += " --config " + shell_quote(c.config);
  }
  for (const auto& s : run.sets) {
    cmd += " --set " + shell_quote(s);
  }
  for (const auto& s : c.sets) {
    cmd += " --set " + shell_quote(s);
  }
  cmd += " --set " + shell_quote("output=" + dir + "/" + run.id);
  const std::string log = dir + "/" + run.id + ".log";
  spdlog::info("bench: {}", cmd);
  const int rc = std::system((cmd + " >" + shell_quote(log) + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::vector<std::string> common_sets(const Common& c, int64_t seed) {
  return {"rec=synthetic",
          "network=" + c.network,
          "image_size=" + std::to_string(c.image_size),
          "embedding_size=" + std::to_string(c.embedding),
          "batch_size=" + std::to_string(c.batch),
          "sample_rate=" + std::to_string(c.sample_rate),
          "images_per_identity=4",
          "num_workers=1",
          "save_every=0",
          "save_last=false",
          "seed=" + std::to_string(seed)};
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomically(path, text);
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = std::nan("");
  in >> load;
  return load;
}

}  // namespace ffc::bench
