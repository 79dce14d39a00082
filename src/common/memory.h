#pragma once
// Process-wide allocator settings.
//
// glibc serves allocations above 32 MiB with fresh mmap()s and returns them to the kernel on
// free, so a buffer allocated and freed every step (MPI's reduction scratch space, LibTorch
// temporaries) pays for first-touch page faults every time; on the virtual machines we measured,
// that made a 64 MiB MPI all-reduce 15x slower (docs/benchmarks.md). configure_allocator() keeps
// freed memory in the process for reuse instead. Set FFC_MALLOC_DEFAULTS=1 to keep glibc's
// defaults.

#include <cstdint>

namespace ffc {

// Call first thing in main(). Returns true when the settings were applied.
bool configure_allocator();

// Peak resident set size of this process so far (getrusage's ru_maxrss), in bytes. It counts
// mapped file pages too (the binary dataset index, shared by the ranks of a node).
int64_t peak_rss_bytes();

// Private (anonymous) resident memory now (RssAnon of /proc/self/status), in bytes: what this
// process costs beyond the page cache it shares; 0 where the kernel does not report it.
int64_t private_rss_bytes();
// The largest private_rss_bytes() seen by the calls so far (this one included).
int64_t peak_private_rss_bytes();

}  // namespace ffc
