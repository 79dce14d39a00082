#include "comm/watchdog.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/signals.h"
#include "common/text.h"

namespace ffc::comm {
namespace {

std::atomic<Watchdog*> g_process_watchdog{nullptr};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A configured bound ("0.3 s", "600 s").
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g s", s);
  return buf;
}

// A measured wait, to the second.
std::string waited_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f s", s);
  return buf;
}

// "rank 3" or "ranks 0-1,4".
std::string ranks_phrase(const std::vector<int>& ranks) {
  return (ranks.size() == 1 ? "rank " : "ranks ") + rank_ranges(ranks);
}

constexpr uint64_t kPhaseWait = ~uint64_t{0};

}  // namespace

Watchdog::Watchdog(const Options& options, AsyncError async_error, Fault on_fault)
    : options_(options), async_error_(std::move(async_error)), on_fault_(std::move(on_fault)) {
  FFC_CHECK(
      options.timeout_seconds > 0 && options.poll_seconds > 0 && options.stop_grace_seconds > 0,
      "watchdog: timeouts and the poll interval must be positive");
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  Watchdog* self = this;
  g_process_watchdog.compare_exchange_strong(self, nullptr);
}

void Watchdog::watch(std::string what, Poll poll) {
  std::lock_guard<std::mutex> lock(mutex_);
  ops_.push_back({std::move(what), std::move(poll), Clock::now()});
}

uint64_t Watchdog::begin_collective(const char* op, int64_t bytes) {
  const uint64_t seq = seq_.load(std::memory_order_relaxed) + 1;
  op_.store(op, std::memory_order_relaxed);
  bytes_.store(bytes, std::memory_order_relaxed);
  seq_.store(seq, std::memory_order_relaxed);
  since_ns_.store(now_ns(), std::memory_order_release);
  return seq;
}

void Watchdog::end_collective() {
  since_ns_.store(0, std::memory_order_release);
}

void Watchdog::begin_phase(std::string what, double timeout_seconds, int exit_code,
                           std::function<void()> cleanup) {
  std::lock_guard<std::mutex> lock(mutex_);
  phase_ = {std::move(what), timeout_seconds, exit_code, std::move(cleanup), Clock::now()};
  in_phase_ = true;
  if (reported_ == kPhaseWait) {
    reported_ = 0;  // a new phase is reported afresh
  }
}

void Watchdog::end_phase() {
  std::lock_guard<std::mutex> lock(mutex_);
  in_phase_ = false;
  phase_.cleanup = nullptr;
}

void Watchdog::set_reports(std::string dir, int rank, std::vector<std::string> hosts,
                           uint64_t run) {
  std::lock_guard<std::mutex> lock(mutex_);
  report_dir_ = std::move(dir);
  rank_ = rank;
  hosts_ = std::move(hosts);
  run_ = run;
}

size_t Watchdog::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ops_.size();
}

bool Watchdog::faulted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return faulted_;
}

std::string Watchdog::collective_text(uint64_t seq, const char* op, int64_t bytes) const {
  return std::string(op != nullptr ? op : "collective") + " #" + std::to_string(seq) + " (" +
         human_bytes(static_cast<double>(bytes)) + ")";
}

std::string Watchdog::context_text() const {
  std::string out;
  const int64_t step = step_.load(std::memory_order_relaxed);
  if (step >= 0) {
    out += " at step " + std::to_string(step);
  }
  const char* stage = stage_.load(std::memory_order_relaxed);
  if (stage != nullptr) {
    out += std::string(step >= 0 ? "," : "") + " stage " + stage;
  }
  return out + " on " + process_label();
}

