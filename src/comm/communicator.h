#pragma once
// The collective API of ffc. Nothing outside src/comm calls MPI or NCCL: every layer talks to a
// Communicator. Operations work on contiguous at::Tensor buffers of the backend's device (CPU for
// MpiCommunicator and SingleProcessCommunicator, CUDA for NcclCommunicator), are blocking from the
// caller's point of view (stream-ordered for NCCL) and must be called by every rank in the same
// order with matching shapes.
//
// Supported dtypes: float32, float64, int32, int64, uint8, int8, float16, bfloat16 (float16 and
// bfloat16 reductions accumulate each pairwise step in float32 and round back;
// docs/collectives.md).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ffc::comm {

enum class ReduceOp { kSum, kMax, kMin };
const char* reduce_op_name(ReduceOp op);

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank among the processes of this node, and how many share the node.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // "mpi", "nccl" or "single".
  virtual std::string backend() const = 0;
  // Where this communicator's tensors live (CPU, or this rank's CUDA device for NCCL).
  virtual at::Device device() const = 0;

  // In place: every rank ends with the element-wise reduction over all ranks.
  virtual void all_reduce(at::Tensor& tensor, ReduceOp op) = 0;
  // `out` (size() * in.size(0) rows, else in's shape) receives every rank's `in`, in rank order.
  virtual void all_gather(const at::Tensor& in, at::Tensor& out) = 0;
  // Variable rows: rank r contributes counts[r] rows (in.size(0) == counts[rank()]); `out` has
  // sum(counts) rows, rank-ordered. Trailing dimensions equal on every rank.
  virtual void all_gather_v(const at::Tensor& in, at::Tensor& out,
                            const std::vector<int64_t>& counts) = 0;
  // `in` has size() * out.size(0) rows; rank r receives the reduction over ranks of block r.
  virtual void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) = 0;
  // Variable rows: block r of `in` has counts[r] rows; out.size(0) == counts[rank()].
  virtual void reduce_scatter_v(const at::Tensor& in, at::Tensor& out,
                                const std::vector<int64_t>& counts, ReduceOp op) = 0;
  // In place: every rank ends with root's tensor.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  // The MPI communicator spanning the same processes (a pointer to an MPI_Comm), for libraries
  // that need one (parallel HDF5), or nullptr without MPI. Read it through comm/mpi_handle.h.
  virtual const void* native_mpi_comm() const { return nullptr; }

  // The communicator of host-side bookkeeping over the same processes, in the same rank order:
  // CPU tensors of labels, counts, flags and figures. It is this communicator when its device is
  // the CPU; the NCCL communicator returns an MPI communicator, so that metadata collectives never
  // enter the device's stream and never make the host wait for the device.
  virtual Communicator& host() { return *this; }
};

// ---- helpers built on the interface (communicator.cpp) ----

// Helpers whose result is a host value (counts, flags, scalars) run on comm.host().

// all_reduce(sum) then divide by size(); floating-point tensors only.
void all_reduce_average(Communicator& comm, at::Tensor& tensor);
// Allocating forms, for code off the hot path.
at::Tensor all_gather(Communicator& comm, const at::Tensor& in);
at::Tensor all_gather_v(Communicator& comm, const at::Tensor& in);
// Every rank's value of `local`, in rank order.
std::vector<int64_t> all_gather_counts(Communicator& comm, int64_t local);
// True on every rank when `flag` is true on any rank (e.g. "stop requested").
bool any_rank(Communicator& comm, bool flag);
// True on every rank when SIGUSR1/SIGTERM reached any rank (common/signals.h): the collective
// "stop requested" check of the training loop, called at step boundaries.
bool stop_requested(Communicator& comm);
// Every rank's host name, in rank order.
std::vector<std::string> all_host_names(Communicator& comm);
// The hosts of the world in order of their first rank, each with its ranks: {"n1:0-1",
// "n2:2-3"} (cyclic placements read "n1:0,2").
std::vector<std::string> host_layout(Communicator& comm);
// The same from every rank's host name, in rank order.
std::vector<std::string> host_layout(const std::vector<std::string>& names);
// Collective: lets the process's watchdog (if one runs) write its reports of stalled collectives
// to `dir` (the run's output: a folder every rank sees) and name the ranks that had not arrived;
// `hosts` is all_host_names(comm).
void enable_watchdog_reports(Communicator& comm, const std::string& dir,
                             const std::vector<std::string>& hosts);
// The reduction of a scalar over ranks.
double all_reduce_scalar(Communicator& comm, double value, ReduceOp op);

// A communicator of one process that needs no MPI: every collective is the identity (a copy), on
// tensors of `device`.
std::unique_ptr<Communicator> make_single_process_communicator(at::Device device = at::kCPU);

namespace detail {
// Shared argument checks; they throw ffc::Error with a message naming the operation and the
// offending shapes so that a mismatch fails on the calling rank rather than inside MPI/NCCL.
void check_tensor(const at::Tensor& t, const char* op, const char* what);
void check_gather_shapes(const at::Tensor& in, const at::Tensor& out, int64_t size, const char* op);
void check_counts(const std::vector<int64_t>& counts, int size, int rank, int64_t local_rows,
                  int64_t total_rows, const char* op);
// Row-variable shapes (all_gather_v, reduce_scatter_v): same dtype, same number (>= 1) of
// dimensions and the same trailing dimensions.
void check_v_shapes(const at::Tensor& part, const at::Tensor& whole, const char* op);
// The single-rank result of a gather or scatter: `to` takes `from`'s elements.
void copy_rows(const at::Tensor& from, at::Tensor& to);
// Elements per row: product of dims after the first (1 for 0-d and 1-d tensors).
int64_t row_elements(const at::Tensor& t);
}  // namespace detail

}  // namespace ffc::comm
