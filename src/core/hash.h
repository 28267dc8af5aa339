// core/hash.h — small non-cryptographic hashing for keys derived from names (random
// streams, fingerprints). The kernel cache's content hash (a strong hash) is separate.
#pragma once

#include <cstdint>
#include <string_view>

namespace trainrt::detail {

/// FNV-1a, 64 bit.
constexpr std::uint64_t fnv1a64(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) noexcept {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

/// Mixes two 64-bit values (splitmix64 finalizer over a combination).
constexpr std::uint64_t hash_combine(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace trainrt::detail
