#include "h5/parallel.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/crc32.h"
#include "common/error.h"
#include "common/logging.h"

namespace ffc::h5 {
namespace {

using h5::Object;

// HDF5's metadata, measured on files this writer makes (HDF5 1.10, MPI-IO, creation order
// tracked; tests/ckpt/checkpoint_test.cpp, ReservesWhatTheFileTakes, and the checkpoints of
// tests/ckpt/fault_test.sh): a chunked dataset's object header, attributes, link and the node of
// its chunk index cost 2,440 to 2,660 B at rank 1 (the first ones of a group the most), and the
// index node grows with the rank, about 500 B a dimension; a scalar (no chunks, a crc32
// attribute) about 400 B; a group and the file about 2 and 8 KiB. Set so that the estimate stays
// above the file: +0.3% to +0.8% from 300 to 6,000 datasets, under +0.5% where the data dominates.
constexpr int64_t kDatasetBytes = 2400;
constexpr int64_t kDimBytes = 520;
constexpr int64_t kChunkIndexBytes = 48;
constexpr int64_t kScalarDatasetBytes = 600;
constexpr int64_t kGroupBytes = 2000;
constexpr int64_t kFileBytes = 8192;

// Gives back the disk reserved beyond the end of `path` (best effort): `reserved` bytes were set
// aside from its start. Filesystems differ in what frees blocks past the end: tmpfs punches them
// out, ext4 ignores a punch beyond the size and frees them on a truncation to the size.
void release_space_beyond_end(const std::string& path, int64_t reserved) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && reserved > st.st_size) {
    ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size,
                static_cast<off_t>(reserved) - st.st_size);
    if (::ftruncate(fd, st.st_size) != 0) {
      // Nothing lost: the blocks stay set aside until the file is removed.
    }
  }
  ::close(fd);
}

void silence() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

hid_t file_type(DType t) {
  switch (t) {
    case DType::kFloat32:
      return H5T_IEEE_F32LE;
    case DType::kFloat64:
      return H5T_IEEE_F64LE;
    case DType::kInt64:
      return H5T_STD_I64LE;
    case DType::kUInt8:
      return H5T_STD_U8LE;
  }
  return H5T_STD_U8LE;
}

hid_t memory_type(DType t) {
  switch (t) {
    case DType::kFloat32:
      return H5T_NATIVE_FLOAT;
    case DType::kFloat64:
      return H5T_NATIVE_DOUBLE;
    case DType::kInt64:
      return H5T_NATIVE_INT64;
    case DType::kUInt8:
      return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_UINT8;
}

hid_t make_fapl(MPI_Comm comm) {
  const hid_t fapl = FFC_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
  if (comm != MPI_COMM_NULL) {
    FFC_H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    FFC_H5_CHECK(H5Pset_all_coll_metadata_ops(fapl, true));
    FFC_H5_CHECK(H5Pset_coll_metadata_write(fapl, true));
  }
  return fapl;
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kUInt8:
      return 1;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kInt64:
      return "int64";
    case DType::kUInt8:
      return "uint8";
  }
  return "?";
}

ParallelFile ParallelFile::create(const std::string& path, MPI_Comm comm) {
  silence();
  ParallelFile f;
  f.path_ = path;
  f.comm_ = comm;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_rank(comm, &f.rank_);
    MPI_Comm_size(comm, &f.size_);
  }
  Object fapl(make_fapl(comm), &H5Pclose);
  Object fcpl(FFC_H5_CHECK(H5Pcreate(H5P_FILE_CREATE)), &H5Pclose);
  FFC_H5_CHECK(
      H5Pset_link_creation_order(fcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.id(), fapl.id());
  if (id < 0) {
    throw IoError(path + ": cannot create the checkpoint file (" + h5::error_stack_text() +
                  "); check that the folder exists and is writable");
  }
  f.file_ = Object(id, &H5Fclose);
  return f;
}

