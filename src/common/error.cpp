#include "common/error.h"

#include <unistd.h>

#include <array>
#include <string_view>

namespace ffc {
namespace {

int g_rank = 0;
int g_size = 1;

std::string read_host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0) {
    return "unknown-host";
  }
  return std::string(buf.data());
}

// Path relative to the source tree: the last "src/" component onwards, for shorter messages.
const char* short_path(const char* file) {
  std::string_view s(file);
  auto pos = s.rfind("/src/");
  return pos == std::string_view::npos ? file : file + pos + 1;
}

}  // namespace

const char* library_name(Library lib) {
  switch (lib) {
    case Library::kMpi:
      return "MPI";
    case Library::kNccl:
      return "NCCL";
    case Library::kHdf5:
      return "HDF5";
    case Library::kCuda:
      return "CUDA";
  }
  return "unknown library";
}

void set_process_identity(int rank, int size) {
  g_rank = rank;
  g_size = size;
}

int process_rank() {
  return g_rank;
}
int process_size() {
  return g_size;
}

const std::string& host_name() {
  static const std::string name = read_host_name();
  return name;
}

std::string process_label() {
  return "host " + host_name() + ", rank " + std::to_string(g_rank) + "/" + std::to_string(g_size);
}

namespace detail {

void raise_library_error(Library lib, long code, const std::string& reason, const char* expr,
                         const char* file, int line) {
  std::string msg = std::string(short_path(file)) + ":" + std::to_string(line) + ": " +
                    library_name(lib) + " call `" + expr + "` failed with code " +
                    std::to_string(code);
  if (!reason.empty()) {
    msg += " (" + reason + ")";
  }
  msg += " on " + process_label();
  throw LibraryError(lib, code, msg);
}

void raise_check_failure(const char* cond, const std::string& message, const char* file, int line) {
  throw Error(std::string(short_path(file)) + ":" + std::to_string(line) + ": " + message +
              " [check `" + cond + "` failed on " + process_label() + "]");
}

}  // namespace detail
}  // namespace ffc
