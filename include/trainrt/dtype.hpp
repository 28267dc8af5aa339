// trainrt/dtype.hpp — element types of tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace trainrt {

/// Element type of a tensor. f16/bf16 are storage types: CPU kernels compute in f32.
enum class DType : std::uint8_t { f32, f64, f16, bf16, i32, i64, boolean };

inline constexpr DType f32 = DType::f32;          ///< 32-bit IEEE float (`float`)
inline constexpr DType f64 = DType::f64;          ///< 64-bit IEEE float (`double`)
inline constexpr DType f16 = DType::f16;          ///< IEEE half precision, stored as Half
inline constexpr DType bf16 = DType::bf16;        ///< bfloat16, stored as BFloat16
inline constexpr DType i32 = DType::i32;          ///< 32-bit signed integer
inline constexpr DType i64 = DType::i64;          ///< 64-bit signed integer (class labels, indices)
inline constexpr DType boolean = DType::boolean;  ///< `bool`, one byte per element

/// Bytes per element (boolean takes one byte).
std::size_t size_of(DType dtype) noexcept;
/// Short name: "f32", "f64", "f16", "bf16", "i32", "i64", "bool".
std::string_view name(DType dtype) noexcept;
/// True for f32, f64, f16 and bf16.
bool is_floating(DType dtype) noexcept;
/// True for i32 and i64.
bool is_integer(DType dtype) noexcept;

/// IEEE half precision, stored as its bit pattern (host-side storage type).
struct Half {
  std::uint16_t bits = 0;  ///< sign, 5 exponent bits, 10 mantissa bits
};
/// bfloat16, stored as its bit pattern (host-side storage type).
struct BFloat16 {
  std::uint16_t bits = 0;  ///< the upper 16 bits of the f32 of the same value
};
/// The float value of a half (exact).
float to_float(Half h) noexcept;
/// The float value of a bfloat16 (exact).
float to_float(BFloat16 b) noexcept;
/// The half nearest to `f`, ties to even; out of range gives infinity, NaN stays NaN.
Half to_half(float f) noexcept;
/// The bfloat16 nearest to `f`, ties to even; NaN stays NaN.
BFloat16 to_bfloat16(float f) noexcept;

/// Maps a C++ element type to its DType (float, double, Half, BFloat16, int32_t, int64_t,
/// bool); other types do not compile.
template <class T>
constexpr DType dtype_of() noexcept;
/// float is DType::f32.
template <>
constexpr DType dtype_of<float>() noexcept {
  return DType::f32;
}
/// double is DType::f64.
template <>
constexpr DType dtype_of<double>() noexcept {
  return DType::f64;
}
/// Half is DType::f16.
template <>
constexpr DType dtype_of<Half>() noexcept {
  return DType::f16;
}
/// BFloat16 is DType::bf16.
template <>
constexpr DType dtype_of<BFloat16>() noexcept {
  return DType::bf16;
}
/// std::int32_t is DType::i32.
template <>
constexpr DType dtype_of<std::int32_t>() noexcept {
  return DType::i32;
}
/// std::int64_t is DType::i64.
template <>
constexpr DType dtype_of<std::int64_t>() noexcept {
  return DType::i64;
}
/// bool is DType::boolean.
template <>
constexpr DType dtype_of<bool>() noexcept {
  return DType::boolean;
}

}  // namespace trainrt
