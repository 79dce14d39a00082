#pragma once
// Checks an MPI return code through ffc's single error choke point (common/error.h).
// Only for src/comm: nothing else includes mpi.h.

#include <mpi.h>

#include <string>

#include "common/error.h"

namespace ffc::comm::detail {

inline std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) {
    return "unknown MPI error";
  }
  return std::string(text, static_cast<size_t>(len));
}

}  // namespace ffc::comm::detail

#define FFC_MPI_CHECK(expr)                                                                       \
  do {                                                                                            \
    const int ffc_mpi_rc_ = (expr);                                                               \
    if (ffc_mpi_rc_ != MPI_SUCCESS) {                                                             \
      ::ffc::detail::raise_library_error(::ffc::Library::kMpi, ffc_mpi_rc_,                       \
                                         ::ffc::comm::detail::mpi_error_text(ffc_mpi_rc_), #expr, \
                                         __FILE__, __LINE__);                                     \
    }                                                                                             \
  } while (false)
