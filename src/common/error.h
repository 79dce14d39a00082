#pragma once
// Typed errors and the one choke point through which every failed MPI, NCCL, HDF5 and CUDA call
// becomes an exception carrying file:line, host and rank.

#include <stdexcept>
#include <string>

namespace ffc {

// Exit statuses of the `ffc` executable (docs/errors.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a runtime error: bad data, I/O, a failed library call
inline constexpr int kExitUsage = 2;    // a configuration or command-line error
inline constexpr int kExitSavedOnSignal =
    3;  // stopped on SIGUSR1/SIGTERM after saving a checkpoint
// The job stalled: a collective pending past comm_timeout (a rank died or stopped, a link is
// down), or a rank stuck in one after a stop signal; nothing was saved since the last checkpoint.
inline constexpr int kExitStalled = 4;

// Base of every error ffc throws on purpose. The message is meant for the user: it names the
// file, the position and what to do.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad configuration or command line; the process exits with kExitUsage.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Input data that is not what it claims to be (truncated file, bad magic, corrupt record, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A file or directory that cannot be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// An error every rank raises at the same point of a collective decision (a diverged run, a
// checkpoint that could not be written): the job ends with exit status 1 on every rank, without
// MPI_Abort, and rank 0 alone reports it.
class AgreedError : public Error {
 public:
  using Error::Error;
};

enum class Library { kMpi, kNccl, kHdf5, kCuda };
const char* library_name(Library lib);

// A failed call into MPI, NCCL, HDF5 or CUDA.
class LibraryError : public Error {
 public:
  LibraryError(Library lib, long code, const std::string& message)
      : Error(message), library_(lib), code_(code) {}
  Library library() const { return library_; }
  long code() const { return code_; }

 private:
  Library library_;
  long code_;
};

// Who this process is, for error messages and log prefixes. Set by the comm layer once the world
// is known; before that, rank 0 of 1.
void set_process_identity(int rank, int size);
int process_rank();
int process_size();
const std::string& host_name();
// "host node07, rank 3/16"
std::string process_label();

namespace detail {
// The single choke point: formats "<file>:<line>: <Library> call `<expr>` failed with code <code>
// (<reason>) on <process_label>" and throws LibraryError.
[[noreturn]] void raise_library_error(Library lib, long code, const std::string& reason,
                                      const char* expr, const char* file, int line);
[[noreturn]] void raise_check_failure(const char* cond, const std::string& message,
                                      const char* file, int line);
}  // namespace detail

}  // namespace ffc

// Internal invariant: throws ffc::Error naming the condition, the place and the process.
// The message expression is evaluated only on failure.
#define FFC_CHECK(cond, message)                                                \
  do {                                                                          \
    if (!(cond)) {                                                              \
      ::ffc::detail::raise_check_failure(#cond, (message), __FILE__, __LINE__); \
    }                                                                           \
  } while (false)
