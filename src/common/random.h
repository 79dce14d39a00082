#pragma once
// Counter-based randomness: every random quantity in ffc is a pure function of (seed, stream
// identifiers), so results do not depend on thread scheduling, rank count or resume points.
//
//   mix(...)            64-bit hash of several integers (splitmix64 finaliser chain)
//   uniform01(h)        double in [0, 1) from a hash
//   KeyedPermutation    a bijection on [0, n) with O(1) memory and an inverse (Feistel network
//                       with cycle walking), used instead of O(n) permutation arrays

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "common/error.h"

namespace ffc {

// The splitmix64 finaliser: a bijective 64-bit mixer with good avalanche.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hash of a sequence of integers; order matters.
inline uint64_t mix(std::initializer_list<uint64_t> values) {
  uint64_t h = 0x243f6a8885a308d3ULL;
  for (uint64_t v : values) {
    h = splitmix64(h ^ splitmix64(v));
  }
  return h;
}

// Uniform double in [0, 1) from the top 53 bits of a hash.
inline double uniform01(uint64_t h) {
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// Standard normal from two hashes (Box-Muller).
inline double normal01(uint64_t h1, uint64_t h2) {
  const double u1 = 1.0 - uniform01(h1);  // (0, 1]
  const double u2 = uniform01(h2);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// A small sequential generator for code that draws several numbers in a row; seed it from mix().
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++ * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL); }
  double uniform() { return uniform01(next()); }
  // Integer in [0, n); n > 0.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>(uniform() * static_cast<double>(n)); }
  double normal() {
    const uint64_t a = next();
    return normal01(a, next());
  }

 private:
  uint64_t state_;
};

// A pseudo-random bijection on [0, n), keyed by `key`: forward(i) and inverse(j) cost a few hashes
// each (expected < 4 Feistel evaluations through cycle walking) and the object stores 4 words.
// Different keys give independent-looking permutations (e.g. key = mix({seed, epoch})).
class KeyedPermutation {
 public:
  KeyedPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
    FFC_CHECK(n > 0, "a permutation of an empty range");
    // Balanced Feistel on 2*half_bits bits, the smallest even width covering n.
    int bits = 2;
    while (bits < 64 && (uint64_t{1} << bits) < n) {
      bits += 2;
    }
    half_bits_ = bits / 2;
    half_mask_ = (uint64_t{1} << half_bits_) - 1;
  }

  uint64_t size() const { return n_; }

  uint64_t forward(uint64_t i) const {
    uint64_t x = i;
    do {
      x = encrypt(x);
    } while (x >= n_);
    return x;
  }

  uint64_t inverse(uint64_t j) const {
    uint64_t x = j;
    do {
      x = decrypt(x);
    } while (x >= n_);
    return x;
  }

 private:
  static constexpr int kRounds = 4;

  uint64_t round_fn(uint64_t half, int round) const {
    return mix({key_, static_cast<uint64_t>(round), half}) & half_mask_;
  }

  uint64_t encrypt(uint64_t x) const {
    uint64_t left = x >> half_bits_;
    uint64_t right = x & half_mask_;
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t next = left ^ round_fn(right, r);
      left = right;
      right = next;
    }
    return (left << half_bits_) | right;
  }

  uint64_t decrypt(uint64_t x) const {
    uint64_t left = x >> half_bits_;
    uint64_t right = x & half_mask_;
    for (int r = kRounds - 1; r >= 0; --r) {
      const uint64_t prev = right ^ round_fn(left, r);
      right = left;
      left = prev;
    }
    return (left << half_bits_) | right;
  }

  uint64_t n_;
  uint64_t key_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
};

}  // namespace ffc
