#pragma once
// Small text helpers shared by the messages of several layers.

#include <cstdint>
#include <string>
#include <vector>

namespace ffc {

// "512 B", "3.4 KiB", "4.3 MiB", "1.2 GiB", ... with `decimals` digits after the point.
std::string human_bytes(double bytes, int decimals = 1);
// 6500 -> "6,500", -1234567 -> "-1,234,567".
std::string grouped(int64_t n);
// Sorted ranks as runs: {0, 1, 2, 5, 7, 8} -> "0-2,5,7-8".
std::string rank_ranges(const std::vector<int>& sorted_ranks);

}  // namespace ffc
