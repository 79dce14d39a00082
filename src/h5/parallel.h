#pragma once
// Parallel HDF5 through MPI-IO for checkpoints: every rank opens the file together; datasets are
// created collectively (same calls on every rank); each rank writes or reads its own rows with a
// collective transfer. Datasets are chunked by row blocks and carry HDF5's Fletcher32 checksum
// filter, which HDF5 verifies on every read; 0-d (scalar) datasets, which cannot be chunked, carry
// a CRC-32 attribute instead, checked by read_dataset().
//
// A collective transfer that HDF5 silently performs as independent I/O is detected
// (H5Pget_mpio_actual_io_mode) and reported once per file through the log, with HDF5's reason.
//
// Without MPI (communicator of the single-process backend) files use the serial driver and the
// same calls work on one process.

#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "h5/h5.h"

namespace ffc::h5 {

// Element types of checkpoint datasets.
enum class DType { kFloat32, kFloat64, kInt64, kUInt8 };
size_t dtype_size(DType type);
const char* dtype_name(DType type);

// What ParallelFile's files take on disk, for a writer that must reserve it before it writes
// (ckpt/checkpoint.h): a dataset of `type` and `dims` (its chunks, row blocks of about 4 MiB of
// which the last is whole, each with its checksum, and HDF5's metadata of one dataset: object
// header, attributes, chunk index); and the file's own (superblock, root group, free-space
// bookkeeping) with `groups` groups besides the root. Measured with the HDF5 this builds
// against (tests/h5/reservation_test.cpp holds the estimate to within 3% of real files, above).
int64_t dataset_file_bytes(DType type, const std::vector<int64_t>& dims);
int64_t file_overhead_bytes(int64_t groups);

class ParallelFile {
 public:
  // Collective. Creates (truncating) `path`, tracking creation order.
  static ParallelFile create(const std::string& path, MPI_Comm comm);
  // Collective. Opens `path` read-only. Throws IoError if it does not exist, FormatError if it is
  // not an HDF5 file.
  static ParallelFile open(const std::string& path, MPI_Comm comm);

  ParallelFile() = default;
  ParallelFile(ParallelFile&&) = default;
  ParallelFile& operator=(ParallelFile&&) = default;
  ~ParallelFile();

  hid_t id() const { return file_.id(); }
  const std::string& path() const { return path_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return comm_; }
  // Collective close; checked. Gives back what reserve() set aside beyond the file's end.
  void close();
  // On one rank: sets aside `bytes` of disk for the file without changing its size (fallocate
  // with KEEP_SIZE), so that a disk too full for what is about to be written fails here, where
  // the ranks can still agree, and not inside a collective write. Returns false where the
  // filesystem cannot reserve (the file is then written without). Throws IoError naming the file,
  // the size asked for and the free space when the disk has no room.
  bool reserve(int64_t bytes);

  // Groups: "a/b" creates intermediate groups. Collective.
  void create_group(const std::string& path);

  // Collective: a chunked, checksummed dataset (a CRC-attributed one for dims = {}).
  void create_dataset(const std::string& name, DType type, const std::vector<int64_t>& dims);
  std::vector<int64_t> dims(const std::string& name) const;
  DType element_type(const std::string& name) const;
  bool exists(const std::string& name) const;

  // Collective writes. `data` holds the selected elements contiguously.
  // The whole dataset from rank `writer` (others pass nullptr and write nothing).
  void write_whole(const std::string& name, DType type, const void* data, int writer);
  // Rows [first, first + count) of dim 0 (count may be 0 on some ranks).
  void write_rows(const std::string& name, DType type, int64_t first, int64_t count,
                  const void* data);
  // Rows first, first + stride, ..., count of them.
  void write_strided_rows(const std::string& name, DType type, int64_t first, int64_t stride,
                          int64_t count, const void* data);

  // Collective reads (every rank reads its selection).
  void read_whole(const std::string& name, DType type, void* data) const;
  void read_rows(const std::string& name, DType type, int64_t first, int64_t count,
                 void* data) const;
  void read_strided_rows(const std::string& name, DType type, int64_t first, int64_t stride,
                         int64_t count, void* data) const;

  // Attributes on the root (written by every rank with the same value: collective metadata).
  void write_attribute(const std::string& name, const h5::AttributeValue& value);
  h5::AttributeValue read_attribute(const std::string& name) const;
  bool has_attribute(const std::string& name) const;

  // All dataset paths under `group` (recursively), in creation order.
  std::vector<std::string> dataset_paths(const std::string& group = "/") const;

  // True when some collective transfer was carried out as independent I/O.
  bool fell_back_to_independent() const { return fell_back_; }

 private:
  void transfer(const std::string& name, DType type, hid_t file_space, int64_t elements,
                const void* in, void* out) const;
  void check_crc(const std::string& name, DType type, const void* data) const;
  h5::Object select_rows(const std::string& name, int64_t first, int64_t stride, int64_t count,
                         int64_t* elements) const;

  std::string path_;
  h5::Object file_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  mutable bool fell_back_ = false;
  mutable bool reported_ = false;
  int64_t reserved_ = 0;
};

}  // namespace ffc::h5
