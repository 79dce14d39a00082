#include "ckpt/checkpoint.h"

#include <ATen/ATen.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>

#include "comm/mpi_handle.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/logging.h"

namespace ffc::ckpt {
namespace {

h5::DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return h5::DType::kFloat32;
    case at::kDouble:
      return h5::DType::kFloat64;
    case at::kLong:
      return h5::DType::kInt64;
    case at::kByte:
    case at::kBool:
      return h5::DType::kUInt8;
    default:
      throw Error(std::string("checkpoint: tensors of type ") + c10::toString(t.scalar_type()) +
                  " are not stored");
  }
}

at::ScalarType scalar_type_of(h5::DType t) {
  switch (t) {
    case h5::DType::kFloat32:
      return at::kFloat;
    case h5::DType::kFloat64:
      return at::kDouble;
    case h5::DType::kInt64:
      return at::kLong;
    case h5::DType::kUInt8:
      return at::kByte;
  }
  return at::kByte;
}

// A contiguous CPU tensor with the stored element type (bool travels as uint8).
at::Tensor storable(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  if (c.scalar_type() == at::kBool) {
    c = c.to(at::kByte);
  }
  return c;
}

std::string shape_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(d[i]);
  }
  return s + "]";
}

int64_t step_of(const std::string& name) {
  long long step = -1;
  char tail[8] = {0};
  if (std::sscanf(name.c_str(), "step_%lld.h%7s", &step, tail) == 2 && std::string(tail) == "5") {
    return step;
  }
  return -1;
}

// Runs one collective step of a checkpoint write and tells every rank whether it failed on any,
// so that all ranks give up together: a rank that went on alone into the next collective call
// would wait there forever (a full disk often fails only the rank that writes HDF5's metadata).
void agreed(comm::Communicator& comm, const std::function<void()>& step) {
  std::exception_ptr error;
  try {
    step();
  } catch (const Error&) {
    error = std::current_exception();
  }
  if (comm::any_rank(comm, error != nullptr)) {
    if (error) {
      std::rethrow_exception(error);
    }
    throw IoError("another rank could not write its part of the checkpoint (its log says why)");
  }
}

}  // namespace

// ---------------------------------------------------------------- writer

CheckpointWriter::CheckpointWriter(const std::string& path, comm::Communicator& comm)
    : file_(h5::ParallelFile::create(path, comm::mpi_comm(comm))), comm_(&comm) {
  attribute("format", std::string(kFormatName));
  attribute("format_version", kFormatVersion);
}

CheckpointWriter::CheckpointWriter(CountOnly) {}

CheckpointWriter::~CheckpointWriter() = default;

void CheckpointWriter::replicated(const std::string& name, const at::Tensor& t, int writer) {
  if (comm_ == nullptr) {
    count(name, dtype_of(t), t.sizes().vec());
    return;
  }
  const at::Tensor c = storable(t);
  const h5::DType type = dtype_of(c);
  agreed(*comm_, [&] { file_.create_dataset(name, type, c.sizes().vec()); });
  agreed(*comm_, [&] {
    file_.write_whole(name, type, comm_->rank() == writer ? c.data_ptr() : nullptr, writer);
  });
}

void CheckpointWriter::rows(const std::string& name, const at::Tensor& local, int64_t global_rows,
                            int64_t first, int64_t stride) {
  FFC_CHECK(local.dim() >= 1, "checkpoint rows of a 0-d tensor " + name);
  if (comm_ == nullptr) {
    std::vector<int64_t> dims = local.sizes().vec();
    dims[0] = global_rows;
    count(name, dtype_of(local), dims);
    return;
  }
  const at::Tensor c = storable(local);
  std::vector<int64_t> dims = c.sizes().vec();
  dims[0] = global_rows;
  const h5::DType type = dtype_of(c);
  agreed(*comm_, [&] { file_.create_dataset(name, type, dims); });
  agreed(*comm_, [&] {
    file_.write_strided_rows(name, type, first, stride, c.size(0),
                             c.numel() > 0 ? c.data_ptr() : nullptr);
  });
}

void CheckpointWriter::count(const std::string& name, h5::DType type,
                             const std::vector<int64_t>& dims) {
  int64_t elements = 1;
  for (const int64_t d : dims) {
    elements *= d;
  }
  counted_bytes_ += elements * static_cast<int64_t>(h5::dtype_size(type));
  counted_file_bytes_ += h5::dataset_file_bytes(type, dims);
  ++counted_datasets_;
  // Its groups ("head/pool/rows": head and head/pool).
  for (size_t slash = name.find('/', 1); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    groups_.insert(name.substr(0, slash));
  }
}

