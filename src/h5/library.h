#pragma once
// The HDF5 library as a whole, for code that needs no HDF5 type (version lines, process exit).
// Without hdf5.h.

#include <cstdint>
#include <string>

namespace ffc::h5 {

// "1.10.8 (parallel)": the HDF5 library this build uses.
std::string library_version();
// Files of the process that are still open (a close that failed leaves one), and HDF5's own
// teardown (H5close), which must not run while one is.
int64_t open_file_count();
void shut_down();

}  // namespace ffc::h5
