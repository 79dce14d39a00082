#pragma once
// Checkpoints (docs/checkpoint-format.md): one parallel HDF5 file per save, written collectively
// by every rank, committed atomically, found again by `--resume auto`.
//
// Writer and reader speak in tensors: replicated state (the same on every rank: backbone,
// optimiser, pool metadata) is written by one rank and read whole by every rank; sharded state
// (FC weights, pool rows) lives in the file in GLOBAL layout, each rank writing and reading its
// own rows, so a checkpoint resumes on any number of ranks and no rank ever holds a full copy of
// a sharded tensor.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "h5/parallel.h"

namespace ffc::ckpt {

inline constexpr const char* kFormatName = "ffc-checkpoint";
inline constexpr int64_t kFormatVersion = 1;

class CheckpointWriter {
 public:
  // Collective: creates `path` (a temporary name; see commit()).
  CheckpointWriter(const std::string& path, comm::Communicator& comm);
  // A writer that writes nothing and only adds up what the same calls would store, globally (no
  // file, no collective, no copy of a tensor): what a save is about to need on disk.
  struct CountOnly {};
  explicit CheckpointWriter(CountOnly);
  ~CheckpointWriter();

  // The same tensor on every rank; rank `writer` writes it.
  void replicated(const std::string& name, const at::Tensor& t, int writer = 0);
  // Rows first, first + stride, ... of a dataset of `global_rows` rows (other dims from
  // `local`); every rank calls with its own rows (possibly none).
  void rows(const std::string& name, const at::Tensor& local, int64_t global_rows, int64_t first,
            int64_t stride = 1);
  void bytes(const std::string& name, const std::string& data);
  void attribute(const std::string& name, const h5::AttributeValue& value);
  // Collective: marks the file complete (the last attribute written) and closes it; gives back
  // what reserve() set aside beyond the file's end.
  void close();
  const std::string& path() const { return file_.path(); }
  bool fell_back_to_independent() const { return file_.fell_back_to_independent(); }

  // Collective: rank 0 sets aside `bytes` of disk for the file before anything is written
  // (h5::ParallelFile::reserve), so that a disk too full for the checkpoint fails here, where the
  // ranks agree, and not inside HDF5's collective writes, where a rank that fails alone can leave
  // the others waiting. Throws IoError naming the file, the size and the free space. Filesystems
  // that cannot reserve (EOPNOTSUPP) are written without.
  void reserve(int64_t bytes);
  // CountOnly: the tensors' bytes, the number of datasets, and the disk the file will take
  // (h5::dataset_file_bytes: chunks, checksums, HDF5's metadata), within a few percent above.
  int64_t counted_bytes() const { return counted_bytes_; }
  int64_t counted_datasets() const { return counted_datasets_; }
  int64_t needed_bytes() const;

 private:
  h5::ParallelFile file_;
  comm::Communicator* comm_ = nullptr;  // nullptr: CountOnly
  int64_t counted_bytes_ = 0;
  int64_t counted_datasets_ = 0;
  int64_t counted_file_bytes_ = 0;
  std::set<std::string> groups_;

  void count(const std::string& name, h5::DType type, const std::vector<int64_t>& dims);
};

class CheckpointReader {
 public:
  // Collective when `comm` has MPI (every rank opens), else serial. Checks format name, version
  // and completeness; throws FormatError naming what is wrong.
  CheckpointReader(const std::string& path, comm::Communicator& comm);
  // Serial (tools: ffc ckpt).
  explicit CheckpointReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  bool has(const std::string& name) const { return file_.exists(name); }
  std::vector<int64_t> dims(const std::string& name) const { return file_.dims(name); }
  h5::DType dtype(const std::string& name) const { return file_.element_type(name); }
  std::vector<std::string> datasets(const std::string& group = "/") const {
    return file_.dataset_paths(group);
  }

  // The whole dataset as a CPU tensor (its own dtype and shape).
  at::Tensor read(const std::string& name) const;
  // Into an existing tensor of the same shape and dtype; FormatError names both shapes.
  void read_into(const std::string& name, const at::Tensor& into) const;
  // This rank's rows into `local` (its first dimension is the number of rows).
  void read_rows_into(const std::string& name, const at::Tensor& local, int64_t first,
                      int64_t stride = 1) const;
  std::string bytes(const std::string& name) const;
  h5::AttributeValue attribute(const std::string& name) const { return file_.read_attribute(name); }
  int64_t int_attribute(const std::string& name) const;
  std::string string_attribute(const std::string& name) const;
  bool has_attribute(const std::string& name) const { return file_.has_attribute(name); }

 private:
  void check_format() const;
  h5::ParallelFile file_;
};

// Serial: checks the format and completeness, then reads every dataset in blocks of rows, so that
// HDF5 verifies every checksum, without holding a large dataset in memory. Throws FormatError
// (or IoError) naming the file and the dataset. Returns the number of datasets checked.
int64_t verify_checkpoint(const std::string& path);

// ---- the checkpoint folder ----

// "step_000001234.h5"
std::string checkpoint_file_name(int64_t step);
// Checkpoint files of `dir`, newest (highest step) first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// Rank 0 only, after every rank closed the file: fsync `tmp_path`, rename it to
// <dir>/<final_name>, fsync the folder, point <dir>/latest at it (written to a temporary and
// renamed), and delete all but the newest `keep` checkpoints (keep <= 0 keeps all).
void commit_checkpoint(const std::string& tmp_path, const std::string& dir,
                       const std::string& final_name, int keep);
// The checkpoint `latest` names, if any.
std::optional<std::string> latest_checkpoint(const std::string& dir);
// Candidates for --resume auto, in order: the one `latest` names, then the others newest first.
std::vector<std::string> resume_candidates(const std::string& dir);

}  // namespace ffc::ckpt