int64_t CheckpointWriter::needed_bytes() const {
  return counted_file_bytes_ + h5::file_overhead_bytes(static_cast<int64_t>(groups_.size()));
}

void CheckpointWriter::reserve(int64_t bytes) {
  FFC_CHECK(comm_ != nullptr, "reserve() on a counting checkpoint writer");
  agreed(*comm_, [&] {
    if (comm_->rank() == 0) {
      file_.reserve(bytes);
    }
  });
}

void CheckpointWriter::bytes(const std::string& name, const std::string& data) {
  if (comm_ == nullptr) {
    count(name, h5::DType::kUInt8, {static_cast<int64_t>(data.size())});
    return;
  }
  // Rank 0's text is stored. The ranks' texts may differ (the last metrics record holds each
  // rank's own timings), and the dataset's size must be the same on every rank of the collective
  // create: else rank 0 writes its text into a dataset sized for another rank's, leaving trailing
  // garbage (or cutting it short).
  at::Tensor size = at::full({1}, static_cast<int64_t>(data.size()), at::kLong);
  comm_->host().broadcast(size, 0);
  const int64_t n = size.item<int64_t>();
  at::Tensor t = at::zeros({n}, at::kByte);
  if (comm_->rank() == 0 && n > 0) {
    std::memcpy(t.data_ptr(), data.data(), static_cast<size_t>(n));
  }
  replicated(name, t, 0);
}

void CheckpointWriter::attribute(const std::string& name, const h5::AttributeValue& value) {
  if (comm_ == nullptr) {
    return;  // in the object headers, which needed_bytes() allows for
  }
  agreed(*comm_, [&] { file_.write_attribute(name, value); });
}

void CheckpointWriter::close() {
  if (comm_ == nullptr) {
    return;
  }
  attribute("complete", int64_t{1});
  agreed(*comm_, [&] { file_.close(); });  // gives back the reserve beyond the file's end
}

// ---------------------------------------------------------------- reader

CheckpointReader::CheckpointReader(const std::string& path, comm::Communicator& comm)
    : file_(h5::ParallelFile::open(path, comm::mpi_comm(comm))) {
  check_format();
}

CheckpointReader::CheckpointReader(const std::string& path)
    : file_(h5::ParallelFile::open(path, MPI_COMM_NULL)) {
  check_format();
}

void CheckpointReader::check_format() const {
  if (!file_.has_attribute("format") ||
      std::get<std::string>(file_.read_attribute("format")) != kFormatName) {
    throw FormatError(path() + ": not an ffc checkpoint (no format attribute '" + kFormatName +
                      "')");
  }
  const int64_t version = int_attribute("format_version");
  if (version != kFormatVersion) {
    throw FormatError(path() + ": checkpoint format version " + std::to_string(version) +
                      ", this ffc reads version " + std::to_string(kFormatVersion) +
                      "; use the ffc release that wrote it");
  }
  if (!file_.has_attribute("complete")) {
    throw FormatError(path() + ": the checkpoint is incomplete (its writer did not finish)");
  }
}

int64_t CheckpointReader::int_attribute(const std::string& name) const {
  const auto v = file_.read_attribute(name);
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return *i;
  }
  throw FormatError(path() + ": attribute " + name + " is not an integer");
}

std::string CheckpointReader::string_attribute(const std::string& name) const {
  const auto v = file_.read_attribute(name);
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  throw FormatError(path() + ": attribute " + name + " is not a string");
}

at::Tensor CheckpointReader::read(const std::string& name) const {
  if (!file_.exists(name)) {
    throw FormatError(path() + ": dataset " + name + " is missing");
  }
  const h5::DType type = file_.element_type(name);
  at::Tensor t = at::empty(file_.dims(name), at::TensorOptions().dtype(scalar_type_of(type)));
  file_.read_whole(name, type, t.data_ptr());
  return t;
}

