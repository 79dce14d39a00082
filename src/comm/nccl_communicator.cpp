// NcclCommunicator: collectives on CUDA tensors over NCCL. One GPU per rank: the device is the
// node-local rank (MPI_Comm_split_type), the NCCL unique id travels by MPI_Bcast.
//
// Streams: with a CUDA-enabled LibTorch the operations are enqueued on LibTorch's current stream
// of the device, so they order with the surrounding kernels without a host synchronisation. With a
// CPU-only LibTorch (no CUDA tensors can exist, but the code is compiled and linked) they run on a
// private stream and the host waits for each operation.
//
// Faults (docs/gpu.md, "When a rank fails"): every collective is followed by an event the
// watchdog (comm/watchdog.h) polls, together with ncclCommGetAsyncError. An asynchronous NCCL
// error, or a collective pending longer than comm_timeout, makes the watchdog log what happened,
// call ncclCommAbort (which releases the kernels other work waits on) and take the job down with
// MPI_Abort: a host thread blocked in a device synchronisation cannot notice a dead peer itself.
// Host waits of our own (barrier) poll the same state. Unwinding after an error aborts the
// communicator instead of destroying it, which could wait forever for peers that are gone.

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "comm/backends.h"
#include "comm/mpi_check.h"
#include "comm/watchdog.h"
#include "common/logging.h"
#include "common/text.h"

#if defined(FFC_TORCH_HAS_CUDA)
#include <c10/cuda/CUDAStream.h>
#endif

#define FFC_NCCL_CHECK(expr)                                                                     \
  do {                                                                                           \
    const ncclResult_t ffc_nccl_rc_ = (expr);                                                    \
    if (ffc_nccl_rc_ != ncclSuccess) {                                                           \
      ::ffc::detail::raise_library_error(::ffc::Library::kNccl, static_cast<long>(ffc_nccl_rc_), \
                                         ncclGetErrorString(ffc_nccl_rc_), #expr, __FILE__,      \
                                         __LINE__);                                              \
    }                                                                                            \
  } while (false)

#define FFC_CUDA_CHECK(expr)                                                                     \
  do {                                                                                           \
    const cudaError_t ffc_cuda_rc_ = (expr);                                                     \
    if (ffc_cuda_rc_ != cudaSuccess) {                                                           \
      ::ffc::detail::raise_library_error(::ffc::Library::kCuda, static_cast<long>(ffc_cuda_rc_), \
                                         cudaGetErrorString(ffc_cuda_rc_), #expr, __FILE__,      \
                                         __LINE__);                                              \
    }                                                                                            \
  } while (false)

