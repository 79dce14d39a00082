#include "common/memory.h"

#include <malloc.h>
#include <sys/resource.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace ffc {

bool configure_allocator() {
  const char* keep = std::getenv("FFC_MALLOC_DEFAULTS");
  if (keep != nullptr && std::strcmp(keep, "1") == 0) {
    return false;
  }
  // No mmap-backed chunks: large blocks come from the heap and stay there once freed.
  bool ok = mallopt(M_MMAP_MAX, 0) == 1;
  // Give the top of the heap back to the kernel only when more than 2 GiB of it is free (the
  // largest threshold mallopt accepts) ...
  ok = mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 && ok;
  // ... and grow it in steps of 256 MiB, so that growth costs few system calls.
  ok = mallopt(M_TOP_PAD, 256 << 20) == 1 && ok;
  return ok;
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) {
    return 0;
  }
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace ffc
