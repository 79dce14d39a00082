#pragma once
// CRC-32 (IEEE 802.3, the same values as zlib's crc32), incremental: crc32(b, n, crc32(a, m)) is
// the CRC of a followed by b.

#include <cstddef>
#include <cstdint>

namespace ffc {

uint32_t crc32(const void* data, size_t n, uint32_t previous = 0);

}  // namespace ffc