std::string Watchdog::arrivals_text(uint64_t seq) const {
  const int size = static_cast<int>(hosts_.size());
  if (report_dir_.empty() || size <= 1) {
    return {};
  }
  // rank -> its report, for this run's reports only.
  std::map<int, std::map<std::string, std::string>> reports;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(report_dir_, ec)) {
    std::ifstream in(entry.path());
    std::map<std::string, std::string> fields;
    std::string token;
    while (in >> token) {
      const auto eq = token.find('=');
      if (eq != std::string::npos) {
        fields[token.substr(0, eq)] = token.substr(eq + 1);
      }
    }
    if (fields["run"] == std::to_string(run_) && !fields["rank"].empty()) {
      reports[std::atoi(fields["rank"].c_str())] = fields;
    }
  }
  std::vector<int> arrived;
  std::vector<int> missing;
  std::map<std::string, std::vector<int>> elsewhere;  // "waiting in X at step S" -> ranks
  for (int r = 0; r < size; ++r) {
    const auto it = reports.find(r);
    if (it == reports.end()) {
      missing.push_back(r);
      continue;
    }
    const auto& f = it->second;
    if (seq != kPhaseWait && f.count("seq") && f.at("seq") == std::to_string(seq)) {
      arrived.push_back(r);
    } else {
      std::string where;
      if (f.count("phase")) {  // the phase names its step
        where = "in " + f.at("phase");
        std::replace(where.begin(), where.end(), '_', ' ');  // phases travel with _ for spaces
      } else {
        where = "in " + f.at("op") + " #" + f.at("seq") + " at step " + f.at("step");
      }
      elsewhere["waiting " + where].push_back(r);
    }
  }
  std::string out;
  if (seq != kPhaseWait) {
    out += "; waiting in it: " + (arrived.empty() ? std::string("none") : ranks_phrase(arrived));
  }
  for (const auto& [where, ranks] : elsewhere) {
    out += "; " + ranks_phrase(ranks) + " " + where;
  }
  if (!missing.empty()) {
    std::vector<std::string> where;
    for (int r : missing) {
      if (std::find(where.begin(), where.end(), hosts_[r]) == where.end()) {
        where.push_back(hosts_[r]);
      }
    }
    std::string on;
    for (const std::string& h : where) {
      on += (on.empty() ? "" : ", ") + h;
    }
    out += "; not arrived (no report): " + ranks_phrase(missing) + " on " + on +
           " (stopped, dead, cut off, or busy elsewhere)";
  } else if (seq != kPhaseWait && static_cast<int>(arrived.size()) == size) {
    out += " (every rank: the network between them is down, or a rank stopped inside it)";
  }
  return out + " [reports in " + report_dir_ + "]";
}

void Watchdog::maybe_report(Clock::time_point now) {
  std::string dir;
  std::string line;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (report_dir_.empty() || faulted_) {
      return;
    }
    const int64_t since = since_ns_.load(std::memory_order_acquire);
    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    std::ostringstream s;
    s << "run=" << run_ << " rank=" << rank_ << " host=" << hosts_[rank_]
      << " step=" << step_.load(std::memory_order_relaxed);
    if (in_phase_ &&
        std::chrono::duration<double>(now - phase_.since).count() > phase_.timeout / 2) {
      if (reported_ == kPhaseWait) {
        return;
      }
      reported_ = kPhaseWait;
      std::string what = phase_.what;
      std::replace(what.begin(), what.end(), ' ', '_');
      s << " phase=" << what;
    } else if (!in_phase_ && since != 0 && now_s - since * 1e-9 > options_.timeout_seconds / 2) {
      const uint64_t seq = seq_.load(std::memory_order_relaxed);
      if (reported_ == seq) {
        return;
      }
      reported_ = seq;
      const char* op = op_.load(std::memory_order_relaxed);
      s << " seq=" << seq << " op=" << (op != nullptr ? op : "collective")
        << " bytes=" << bytes_.load(std::memory_order_relaxed);
    } else {
      return;
    }
    dir = report_dir_;
    line = s.str() + "\n";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/rank-" + std::to_string(rank_);
  try {
    write_file_atomically(path, line, path + ".tmp");
  } catch (const std::exception&) {
    // A report that cannot be written must not stop the watchdog that ends the job.
  }
}

