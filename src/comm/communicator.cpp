#include "comm/communicator.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <sstream>

#include "comm/watchdog.h"
#include "common/error.h"
#include "common/signals.h"
#include "common/text.h"

namespace ffc::comm {

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

namespace detail {
namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes() << " " << t.scalar_type();
  return s.str();
}

}  // namespace

void check_tensor(const at::Tensor& t, const char* op, const char* what) {
  FFC_CHECK(t.defined(), std::string(op) + ": the " + what + " tensor is undefined");
  FFC_CHECK(t.is_contiguous(), std::string(op) + ": the " + what + " tensor " + shape_of(t) +
                                   " is not contiguous; call .contiguous() first");
}

int64_t row_elements(const at::Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 1; d < t.dim(); ++d) {
    n *= t.size(d);
  }
  return n;
}

void check_gather_shapes(const at::Tensor& in, const at::Tensor& out, int64_t size,
                         const char* op) {
  check_tensor(in, op, "input");
  check_tensor(out, op, "output");
  FFC_CHECK(in.scalar_type() == out.scalar_type(), std::string(op) + ": input " + shape_of(in) +
                                                       " and output " + shape_of(out) +
                                                       " differ in dtype");
  FFC_CHECK(in.device() == out.device(), std::string(op) + ": input and output on other devices");
  bool ok = out.numel() == in.numel() * size;
  if (ok && in.dim() >= 1) {
    ok = out.dim() == in.dim() && out.size(0) == in.size(0) * size &&
         row_elements(out) == row_elements(in);
  }
  FFC_CHECK(ok, std::string(op) + ": with " + std::to_string(size) + " ranks, input " +
                    shape_of(in) + " needs an output of " + std::to_string(size) +
                    "x its rows, got " + shape_of(out));
}

void check_counts(const std::vector<int64_t>& counts, int size, int rank, int64_t local_rows,
                  int64_t total_rows, const char* op) {
  FFC_CHECK(static_cast<int>(counts.size()) == size,
            std::string(op) + ": " + std::to_string(counts.size()) + " counts for " +
                std::to_string(size) + " ranks");
  int64_t total = 0;
  for (int64_t c : counts) {
    FFC_CHECK(c >= 0, std::string(op) + ": negative row count " + std::to_string(c));
    total += c;
  }
  FFC_CHECK(counts[rank] == local_rows, std::string(op) + ": counts[" + std::to_string(rank) +
                                            "] = " + std::to_string(counts[rank]) +
                                            " but this rank has " + std::to_string(local_rows) +
                                            " rows");
  FFC_CHECK(total == total_rows, std::string(op) + ": counts sum to " + std::to_string(total) +
                                     " rows but the gathered tensor has " +
                                     std::to_string(total_rows));
}

void check_v_shapes(const at::Tensor& part, const at::Tensor& whole, const char* op) {
  check_tensor(part, op, "input");
  check_tensor(whole, op, "output");
  FFC_CHECK(part.dim() >= 1 && whole.dim() == part.dim(),
            std::string(op) + ": both tensors need the same number (>= 1) of dimensions, got " +
                shape_of(part) + " and " + shape_of(whole));
  FFC_CHECK(part.scalar_type() == whole.scalar_type(),
            std::string(op) + ": dtypes differ: " + shape_of(part) + " and " + shape_of(whole));
  FFC_CHECK(part.sizes().slice(1) == whole.sizes().slice(1),
            std::string(op) + ": trailing dimensions differ: " + shape_of(part) + " and " +
                shape_of(whole));
}

void copy_rows(const at::Tensor& from, at::Tensor& to) {
  if (from.data_ptr() != to.data_ptr()) {
    to.view(-1).copy_(from.view(-1));
  }
}

}  // namespace detail

void all_reduce_average(Communicator& comm, at::Tensor& tensor) {
  FFC_CHECK(at::isFloatingType(tensor.scalar_type()),
            "all_reduce_average needs a floating-point tensor");
  comm.all_reduce(tensor, ReduceOp::kSum);
  if (comm.size() > 1) {
    tensor.div_(static_cast<double>(comm.size()));
  }
}

