#pragma once
// Writing a file so that its path never holds half of it: the content goes to a temporary file in
// the same folder, which is flushed to the disk and renamed over the path only once complete (the
// folder flushed too); on failure the temporary is removed and whatever the path held stays. The
// one way every writer of ffc commits a file: checkpoints and their `latest`, exported networks
// and state dicts, set files, packed datasets and their indexes, embeddings, watchdog reports.
// Torch-free.

#include <string>

namespace ffc {

class AtomicFile {
 public:
  // `temp`: the temporary's path, in the folder of `path` (default: PATH.tmp.<pid>). Throws
  // IoError naming the folder when it does not exist.
  explicit AtomicFile(std::string path, std::string temp = "");
  // Removes the temporary unless committed (errors ignored).
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp() const { return temp_; }
  // The temporary is complete and closed by its writer: flush it to the disk, rename it over
  // path(), flush the folder. Throws IoError naming the paths and the system's reason; when the
  // flush or the rename fails the temporary is removed and path() is unchanged.
  void commit();
  // Removes the temporary now.
  void abandon();

 private:
  std::string path_;
  std::string temp_;
  bool done_ = false;
};

// `bytes` into `path` through an AtomicFile (temp as above).
void write_file_atomically(const std::string& path, const std::string& bytes,
                           const std::string& temp = "");

// Flushes a file (or folder) to the disk; false (errno set) if it cannot be opened or flushed.
bool sync_path(const std::string& path);

}  // namespace ffc