void CheckpointReader::read_into(const std::string& name, const at::Tensor& into) const {
  if (!file_.exists(name)) {
    throw FormatError(path() + ": dataset " + name + " is missing");
  }
  const std::vector<int64_t> d = file_.dims(name);
  if (d != into.sizes().vec()) {
    throw FormatError(path() + ": dataset " + name + " has shape " + shape_text(d) +
                      " but this run's tensor has shape " + shape_text(into.sizes().vec()) +
                      "; the checkpoint is of another model or configuration");
  }
  const at::Tensor t = read(name);
  at::NoGradGuard no_grad;
  into.copy_(t.to(into.scalar_type()));
}

void CheckpointReader::read_rows_into(const std::string& name, const at::Tensor& local,
                                      int64_t first, int64_t stride) const {
  if (!file_.exists(name)) {
    throw FormatError(path() + ": dataset " + name + " is missing");
  }
  const std::vector<int64_t> d = file_.dims(name);
  std::vector<int64_t> want = local.sizes().vec();
  const int64_t last = local.size(0) > 0 ? first + (local.size(0) - 1) * stride : -1;
  if (d.size() != want.size() || !std::equal(d.begin() + 1, d.end(), want.begin() + 1) ||
      last >= d[0]) {
    want[0] = last + 1;
    throw FormatError(path() + ": dataset " + name + " has shape " + shape_text(d) +
                      "; this run needs rows up to " + std::to_string(last) + " of shape " +
                      shape_text(want) + "; the checkpoint is of another configuration");
  }
  const h5::DType type = file_.element_type(name);
  at::Tensor buf = at::empty(local.sizes(), at::TensorOptions().dtype(scalar_type_of(type)));
  file_.read_strided_rows(name, type, first, stride, local.size(0),
                          buf.numel() > 0 ? buf.data_ptr() : nullptr);
  at::NoGradGuard no_grad;
  local.copy_(buf.to(local.scalar_type()));
}

std::string CheckpointReader::bytes(const std::string& name) const {
  const at::Tensor t = read(name);
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()),
                     static_cast<size_t>(t.numel()));
}

int64_t verify_checkpoint(const std::string& path) {
  CheckpointReader r(path);
  const std::vector<std::string> names = r.datasets();
  for (const auto& name : names) {
    const std::vector<int64_t> d = r.dims(name);
    if (d.empty()) {
      r.read(name);  // scalar: its CRC attribute is checked
      continue;
    }
    int64_t row = static_cast<int64_t>(h5::dtype_size(r.dtype(name)));
    for (size_t i = 1; i < d.size(); ++i) {
      row *= d[i];
    }
    const int64_t block = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(row, 1));
    std::vector<int64_t> shape = d;
    for (int64_t first = 0; first < d[0]; first += block) {
      shape[0] = std::min(block, d[0] - first);
      at::Tensor buf = at::empty(shape, at::TensorOptions().dtype(scalar_type_of(r.dtype(name))));
      r.read_rows_into(name, buf, first);
    }
  }
  return static_cast<int64_t>(names.size());
}

// ---------------------------------------------------------------- folder

std::string checkpoint_file_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "step_%09lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const int64_t step = step_of(e->d_name);
      if (step >= 0) {
        found.emplace_back(step, dir + "/" + e->d_name);
      }
    }
    ::closedir(d);
  }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> out;
  for (auto& f : found) {
    out.push_back(f.second);
  }
  return out;
}

std::optional<std::string> latest_checkpoint(const std::string& dir) {
  std::ifstream in(dir + "/latest");
  std::string name;
  if (in && std::getline(in, name) && !name.empty()) {
    return dir + "/" + name;
  }
  return std::nullopt;
}

std::vector<std::string> resume_candidates(const std::string& dir) {
  std::vector<std::string> out;
  if (auto latest = latest_checkpoint(dir)) {
    out.push_back(*latest);
  }
  for (const auto& c : list_checkpoints(dir)) {
    if (std::find(out.begin(), out.end(), c) == out.end()) {
      out.push_back(c);
    }
  }
  return out;
}

void commit_checkpoint(const std::string& tmp_path, const std::string& dir,
                       const std::string& final_name, int keep) {
  AtomicFile(dir + "/" + final_name, tmp_path).commit();
  write_file_atomically(dir + "/latest", final_name + "\n", dir + "/.latest.partial");
  if (keep > 0) {
    const auto all = list_checkpoints(dir);
    for (size_t i = static_cast<size_t>(keep); i < all.size(); ++i) {
      if (std::remove(all[i].c_str()) != 0) {
        spdlog::warn("{}: could not delete an old checkpoint ({})", all[i], std::strerror(errno));
      }
    }
  }
}

}  // namespace ffc::ckpt
