// MpiCommunicator: collectives on CPU tensors over MPI.

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <climits>
#include <numeric>

#include "comm/backends.h"
#include "comm/mpi_check.h"
#include "comm/watchdog.h"

namespace ffc::comm {
namespace {

// MPI has no 16-bit float types: they travel as 2-byte elements and reduce through user-defined
// operations that compute in float32 and round back.
template <class T, class F>
void reduce_16bit(void* in, void* inout, int* len, F f) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) {
    b[i] = static_cast<T>(f(static_cast<float>(a[i]), static_cast<float>(b[i])));
  }
}

template <class T>
void sum16(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_16bit<T>(in, inout, len, [](float x, float y) { return x + y; });
}
template <class T>
void max16(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_16bit<T>(in, inout, len, [](float x, float y) { return std::max(x, y); });
}
template <class T>
void min16(void* in, void* inout, int* len, MPI_Datatype*) {
  reduce_16bit<T>(in, inout, len, [](float x, float y) { return std::min(x, y); });
}

// A blocking collective, watched for its duration by the process's watchdog, if one runs.
class Watched {
 public:
  Watched(const char* op, int64_t bytes) : dog_(process_watchdog()) {
    if (dog_ != nullptr) {
      dog_->begin_collective(op, bytes);
    }
  }
  ~Watched() {
    if (dog_ != nullptr) {
      dog_->end_collective();
    }
  }
  Watched(const Watched&) = delete;
  Watched& operator=(const Watched&) = delete;

 private:
  Watchdog* dog_;
};

int64_t bytes_of(const at::Tensor& t) {
  return t.numel() * static_cast<int64_t>(t.element_size());
}

// Largest element count passed to one MPI call: MPI counts are int.
constexpr int64_t kMaxChunk = int64_t{1} << 30;