at::Tensor all_gather(Communicator& comm, const at::Tensor& in) {
  std::vector<int64_t> shape = in.sizes().vec();
  if (shape.empty()) {
    shape.push_back(comm.size());
  } else {
    shape[0] *= comm.size();
  }
  at::Tensor out = at::empty(shape, in.options());
  comm.all_gather(in, out);
  return out;
}

std::vector<int64_t> all_gather_counts(Communicator& comm, int64_t local) {
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()));
  at::Tensor mine = at::full({1}, local, at::kLong);
  at::Tensor all = at::from_blob(counts.data(), {comm.size()}, at::kLong);
  comm.host().all_gather(mine, all);
  return counts;
}

at::Tensor all_gather_v(Communicator& comm, const at::Tensor& in) {
  FFC_CHECK(in.dim() >= 1, "all_gather_v needs a tensor with at least one dimension");
  const std::vector<int64_t> counts = all_gather_counts(comm, in.size(0));
  std::vector<int64_t> shape = in.sizes().vec();
  shape[0] = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  at::Tensor out = at::empty(shape, in.options());
  comm.all_gather_v(in, out, counts);
  return out;
}

double all_reduce_scalar(Communicator& comm, double value, ReduceOp op) {
  at::Tensor t = at::full({1}, value, at::kDouble);
  comm.host().all_reduce(t, op);
  return t.item<double>();
}

bool any_rank(Communicator& comm, bool flag) {
  return all_reduce_scalar(comm, flag ? 1.0 : 0.0, ReduceOp::kMax) > 0.0;
}

bool stop_requested(Communicator& comm) {
  return any_rank(comm, stop_signal_received());
}

std::vector<std::string> all_host_names(Communicator& comm) {
  constexpr int64_t kLen = 64;  // a host name is at most 64 bytes (HOST_NAME_MAX)
  at::Tensor mine = at::zeros({kLen}, at::kByte);
  const std::string& host = host_name();
  std::memcpy(mine.data_ptr(), host.data(), std::min<size_t>(host.size(), kLen));
  at::Tensor all = at::empty({comm.size() * kLen}, at::kByte);
  comm.host().all_gather(mine, all);
  std::vector<std::string> out;
  const char* p = static_cast<const char*>(all.data_ptr());
  for (int r = 0; r < comm.size(); ++r) {
    out.emplace_back(p + r * kLen, strnlen(p + r * kLen, kLen));
  }
  return out;
}

void enable_watchdog_reports(Communicator& comm, const std::string& dir,
                             const std::vector<std::string>& hosts) {
  Watchdog* dog = process_watchdog();
  if (dog == nullptr) {
    return;  // the same on every rank: the world has one rank, or the watchdog is off
  }
  // A token of this run, so that reports left by an earlier job in the folder are ignored.
  at::Tensor run = at::full(
      {1},
      static_cast<int64_t>(std::chrono::system_clock::now().time_since_epoch().count() ^ getpid()),
      at::kLong);
  comm.host().broadcast(run, 0);
  dog->set_reports(dir, comm.rank(), hosts, static_cast<uint64_t>(run.item<int64_t>()));
}

std::vector<std::string> host_layout(Communicator& comm) {
  return host_layout(all_host_names(comm));
}

std::vector<std::string> host_layout(const std::vector<std::string>& names) {
  std::vector<std::string> hosts;
  std::vector<std::vector<int>> ranks;
  for (int r = 0; r < static_cast<int>(names.size()); ++r) {
    const auto it = std::find(hosts.begin(), hosts.end(), names[r]);
    if (it == hosts.end()) {
      hosts.push_back(names[r]);
      ranks.push_back({r});
    } else {
      ranks[it - hosts.begin()].push_back(r);
    }
  }
  std::vector<std::string> out;
  for (size_t h = 0; h < hosts.size(); ++h) {
    out.push_back(hosts[h] + ":" + rank_ranges(ranks[h]));
  }
  return out;
}

}  // namespace ffc::comm
