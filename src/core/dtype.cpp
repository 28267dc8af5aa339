#include "trainrt/dtype.hpp"

#include "core/half.h"

namespace trainrt {

std::size_t size_of(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16:
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::boolean: return 1;
  }
  return 0;
}

std::string_view name(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::boolean: return "bool";
  }
  return "?";
}

bool is_floating(DType d) noexcept { return d == DType::f32 || d == DType::f64 || d == DType::f16 || d == DType::bf16; }
bool is_integer(DType d) noexcept { return d == DType::i32 || d == DType::i64; }

float to_float(Half h) noexcept { return detail::half_to_float(h.bits); }
float to_float(BFloat16 b) noexcept { return detail::bf16_to_float(b.bits); }
Half to_half(float f) noexcept { return Half{detail::float_to_half(f)}; }
BFloat16 to_bfloat16(float f) noexcept { return BFloat16{detail::float_to_bf16(f)}; }

}  // namespace trainrt