ParallelFile ParallelFile::open(const std::string& path, MPI_Comm comm) {
  silence();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw IoError(path + ": no such checkpoint file");
  }
  ParallelFile f;
  f.path_ = path;
  f.comm_ = comm;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_rank(comm, &f.rank_);
    MPI_Comm_size(comm, &f.size_);
  }
  Object fapl(make_fapl(comm), &H5Pclose);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
  if (id < 0) {
    throw FormatError(path + ": not a readable HDF5 file (" + h5::error_stack_text() +
                      "); the file is truncated, corrupt or not a checkpoint");
  }
  f.file_ = Object(id, &H5Fclose);
  return f;
}

ParallelFile::~ParallelFile() = default;

void ParallelFile::close() {
  if (file_.valid()) {
    file_.close();
  }
  if (reserved_ > 0) {
    release_space_beyond_end(path_, reserved_);
    reserved_ = 0;
  }
}

bool ParallelFile::reserve(int64_t bytes) {
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    throw IoError(path_ + ": cannot open to reserve space (" + std::strerror(errno) + ")");
  }
  const int rc = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(bytes));
  const int e = errno;
  ::close(fd);
  if (rc == 0) {
    reserved_ = bytes;
    return true;
  }
  if (e == EOPNOTSUPP || e == ENOSYS) {
    return false;
  }
  std::string free_text;
  std::error_code ec;
  const auto space = std::filesystem::space(std::filesystem::path(path_).parent_path(), ec);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  if (!ec) {
    char f[64];
    std::snprintf(f, sizeof(f), "; %.2f MiB free",
                  static_cast<double>(space.available) / (1 << 20));
    free_text = f;
  }
  throw IoError(path_ + ": no room for the file: reserving " + buf + " failed (" +
                std::strerror(e) + ")" + free_text);
}

void ParallelFile::create_group(const std::string& path) {
  // Component by component, so that every group tracks creation order (datasets and groups are
  // listed in the order they were written).
  Object gcpl(FFC_H5_CHECK(H5Pcreate(H5P_GROUP_CREATE)), &H5Pclose);
  FFC_H5_CHECK(
      H5Pset_link_creation_order(gcpl.id(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  size_t pos = path.front() == '/' ? 1 : 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) {
      next = path.size();
    }
    const std::string prefix = path.substr(0, next);
    if (!prefix.empty() && prefix != "/" &&
        FFC_H5_CHECK(H5Lexists(file_.id(), prefix.c_str(), H5P_DEFAULT)) <= 0) {
      Object g(
          FFC_H5_CHECK(H5Gcreate2(file_.id(), prefix.c_str(), H5P_DEFAULT, gcpl.id(), H5P_DEFAULT)),
          &H5Gclose);
      g.close();
    }
    pos = next + 1;
  }
}

bool ParallelFile::exists(const std::string& name) const {
  // Check each component, as H5Lexists requires the parents to exist.
  std::string prefix;
  size_t pos = 0;
  while (pos != std::string::npos) {
    const size_t next = name.find('/', pos + 1);
    prefix = name.substr(0, next);
    if (!prefix.empty() && prefix != "/" &&
        FFC_H5_CHECK(H5Lexists(file_.id(), prefix.c_str(), H5P_DEFAULT)) <= 0) {
      return false;
    }
    pos = next;
  }
  return true;
}

namespace {

// The bytes of one row (the elements beyond the first dimension), at least one element's.
int64_t row_bytes(DType type, const std::vector<int64_t>& dims) {
  int64_t bytes = static_cast<int64_t>(dtype_size(type));
  for (size_t i = 1; i < dims.size(); ++i) {
    bytes *= std::max<int64_t>(dims[i], 1);
  }
  return bytes;
}

// Rows per chunk: blocks of about 4 MiB.
int64_t chunk_rows(DType type, const std::vector<int64_t>& dims) {
  return std::clamp<int64_t>((int64_t{4} << 20) / std::max<int64_t>(row_bytes(type, dims), 1), 1,
                             std::max<int64_t>(dims[0], 1));
}

}  // namespace

int64_t dataset_file_bytes(DType type, const std::vector<int64_t>& dims) {
  if (dims.empty()) {
    return kScalarDatasetBytes + static_cast<int64_t>(dtype_size(type));
  }
  const int64_t rows = chunk_rows(type, dims);
  const int64_t chunks = (dims[0] + rows - 1) / rows;
  return kDatasetBytes + kDimBytes * static_cast<int64_t>(dims.size() - 1) +
         chunks * (rows * row_bytes(type, dims) + 4 + kChunkIndexBytes);
}

int64_t file_overhead_bytes(int64_t groups) {
  return kFileBytes + groups * kGroupBytes;
}

void ParallelFile::create_dataset(const std::string& name, DType type,
                                  const std::vector<int64_t>& dims) {
  if (!exists(parent_of(name))) {
    create_group(parent_of(name));
  }
  Object dcpl(FFC_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)), &H5Pclose);
  Object space;
  if (dims.empty()) {
    space = Object(FFC_H5_CHECK(H5Screate(H5S_SCALAR)), &H5Sclose);
  } else {
    std::vector<hsize_t> cur(dims.begin(), dims.end());
    std::vector<hsize_t> max = cur;
    max[0] = H5S_UNLIMITED;  // lets the chunk exceed a dimension (e.g. 0 rows)
    std::vector<hsize_t> chunk = cur;
    for (size_t i = 1; i < dims.size(); ++i) {
      chunk[i] = std::max<hsize_t>(chunk[i], 1);
    }
    chunk[0] = static_cast<hsize_t>(chunk_rows(type, dims));
    FFC_H5_CHECK(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()));
    FFC_H5_CHECK(H5Pset_fletcher32(dcpl.id()));
    if (comm_ != MPI_COMM_NULL) {
      FFC_H5_CHECK(H5Pset_alloc_time(dcpl.id(), H5D_ALLOC_TIME_EARLY));
      // Every element is written: filling the chunks first would double the I/O.
      FFC_H5_CHECK(H5Pset_fill_time(dcpl.id(), H5D_FILL_TIME_NEVER));
    }
    space =
        Object(FFC_H5_CHECK(H5Screate_simple(static_cast<int>(cur.size()), cur.data(), max.data())),
               &H5Sclose);
  }
  Object ds(FFC_H5_CHECK(H5Dcreate2(file_.id(), name.c_str(), file_type(type), space.id(),
                                    H5P_DEFAULT, dcpl.id(), H5P_DEFAULT)),
            &H5Dclose);
  ds.close();
}