namespace ffc::comm {
namespace {

ncclDataType_t nccl_type(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    default:
      FFC_CHECK(false, std::string(op) + ": dtype " + c10::toString(t) +
                           " is not supported by the nccl backend");
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const CommOptions& options) {
    MPI_Comm world = MPI_COMM_WORLD;
    FFC_MPI_CHECK(MPI_Comm_rank(world, &rank_));
    FFC_MPI_CHECK(MPI_Comm_size(world, &size_));
    MPI_Comm node = MPI_COMM_NULL;
    FFC_MPI_CHECK(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    FFC_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    FFC_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    FFC_MPI_CHECK(MPI_Comm_free(&node));

    int devices = 0;
    const cudaError_t rc = cudaGetDeviceCount(&devices);
    if (rc != cudaSuccess || devices == 0) {
      throw Error("the nccl backend needs a CUDA device per rank, but " + process_label() +
                  " sees none (" + cudaGetErrorString(rc) + "); check the job's GPU request");
    }
    if (local_rank_ >= devices) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      throw Error(
          "node-local rank " + std::to_string(local_rank_) + " of " + std::to_string(local_size_) +
          " on " + host_name() + " but only " + std::to_string(devices) +
          " CUDA devices are visible (CUDA_VISIBLE_DEVICES=" + (visible ? visible : "unset") +
          "); launch as many ranks per node as GPUs per node, and do not use "
          "--gpus-per-task (it hides the other GPUs from NCCL)");
    }
    device_ = local_rank_;
    FFC_CUDA_CHECK(cudaSetDevice(device_));
    // The process's watchdog watches NCCL's operations and the host communicator's collectives.
    Watchdog::Options o;
    o.timeout_seconds = options.comm_timeout_seconds > 0 ? options.comm_timeout_seconds : 1e9;
    o.poll_seconds = options.poll_seconds;
    o.stop_grace_seconds = std::min(o.stop_grace_seconds, o.timeout_seconds);
    watchdog_ = std::make_unique<Watchdog>(
        o, [this] { return async_error(); },
        [this](const std::string& message, int code) { on_fault(message, code); });
    set_process_watchdog(watchdog_.get());
    host_ = make_mpi_communicator();
    ncclUniqueId id;
    if (rank_ == 0) {
      FFC_NCCL_CHECK(ncclGetUniqueId(&id));
    }
    FFC_MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, world));
    watchdog_->begin_phase(
        "the NCCL communicator's start (ncclCommInitRank over " + std::to_string(size_) + " ranks)",
        o.timeout_seconds, kExitStalled);
    FFC_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
    watchdog_->end_phase();
    comm_ready_.store(true);
#if !defined(FFC_TORCH_HAS_CUDA)
    FFC_CUDA_CHECK(cudaStreamCreateWithFlags(&own_stream_, cudaStreamNonBlocking));
#endif
    FFC_CUDA_CHECK(cudaMalloc(&barrier_buf_, sizeof(float)));
  }

  ~NcclCommunicator() override {
    const bool failing = std::uncaught_exceptions() > 0 || faulted_.load();
    watchdog_.reset();  // stops polling before the communicator goes
    if (comm_ != nullptr) {
      // Destroying waits for the peers' matching operations; after an error they may never come.
      if (failing) {
        ncclCommAbort(comm_);
      } else {
        ncclCommDestroy(comm_);
      }
    }
    if (barrier_buf_ != nullptr) {
      cudaFree(barrier_buf_);
    }
    if (own_stream_ != nullptr) {
      cudaStreamDestroy(own_stream_);
    }
  }

  int rank() const override {
    return rank_;
  }
  int size() const override {
    return size_;
  }
  int local_rank() const override {
    return local_rank_;
  }
  int local_size() const override {
    return local_size_;
  }
  std::string backend() const override {
    return "nccl";
  }
  at::Device device() const override {
    return at::Device(at::kCUDA, device_);
  }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override {
    check_device(tensor, "all_reduce", "input");
    const ncclDataType_t type = nccl_type(tensor.scalar_type(), "all_reduce");
    FFC_NCCL_CHECK(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), type,
                                 nccl_op(op), comm_, stream()));
    enqueued("all_reduce", tensor.nbytes());
  }

  void all_gather(const at::Tensor& in, at::Tensor& out) override {
    detail::check_gather_shapes(in, out, size_, "all_gather");
    check_device(in, "all_gather", "input");
    check_device(out, "all_gather", "output");
    FFC_NCCL_CHECK(ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(),
                                 nccl_type(in.scalar_type(), "all_gather"), comm_, stream()));
    enqueued("all_gather", out.nbytes());
  }

  void all_gather_v(const at::Tensor& in, at::Tensor& out,
                    const std::vector<int64_t>& counts) override {
    check_device(in, "all_gather_v", "input");
    check_device(out, "all_gather_v", "output");
    detail::check_v_shapes(in, out, "all_gather_v");
    detail::check_counts(counts, size_, rank_, in.size(0), out.size(0), "all_gather_v");
    const ncclDataType_t type = nccl_type(in.scalar_type(), "all_gather_v");
    const int64_t row = detail::row_elements(out);
    char* base = static_cast<char*>(out.data_ptr());
    const int64_t elem = out.element_size();
    // NCCL has no all-gather-v: one broadcast per root, grouped into a single launch.
    FFC_NCCL_CHECK(ncclGroupStart());
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      void* dst = base + offset * row * elem;
      const void* src = r == rank_ ? in.data_ptr() : dst;
      FFC_NCCL_CHECK(ncclBroadcast(src, dst, counts[r] * row, type, r, comm_, stream()));
      offset += counts[r];
    }
    FFC_NCCL_CHECK(ncclGroupEnd());
    enqueued("all_gather_v", out.nbytes());
  }

  void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    detail::check_gather_shapes(out, in, size_, "reduce_scatter");
    check_device(in, "reduce_scatter", "input");
    check_device(out, "reduce_scatter", "output");
    FFC_NCCL_CHECK(ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(),
                                     nccl_type(in.scalar_type(), "reduce_scatter"), nccl_op(op),
                                     comm_, stream()));
    enqueued("reduce_scatter", in.nbytes());
  }

  void reduce_scatter_v(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>& counts,
                        ReduceOp op) override {
    check_device(in, "reduce_scatter_v", "input");
    check_device(out, "reduce_scatter_v", "output");
    detail::check_v_shapes(out, in, "reduce_scatter_v");
    detail::check_counts(counts, size_, rank_, out.size(0), in.size(0), "reduce_scatter_v");
    const ncclDataType_t type = nccl_type(in.scalar_type(), "reduce_scatter_v");
    const int64_t row = detail::row_elements(in);
    const char* base = static_cast<const char*>(in.data_ptr());
    const int64_t elem = in.element_size();
    // One reduce per root, grouped: rank r receives the reduction of block r.
    FFC_NCCL_CHECK(ncclGroupStart());
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      const void* src = base + offset * row * elem;
      void* dst = r == rank_ ? out.data_ptr() : nullptr;
      FFC_NCCL_CHECK(ncclReduce(src, dst, counts[r] * row, type, nccl_op(op), r, comm_, stream()));
      offset += counts[r];
    }
    FFC_NCCL_CHECK(ncclGroupEnd());
    enqueued("reduce_scatter_v", in.nbytes());
  }

  void broadcast(at::Tensor& tensor, int root) override {
    check_device(tensor, "broadcast", "input");
    FFC_CHECK(root >= 0 && root < size_, "broadcast: root " + std::to_string(root) +
                                             " is not a rank of " + std::to_string(size_));
    FFC_NCCL_CHECK(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                                 nccl_type(tensor.scalar_type(), "broadcast"), root, comm_,
                                 stream()));
    enqueued("broadcast", tensor.nbytes());
  }

  const void* native_mpi_comm() const override {
    return host_->native_mpi_comm();
  }
  Communicator& host() override {
    return *host_;
  }

  void barrier() override {
    check_healthy("barrier");
    FFC_NCCL_CHECK(
        ncclAllReduce(barrier_buf_, barrier_buf_, 1, ncclFloat32, ncclSum, comm_, stream()));
    record("barrier", sizeof(float));
    wait("barrier");
  }

 private:
  cudaStream_t stream() const {
#if defined(FFC_TORCH_HAS_CUDA)
    return c10::cuda::getCurrentCUDAStream(device_).stream();
#else
    return own_stream_;
#endif
  }

  // After an operation was enqueued: the watchdog follows it. Without LibTorch's streams the
  // caller cannot order work after ours, so the host waits here (polling).
  void enqueued(const char* op, int64_t bytes) {
    record(op, bytes);
#if !defined(FFC_TORCH_HAS_CUDA)
    wait(op);
#endif
  }

  // Records an event after the operation and hands it to the watchdog, which destroys it once it
  // has completed.
  void record(const char* op, int64_t bytes) {
    cudaEvent_t ev = nullptr;
    FFC_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    FFC_CUDA_CHECK(cudaEventRecord(ev, stream()));
    const uint64_t seq = ++sequence_;
    const int dev = device_;
    watchdog_->watch("NCCL " + std::string(op) + " #" + std::to_string(seq) + " (" +
                         human_bytes(static_cast<double>(bytes)) + ") on " + process_label(),
                     [ev, dev](std::string& message) {
                       cudaSetDevice(dev);
                       const cudaError_t rc = cudaEventQuery(ev);
                       if (rc == cudaErrorNotReady) {
                         return Watchdog::State::kPending;
                       }
                       cudaEventDestroy(ev);
                       if (rc != cudaSuccess) {
                         message = cudaGetErrorString(rc);
                         return Watchdog::State::kFailed;
                       }
                       return Watchdog::State::kDone;
                     });
  }

  // Waits on the host until the stream's work (the operation just enqueued and what came
  // before) is done, polling the fault state so that a failure ends the wait with an error
  // instead of a hang.
  void wait(const char* op) {
    for (int spins = 0;; ++spins) {
      const cudaError_t rc = cudaStreamQuery(stream());
      if (rc == cudaSuccess) {
        return;
      }
      if (rc != cudaErrorNotReady) {
        FFC_CUDA_CHECK(rc);
      }
      check_healthy(op);
      const std::string err = async_error();
      if (!err.empty()) {
        throw Error(std::string("NCCL ") + op + " on " + process_label() + ": " + err);
      }
      if (spins > 1000) {
        ::usleep(1000);
      }
    }
  }

  void check_healthy(const char* op) const {
    if (faulted_.load()) {
      throw Error(std::string("NCCL ") + op + ": the communicator was aborted after a fault (" +
                  fault_message_ + ")");
    }
  }

  // NCCL's asynchronous error state, as a message (empty when healthy).
  std::string async_error() {
    if (!comm_ready_.load()) {
      return {};
    }
    ncclResult_t state = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) {
      return "ncclCommGetAsyncError failed";
    }
    if (state == ncclSuccess || state == ncclInProgress) {
      return {};
    }
    std::string msg = std::string("asynchronous NCCL error: ") + ncclGetErrorString(state);
    const char* last = ncclGetLastError(comm_);
    if (last != nullptr && *last != '\0') {
      msg += " (" + std::string(last) + ")";
    }
    return msg;
  }

  // The watchdog's verdict: abort NCCL, then the job. Called from the watchdog thread.
  void on_fault(const std::string& message, int code) {
    fault_message_ = message;
    faulted_.store(true);
    spdlog::error("{}; aborting NCCL", message);
    if (comm_ready_.load()) {
      ncclCommAbort(comm_);
    }
    end_job_on_fault("NCCL aborted", code);
  }

  void check_device(const at::Tensor& t, const char* op, const char* what) const {
    check_healthy(op);
    detail::check_tensor(t, op, what);
    FFC_CHECK(t.device() == device(),
              std::string(op) + ": the nccl backend of this rank works on " + device().str() +
                  ", the " + what + " is on " + t.device().str());
  }

  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t own_stream_ = nullptr;
  void* barrier_buf_ = nullptr;
  std::unique_ptr<Communicator> host_;
  std::unique_ptr<Watchdog> watchdog_;
  std::atomic<bool> comm_ready_{false};
  std::atomic<bool> faulted_{false};
  std::string fault_message_;
  uint64_t sequence_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const CommOptions& options) {
  return std::make_unique<NcclCommunicator>(options);
}

}  // namespace ffc::comm
