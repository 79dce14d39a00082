#pragma once
// Process-wide allocator settings.
//
// glibc serves allocations above 32 MiB with fresh mmap()s and returns them to the kernel on
// free, so a buffer allocated and freed every step (MPI's reduction scratch space, LibTorch
// temporaries) pays for first-touch page faults every time; on the virtual machines we measured,
// that made a 64 MiB MPI all-reduce 15x slower (docs/benchmarks.md). configure_allocator() keeps
// freed memory in the process for reuse instead. Set FFC_MALLOC_DEFAULTS=1 to keep glibc's
// defaults.

namespace ffc {

// Call first thing in main(). Returns true when the settings were applied.
bool configure_allocator();

}  // namespace ffc
