// core/philox.h — Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC'11).
//
// A draw is a pure function of (key, counter), so any element can be generated on its own,
// in any order, on any backend, with the same result. libtrainrt keys streams as follows:
//   parameter init: key = hash64(seed, name),  counter = (element index, 0)
//   dropout:        key = hash64(seed, node key), counter = (element index, step)
// Four 32-bit outputs come from each counter; a stream uses output 0 of counter
// (i, stream_word) unless stated, so element i never depends on any other element.
#pragma once

#include <cmath>
#include <cstdint>

namespace trainrt::detail {

struct Philox4x32 {
  std::uint32_t v[4];
};

inline Philox4x32 philox4x32_10(std::uint64_t key, std::uint64_t counter_lo, std::uint64_t counter_hi) noexcept {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  auto c0 = std::uint32_t(counter_lo), c1 = std::uint32_t(counter_lo >> 32);
  auto c2 = std::uint32_t(counter_hi), c3 = std::uint32_t(counter_hi >> 32);
  auto k0 = std::uint32_t(key), k1 = std::uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(kM0) * c0;
    const std::uint64_t p1 = std::uint64_t(kM1) * c2;
    const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
    c1 = std::uint32_t(p1);
    c3 = std::uint32_t(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

/// A uniform float in [0, 1) from 32 random bits (24 significant bits).
inline float uniform01(std::uint32_t bits) noexcept { return float(bits >> 8) * (1.0f / 16777216.0f); }
/// A uniform double in [0, 1) from 64 random bits (53 significant bits).
inline double uniform01_double(std::uint32_t hi, std::uint32_t lo) noexcept {
  const std::uint64_t u = (std::uint64_t(hi) << 32 | lo) >> 11;
  return double(u) * (1.0 / 9007199254740992.0);
}

/// A standard normal draw (Box-Muller over the four words of one counter).
inline double normal01(const Philox4x32& r) noexcept {
  const double u1 = 1.0 - uniform01_double(r.v[0], r.v[1]);  // (0, 1]
  const double u2 = uniform01_double(r.v[2], r.v[3]);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace trainrt::detail