std::string Watchdog::check(Clock::time_point now, int& exit_code, std::function<void()>& cleanup) {
  // Asynchronous operations, oldest first: they complete in order, so the first pending one ends
  // the round (the ones after it are pending too).
  while (!ops_.empty()) {
    Op& op = ops_.front();
    std::string failure;
    const State s = op.poll(failure);
    if (s == State::kDone) {
      ops_.pop_front();
      continue;
    }
    if (s == State::kFailed) {
      exit_code = kExitFailure;
      return op.what + " failed: " + failure;
    }
    if (std::chrono::duration<double>(now - op.since).count() > options_.timeout_seconds) {
      exit_code = options_.exit_code;
      return op.what + " did not complete within " + seconds_text(options_.timeout_seconds) +
             " (comm_timeout; a rank died, hangs or never called it)" + context_text();
    }
    break;
  }
  const int64_t since = since_ns_.load(std::memory_order_acquire);
  const uint64_t seq = seq_.load(std::memory_order_relaxed);
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double waited = since != 0 ? now_s - static_cast<double>(since) * 1e-9 : 0;
  // The text only when there is a verdict: the thread polls ten times a second.
  const auto collective = [&] {
    return collective_text(seq, op_.load(std::memory_order_relaxed),
                           bytes_.load(std::memory_order_relaxed));
  };
  if (in_phase_) {
    const double in = std::chrono::duration<double>(now - phase_.since).count();
    if (in > phase_.timeout) {
      exit_code = phase_.exit_code;
      cleanup = phase_.cleanup;
      return phase_.what + " did not complete within " + seconds_text(phase_.timeout) +
             (since != 0 ? " (waiting " + waited_text(waited) + " in " + collective() + ")" : "") +
             context_text() + arrivals_text(kPhaseWait);  // the others report the phase
    }
    return {};
  }
  if (since == 0) {
    return {};
  }
  if (waited > options_.timeout_seconds) {
    exit_code = options_.exit_code;
    return collective() + " did not complete within " + seconds_text(options_.timeout_seconds) +
           " (comm_timeout)" + context_text() + arrivals_text(seq);
  }
  if (stop_signal_received()) {
    if (!signal_noted_) {
      signal_noted_ = true;
      signal_seen_ = now;
    }
    const double since_signal = std::chrono::duration<double>(now - signal_seen_).count();
    if (std::min(waited, since_signal) > options_.stop_grace_seconds) {
      exit_code = options_.exit_code;
      return "stopped by signal " + std::to_string(last_stop_signal()) + " while " + collective() +
             " was pending for " + waited_text(waited) + ": its peers do not answer, so this " +
             "rank cannot save and leaves" + context_text() + arrivals_text(seq);
    }
  }
  return {};
}

void Watchdog::fault(const std::string& message, int exit_code,
                     const std::function<void()>& cleanup) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (faulted_) {
      return;
    }
    faulted_ = true;
  }
  if (cleanup) {
    cleanup();
  }
  on_fault_(message, exit_code);
}

void Watchdog::run() {
  const auto interval = std::chrono::duration<double>(options_.poll_seconds);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    cv_.wait_for(lock, interval, [this] { return stop_; });
    if (stop_ || faulted_) {
      continue;
    }
    const auto now = Clock::now();
    int exit_code = options_.exit_code;
    std::function<void()> cleanup;
    std::string message = check(now, exit_code, cleanup);
    if (message.empty() && async_error_) {
      lock.unlock();
      message = async_error_();
      lock.lock();
      exit_code = kExitFailure;
    }
    lock.unlock();
    if (!message.empty()) {
      fault(message, exit_code, cleanup);
    } else {
      maybe_report(now);
    }
    lock.lock();
  }
}

Watchdog* process_watchdog() {
  return g_process_watchdog.load(std::memory_order_acquire);
}

void set_process_watchdog(Watchdog* watchdog) {
  g_process_watchdog.store(watchdog, std::memory_order_release);
}

WatchedPhase::WatchedPhase(std::string what, double timeout_seconds, int exit_code,
                           std::function<void()> cleanup) {
  if (Watchdog* w = process_watchdog()) {
    w->begin_phase(std::move(what), timeout_seconds, exit_code, std::move(cleanup));
  }
}

WatchedPhase::~WatchedPhase() {
  if (Watchdog* w = process_watchdog()) {
    w->end_phase();
  }
}

void watch_step(int64_t step) {
  if (Watchdog* w = process_watchdog()) {
    w->set_step(step);
  }
}

void watch_stage(const char* stage) {
  if (Watchdog* w = process_watchdog()) {
    w->set_stage(stage);
  }
}

}  // namespace ffc::comm
