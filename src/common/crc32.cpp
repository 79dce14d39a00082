#include "common/crc32.h"

#include <array>

namespace ffc {
namespace {

const std::array<uint32_t, 256>& table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> out{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      }
      out[i] = c;
    }
    return out;
  }();
  return t;
}

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t previous) {
  const std::array<uint32_t, 256>& t = table();
  uint32_t c = previous ^ 0xffffffffu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xffffffffu;
}

}  // namespace ffc