std::vector<int64_t> ParallelFile::dims(const std::string& name) const {
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  Object space(FFC_H5_CHECK(H5Dget_space(ds.id())), &H5Sclose);
  const int n = FFC_H5_CHECK(H5Sget_simple_extent_ndims(space.id()));
  std::vector<hsize_t> d(static_cast<size_t>(n));
  if (n > 0) {
    FFC_H5_CHECK(H5Sget_simple_extent_dims(space.id(), d.data(), nullptr));
  }
  return std::vector<int64_t>(d.begin(), d.end());
}

DType ParallelFile::element_type(const std::string& name) const {
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  Object type(FFC_H5_CHECK(H5Dget_type(ds.id())), &H5Tclose);
  const H5T_class_t cls = FFC_H5_CHECK(H5Tget_class(type.id()));
  const size_t size = FFC_H5_CHECK(H5Tget_size(type.id()));
  if (cls == H5T_FLOAT && size == 4) {
    return DType::kFloat32;
  }
  if (cls == H5T_FLOAT && size == 8) {
    return DType::kFloat64;
  }
  if (cls == H5T_INTEGER && size == 8) {
    return DType::kInt64;
  }
  if (cls == H5T_INTEGER && size == 1) {
    return DType::kUInt8;
  }
  throw FormatError(path_ + ": dataset " + name + " has an element type ffc does not write");
}