int to_int_count(int64_t n, const char* op) {
  FFC_CHECK(n <= INT_MAX, std::string(op) + ": " + std::to_string(n) +
                              " elements exceed MPI's int count; split the tensor");
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommOptions* watch) {
    FFC_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    FFC_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    FFC_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    FFC_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm node = MPI_COMM_NULL;
    FFC_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    FFC_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    FFC_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    FFC_MPI_CHECK(MPI_Comm_free(&node));

    FFC_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &half_type_));
    FFC_MPI_CHECK(MPI_Type_commit(&half_type_));
    FFC_MPI_CHECK(MPI_Type_contiguous(2, MPI_BYTE, &bf16_type_));
    FFC_MPI_CHECK(MPI_Type_commit(&bf16_type_));
    FFC_MPI_CHECK(MPI_Op_create(&sum16<c10::Half>, 1, &half_ops_[0]));
    FFC_MPI_CHECK(MPI_Op_create(&max16<c10::Half>, 1, &half_ops_[1]));
    FFC_MPI_CHECK(MPI_Op_create(&min16<c10::Half>, 1, &half_ops_[2]));
    FFC_MPI_CHECK(MPI_Op_create(&sum16<c10::BFloat16>, 1, &bf16_ops_[0]));
    FFC_MPI_CHECK(MPI_Op_create(&max16<c10::BFloat16>, 1, &bf16_ops_[1]));
    FFC_MPI_CHECK(MPI_Op_create(&min16<c10::BFloat16>, 1, &bf16_ops_[2]));
    if (watch != nullptr && size_ > 1 && watch->comm_timeout_seconds > 0) {
      Watchdog::Options o;
      o.timeout_seconds = watch->comm_timeout_seconds;
      o.poll_seconds = watch->poll_seconds;
      o.stop_grace_seconds = std::min(o.stop_grace_seconds, o.timeout_seconds);
      watchdog_ = std::make_unique<Watchdog>(o, nullptr, end_job_on_fault);
      set_process_watchdog(watchdog_.get());
    }
  }

  ~MpiCommunicator() override {
    watchdog_.reset();  // stops watching (and is no longer the process's watchdog)
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
      return;  // MPI objects died with MPI; nothing left to free.
    }
    for (MPI_Op& op : half_ops_) {
      MPI_Op_free(&op);
    }
    for (MPI_Op& op : bf16_ops_) {
      MPI_Op_free(&op);
    }
    MPI_Type_free(&half_type_);
    MPI_Type_free(&bf16_type_);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override { return "mpi"; }
  at::Device device() const override { return at::Device(at::kCPU); }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override {
    check_cpu(tensor, "all_reduce", "input");
    const MPI_Datatype type = mpi_type(tensor.scalar_type(), "all_reduce");
    const MPI_Op mop = mpi_op(op, tensor.scalar_type());
    if (size_ == 1) {
      return;
    }
    const Watched watched("all_reduce", bytes_of(tensor));
    char* base = static_cast<char*>(tensor.data_ptr());
    const int64_t elem = tensor.element_size();
    for (int64_t off = 0; off < tensor.numel(); off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, tensor.numel() - off));
      FFC_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, base + off * elem, n, type, mop, comm_));
    }
  }

  void all_gather(const at::Tensor& in, at::Tensor& out) override {
    detail::check_gather_shapes(in, out, size_, "all_gather");
    check_cpu(in, "all_gather", "input");
    check_cpu(out, "all_gather", "output");
    const MPI_Datatype type = mpi_type(in.scalar_type(), "all_gather");
    if (size_ == 1) {
      detail::copy_rows(in, out);
      return;
    }
    const int n = to_int_count(in.numel(), "all_gather");
    const Watched watched("all_gather", bytes_of(out));
    FFC_MPI_CHECK(MPI_Allgather(in.data_ptr(), n, type, out.data_ptr(), n, type, comm_));
  }

  void all_gather_v(const at::Tensor& in, at::Tensor& out,
                    const std::vector<int64_t>& counts) override {
    check_cpu(in, "all_gather_v", "input");
    check_cpu(out, "all_gather_v", "output");
    detail::check_v_shapes(in, out, "all_gather_v");
    detail::check_counts(counts, size_, rank_, in.size(0), out.size(0), "all_gather_v");
    const MPI_Datatype type = mpi_type(in.scalar_type(), "all_gather_v");
    if (size_ == 1) {
      detail::copy_rows(in, out);
      return;
    }
    std::vector<int> recv_counts, displs;
    element_counts(counts, detail::row_elements(out), "all_gather_v", recv_counts, displs);
    const Watched watched("all_gather_v", bytes_of(out));
    FFC_MPI_CHECK(MPI_Allgatherv(in.data_ptr(), recv_counts[rank_], type, out.data_ptr(),
                                 recv_counts.data(), displs.data(), type, comm_));
  }

  void reduce_scatter(const at::Tensor& in, at::Tensor& out, ReduceOp op) override {
    detail::check_gather_shapes(out, in, size_, "reduce_scatter");
    check_cpu(in, "reduce_scatter", "input");
    check_cpu(out, "reduce_scatter", "output");
    const MPI_Datatype type = mpi_type(in.scalar_type(), "reduce_scatter");
    const MPI_Op mop = mpi_op(op, in.scalar_type());
    if (size_ == 1) {
      detail::copy_rows(in, out);
      return;
    }
    const int n = to_int_count(out.numel(), "reduce_scatter");
    const Watched watched("reduce_scatter", bytes_of(in));
    FFC_MPI_CHECK(MPI_Reduce_scatter_block(in.data_ptr(), out.data_ptr(), n, type, mop, comm_));
  }

  void reduce_scatter_v(const at::Tensor& in, at::Tensor& out, const std::vector<int64_t>& counts,
                        ReduceOp op) override {
    check_cpu(in, "reduce_scatter_v", "input");
    check_cpu(out, "reduce_scatter_v", "output");
    detail::check_v_shapes(out, in, "reduce_scatter_v");
    detail::check_counts(counts, size_, rank_, out.size(0), in.size(0), "reduce_scatter_v");
    const MPI_Datatype type = mpi_type(in.scalar_type(), "reduce_scatter_v");
    const MPI_Op mop = mpi_op(op, in.scalar_type());
    if (size_ == 1) {
      detail::copy_rows(in, out);
      return;
    }
    std::vector<int> recv_counts, displs;
    element_counts(counts, detail::row_elements(in), "reduce_scatter_v", recv_counts, displs);
    const Watched watched("reduce_scatter_v", bytes_of(in));
    FFC_MPI_CHECK(
        MPI_Reduce_scatter(in.data_ptr(), out.data_ptr(), recv_counts.data(), type, mop, comm_));
  }

  void broadcast(at::Tensor& tensor, int root) override {
    check_cpu(tensor, "broadcast", "input");
    FFC_CHECK(root >= 0 && root < size_, "broadcast: root " + std::to_string(root) +
                                             " is not a rank of " + std::to_string(size_));
    const MPI_Datatype type = mpi_type(tensor.scalar_type(), "broadcast");
    if (size_ == 1) {
      return;
    }
    const Watched watched("broadcast", bytes_of(tensor));
    char* base = static_cast<char*>(tensor.data_ptr());
    const int64_t elem = tensor.element_size();
    for (int64_t off = 0; off < tensor.numel(); off += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, tensor.numel() - off));
      FFC_MPI_CHECK(MPI_Bcast(base + off * elem, n, type, root, comm_));
    }
  }

  void barrier() override {
    const Watched watched("barrier", 0);
    FFC_MPI_CHECK(MPI_Barrier(comm_));
  }
  const void* native_mpi_comm() const override { return &comm_; }

 private:
  static void check_cpu(const at::Tensor& t, const char* op, const char* what) {
    detail::check_tensor(t, op, what);
    FFC_CHECK(t.device().is_cpu(),
              std::string(op) + ": the mpi backend works on CPU tensors, the " + what + " is on " +
                  t.device().str() + " (use the nccl backend for CUDA tensors)");
  }

  void element_counts(const std::vector<int64_t>& rows, int64_t row_elems, const char* op,
                      std::vector<int>& counts, std::vector<int>& displs) const {
    counts.resize(size_);
    displs.resize(size_);
    int64_t offset = 0;
    for (int r = 0; r < size_; ++r) {
      counts[r] = to_int_count(rows[r] * row_elems, op);
      displs[r] = to_int_count(offset, op);
      offset += rows[r] * row_elems;
    }
  }

  MPI_Datatype mpi_type(at::ScalarType t, const char* op) const {
    switch (t) {
      case at::kFloat:
        return MPI_FLOAT;
      case at::kDouble:
        return MPI_DOUBLE;
      case at::kInt:
        return MPI_INT32_T;
      case at::kLong:
        return MPI_INT64_T;
      case at::kByte:
        return MPI_UINT8_T;
      case at::kChar:
        return MPI_INT8_T;
      case at::kHalf:
        return half_type_;
      case at::kBFloat16:
        return bf16_type_;
      default:
        FFC_CHECK(false, std::string(op) + ": dtype " + c10::toString(t) +
                             " is not supported (float32, float64, int32, int64, uint8, int8, "
                             "float16, bfloat16)");
    }
    return MPI_DATATYPE_NULL;
  }

  MPI_Op mpi_op(ReduceOp op, at::ScalarType t) const {
    const int i = static_cast<int>(op);
    if (t == at::kHalf) {
      return half_ops_[i];
    }
    if (t == at::kBFloat16) {
      return bf16_ops_[i];
    }
    static const MPI_Op kOps[] = {MPI_SUM, MPI_MAX, MPI_MIN};
    return kOps[i];
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  MPI_Datatype half_type_ = MPI_DATATYPE_NULL;
  MPI_Datatype bf16_type_ = MPI_DATATYPE_NULL;
  MPI_Op half_ops_[3] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  MPI_Op bf16_ops_[3] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  std::unique_ptr<Watchdog> watchdog_;  // the world communicator's (make_mpi_communicator)
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions* watch) {
  return std::make_unique<MpiCommunicator>(watch);
}

}  // namespace ffc::comm
