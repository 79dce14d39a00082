#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace ffc {

bool sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

namespace {

std::string folder_of(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string temp)
    : path_(std::move(path)), temp_(std::move(temp)) {
  const std::string dir = folder_of(path_);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("cannot write '" + path_ + "': directory '" + dir + "' does not exist");
  }
  if (temp_.empty()) {
    temp_ = path_ + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  }
}

AtomicFile::~AtomicFile() {
  if (!done_) {
    std::remove(temp_.c_str());
  }
}

void AtomicFile::abandon() {
  std::remove(temp_.c_str());
  done_ = true;
}

void AtomicFile::commit() {
  if (!sync_path(temp_)) {
    const int err = errno;
    abandon();
    throw IoError(temp_ + ": cannot flush to the disk (" + std::strerror(err) + "); " + path_ +
                  " is unchanged");
  }
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    abandon();
    throw IoError(path_ + ": cannot rename " + temp_ + " into place (" + std::strerror(err) +
                  "); the path is unchanged");
  }
  done_ = true;
  const std::string dir = folder_of(path_);
  if (!sync_path(dir)) {
    throw IoError(dir + ": cannot flush the folder to the disk after writing " + path_ + " (" +
                  std::strerror(errno) + ")");
  }
}

void write_file_atomically(const std::string& path, const std::string& bytes,
                           const std::string& temp) {
  AtomicFile file(path, temp);
  {
    std::ofstream out(file.temp(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      throw IoError(file.temp() + ": write failed (" + std::strerror(errno) + ")");
    }
  }
  file.commit();
}

}  // namespace ffc