void ParallelFile::transfer(const std::string& name, DType type, hid_t file_space, int64_t elements,
                            const void* in, void* out) const {
  // A dataset without elements is never transferred: every rank knows its global size, so all
  // skip alike (HDF5 may skip a zero-size collective transfer on some ranks and not on others).
  if (FFC_H5_CHECK(H5Sget_simple_extent_npoints(file_space)) == 0) {
    return;
  }
  static uint8_t dummy[8] = {0};
  if (elements == 0) {
    // A rank with nothing to move still takes part in the collective call, with a real pointer.
    if (in != nullptr) {
      in = dummy;
    } else {
      out = dummy;
    }
  }
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  const hsize_t n = static_cast<hsize_t>(elements);
  Object mem(FFC_H5_CHECK(H5Screate_simple(1, &n, nullptr)), &H5Sclose);
  if (elements == 0) {
    FFC_H5_CHECK(H5Sselect_none(mem.id()));
    FFC_H5_CHECK(H5Sselect_none(file_space));
  }
  Object dxpl(FFC_H5_CHECK(H5Pcreate(H5P_DATASET_XFER)), &H5Pclose);
  if (comm_ != MPI_COMM_NULL) {
    FFC_H5_CHECK(H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE));
  }
  herr_t rc;
  if (in != nullptr) {
    rc = H5Dwrite(ds.id(), memory_type(type), mem.id(), file_space, dxpl.id(), in);
  } else {
    rc = H5Dread(ds.id(), memory_type(type), mem.id(), file_space, dxpl.id(), out);
  }
  if (rc < 0) {
    const std::string stack = h5::error_stack_text();
    const bool checksum = stack.find("checksum") != std::string::npos ||
                          stack.find("filter") != std::string::npos ||
                          stack.find("Fletcher") != std::string::npos;
    if (in == nullptr && checksum) {
      throw FormatError(path_ + ": dataset " + name +
                        " fails its checksum (the file is corrupt); use an earlier checkpoint");
    }
    throw FormatError(path_ + ": cannot " + (in != nullptr ? "write" : "read") + " dataset " +
                      name + " (" + stack + ")");
  }
  if (comm_ != MPI_COMM_NULL) {
    H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
    FFC_H5_CHECK(H5Pget_mpio_actual_io_mode(dxpl.id(), &mode));
    if (mode == H5D_MPIO_NO_COLLECTIVE && elements > 0) {
      fell_back_ = true;
      if (!reported_) {
        reported_ = true;
        uint32_t local_cause = 0;
        uint32_t global_cause = 0;
        H5Pget_mpio_no_collective_cause(dxpl.id(), &local_cause, &global_cause);
        spdlog::warn(
            "{}: HDF5 carried out a collective transfer of {} as independent I/O "
            "(cause flags local {:#x}, global {:#x}); parallel checkpoints will be slow",
            path_, name, local_cause, global_cause);
      }
    }
  }
}

void ParallelFile::write_whole(const std::string& name, DType type, const void* data, int writer) {
  const std::vector<int64_t> d = dims(name);
  int64_t elements = 1;
  for (int64_t x : d) {
    elements *= x;
  }
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  Object space(FFC_H5_CHECK(H5Dget_space(ds.id())), &H5Sclose);
  ds.close();
  const bool mine = rank_ == writer;
  if (mine) {
    FFC_H5_CHECK(H5Sselect_all(space.id()));
  }
  transfer(name, type, space.id(), mine ? elements : 0, mine ? data : static_cast<const void*>(""),
           nullptr);
  if (d.empty()) {
    // Scalars have no chunk checksum: a CRC attribute, the same value written by every rank.
    uint32_t crc = mine ? crc32(data, dtype_size(type)) : 0;
    if (comm_ != MPI_COMM_NULL) {
      MPI_Bcast(&crc, 1, MPI_UINT32_T, writer, comm_);
    }
    Object d2(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
    h5::write_attribute(d2.id(), "crc32", static_cast<int64_t>(crc));
  }
}

void ParallelFile::write_rows(const std::string& name, DType type, int64_t first, int64_t count,
                              const void* data) {
  write_strided_rows(name, type, first, 1, count, data);
}

// The file space of `name` with rows first, first + stride, ... (count of them) selected, and
// the number of elements they hold.
Object ParallelFile::select_rows(const std::string& name, int64_t first, int64_t stride,
                                 int64_t count, int64_t* elements) const {
  const std::vector<int64_t> d = dims(name);
  FFC_CHECK(!d.empty(), path_ + ": rows of scalar dataset " + name);
  FFC_CHECK(count == 0 || first + (count - 1) * stride < d[0],
            path_ + ": rows beyond " + name + "'s " + std::to_string(d[0]));
  int64_t row = 1;
  for (size_t i = 1; i < d.size(); ++i) {
    row *= d[i];
  }
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  Object space(FFC_H5_CHECK(H5Dget_space(ds.id())), &H5Sclose);
  ds.close();
  if (count > 0) {
    std::vector<hsize_t> start(d.size(), 0), str(d.size(), 1), cnt(d.begin(), d.end());
    start[0] = static_cast<hsize_t>(first);
    str[0] = static_cast<hsize_t>(stride);
    cnt[0] = static_cast<hsize_t>(count);
    FFC_H5_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, start.data(), str.data(),
                                     cnt.data(), nullptr));
  }
  *elements = count * row;
  return space;
}

