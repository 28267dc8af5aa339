// core/half.h — f16 and bf16 <-> f32 conversions for kernels (inline, branch-light).
//
// bf16 is the top half of an f32; rounding to nearest even adds 0x7FFF plus the lowest kept
// bit before truncating, and NaN is kept quiet. f16 conversion follows the classic
// bit-manipulation scheme (denormals, infinities and NaN handled), rounding to nearest even.
#pragma once

#include <bit>
#include <cstdint>

namespace trainrt::detail {

inline float bf16_to_float(std::uint16_t h) noexcept { return std::bit_cast<float>(std::uint32_t(h) << 16); }

inline std::uint16_t float_to_bf16(float f) noexcept {
  auto u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return std::bit_cast<float>(sign);
    // Denormal: renormalize.
    exp = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    mant &= 0x3FFu;
    return std::bit_cast<float>(sign | (exp << 23) | (mant << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

inline std::uint16_t float_to_half(float f) noexcept {
  const auto u = std::bit_cast<std::uint32_t>(f);
  const auto sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return std::uint16_t(sign | 0x7E00u);   // NaN
  if (abs >= 0x477FF000u) return std::uint16_t(sign | 0x7C00u);  // overflow (rounds to inf)
  if (abs < 0x38800000u) {                                       // result is denormal or zero
    if (abs < 0x33000000u) return sign;                          // below half the smallest denormal
    const std::uint32_t exp = abs >> 23;
    const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - exp;  // 14..24 (113 - exp + 13)
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return std::uint16_t(sign | h);
  }
  std::uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
  const std::uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return std::uint16_t(sign | h);
}

}  // namespace trainrt::detail
