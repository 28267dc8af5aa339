// trainrt/dtype.hpp — element types of tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace trainrt {

/// Element type of a tensor. f16/bf16 are storage types: CPU kernels compute in f32.
enum class DType : std::uint8_t { f32, f64, f16, bf16, i32, i64, boolean };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType f16 = DType::f16;
inline constexpr DType bf16 = DType::bf16;
inline constexpr DType i32 = DType::i32;
inline constexpr DType i64 = DType::i64;
inline constexpr DType boolean = DType::boolean;

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
  std::uint16_t bits = 0;
};
/// bfloat16, stored as its bit pattern (host-side storage type).
struct BFloat16 {
  std::uint16_t bits = 0;
};
/// Conversions used by host code; rounding is to nearest even.
float to_float(Half h) noexcept;
float to_float(BFloat16 b) noexcept;
Half to_half(float f) noexcept;
BFloat16 to_bfloat16(float f) noexcept;

/// Maps a C++ element type to its DType (float, double, Half, BFloat16, int32_t, int64_t,
/// bool); other types do not compile.
template <class T>
constexpr DType dtype_of() noexcept;
template <> constexpr DType dtype_of<float>() noexcept { return DType::f32; }
template <> constexpr DType dtype_of<double>() noexcept { return DType::f64; }
template <> constexpr DType dtype_of<Half>() noexcept { return DType::f16; }
template <> constexpr DType dtype_of<BFloat16>() noexcept { return DType::bf16; }
template <> constexpr DType dtype_of<std::int32_t>() noexcept { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() noexcept { return DType::i64; }
template <> constexpr DType dtype_of<bool>() noexcept { return DType::boolean; }

}  // namespace trainrt