void ParallelFile::write_strided_rows(const std::string& name, DType type, int64_t first,
                                      int64_t stride, int64_t count, const void* data) {
  int64_t elements = 0;
  const Object space = select_rows(name, first, stride, count, &elements);
  transfer(name, type, space.id(), elements, data != nullptr ? data : "", nullptr);
}

void ParallelFile::read_whole(const std::string& name, DType type, void* data) const {
  const std::vector<int64_t> d = dims(name);
  int64_t elements = 1;
  for (int64_t x : d) {
    elements *= x;
  }
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  Object space(FFC_H5_CHECK(H5Dget_space(ds.id())), &H5Sclose);
  ds.close();
  FFC_H5_CHECK(H5Sselect_all(space.id()));
  transfer(name, type, space.id(), elements, nullptr, data);
  if (d.empty()) {
    check_crc(name, type, data);
  }
}

void ParallelFile::check_crc(const std::string& name, DType type, const void* data) const {
  Object ds(FFC_H5_CHECK(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT)), &H5Dclose);
  if (!h5::has_attribute(ds.id(), "crc32")) {
    throw FormatError(path_ + ": scalar dataset " + name + " has no crc32 attribute");
  }
  const auto want = std::get<int64_t>(h5::read_attribute(ds.id(), "crc32"));
  if (static_cast<uint32_t>(want) != crc32(data, dtype_size(type))) {
    throw FormatError(path_ + ": dataset " + name +
                      " fails its checksum (the file is corrupt); use an earlier checkpoint");
  }
}

void ParallelFile::read_rows(const std::string& name, DType type, int64_t first, int64_t count,
                             void* data) const {
  read_strided_rows(name, type, first, 1, count, data);
}

void ParallelFile::read_strided_rows(const std::string& name, DType type, int64_t first,
                                     int64_t stride, int64_t count, void* data) const {
  int64_t elements = 0;
  const Object space = select_rows(name, first, stride, count, &elements);
  uint8_t dummy = 0;
  transfer(name, type, space.id(), elements, nullptr, data != nullptr ? data : &dummy);
}

void ParallelFile::write_attribute(const std::string& name, const h5::AttributeValue& value) {
  h5::write_attribute(file_.id(), name, value);
}

h5::AttributeValue ParallelFile::read_attribute(const std::string& name) const {
  if (!h5::has_attribute(file_.id(), name)) {
    throw FormatError(path_ + ": root attribute '" + name +
                      "' is missing; not a complete ffc checkpoint");
  }
  return h5::read_attribute(file_.id(), name);
}

bool ParallelFile::has_attribute(const std::string& name) const {
  return h5::has_attribute(file_.id(), name);
}

namespace {

struct Walk {
  std::vector<std::string>* out;
  std::string base;
};

herr_t visit(hid_t /*obj*/, const char* name, const H5O_info_t* info, void* data) {
  auto* w = static_cast<Walk*>(data);
  if (info->type == H5O_TYPE_DATASET) {
    w->out->push_back(w->base + name);
  }
  return 0;
}

}  // namespace

std::vector<std::string> ParallelFile::dataset_paths(const std::string& group) const {
  std::vector<std::string> out;
  Walk w{&out, group == "/" ? "/" : group + "/"};
  Object g(FFC_H5_CHECK(H5Gopen2(file_.id(), group.c_str(), H5P_DEFAULT)), &H5Gclose);
  FFC_H5_CHECK(H5Ovisit2(g.id(), H5_INDEX_CRT_ORDER, H5_ITER_INC, visit, &w, H5O_INFO_BASIC));
  return out;
}

}  // namespace ffc::h5
