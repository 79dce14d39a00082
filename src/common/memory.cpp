#include "common/memory.h"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
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

int64_t private_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) {
    return 0;
  }
  char line[256];
  long long kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "RssAnon: %lld kB", &kib) == 1) {
      break;
    }
  }
  std::fclose(f);
  return static_cast<int64_t>(kib) * 1024;
}

int64_t peak_private_rss_bytes() {
  static std::atomic<int64_t> peak{0};
  const int64_t now = private_rss_bytes();
  int64_t seen = peak.load();
  while (now > seen && !peak.compare_exchange_weak(seen, now)) {
  }
  return std::max(seen, now);
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) {
    return 0;
  }
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace ffc
