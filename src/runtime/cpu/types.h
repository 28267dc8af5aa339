// runtime/cpu/types.h — C++ element types of the CPU kernels and dtype dispatch.
//
// Kernels compute f32 and f64 natively (f16/bf16 are legalized to f32 before they get
// here, see passes/legalize_dtypes.h); integers as int32/int64; bool as one byte holding
// 0 or 1.
#pragma once

#include <cstdint>
#include <utility>

#include "core/error.h"
#include "trainrt/dtype.hpp"

namespace trainrt::detail::cpu {

using Bool = std::uint8_t;

/// Calls fn(T{}) with T the element type of a floating `dtype` (f32, f64).
template <class Fn>
decltype(auto) dispatch_floating(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    default: break;
  }
  fail(ErrorKind::Internal, cat("a CPU kernel was asked for ", name(dtype), " (expected f32 or f64)"));
}

/// Calls fn(T{}) for f32, f64, i32, i64.
template <class Fn>
decltype(auto) dispatch_numeric(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::i32: return fn(std::int32_t{});
    case DType::i64: return fn(std::int64_t{});
    default: break;
  }
  fail(ErrorKind::Internal, cat("a CPU kernel was asked for ", name(dtype), " (expected a numeric dtype)"));
}

/// Calls fn(T{}) for every dtype a CPU kernel handles (bool as Bool).
template <class Fn>
decltype(auto) dispatch_all(DType dtype, Fn&& fn) {
  if (dtype == DType::boolean) return fn(Bool{});
  return dispatch_numeric(dtype, std::forward<Fn>(fn));
}

/// Calls fn(T{}) for i32 and i64 (label and index operands).
template <class Fn>
decltype(auto) dispatch_index(DType dtype, Fn&& fn) {
  if (dtype == DType::i32) return fn(std::int32_t{});
  if (dtype == DType::i64) return fn(std::int64_t{});
  fail(ErrorKind::Internal, cat("a CPU kernel was asked for ", name(dtype), " indices"));
}

}  // namespace trainrt::detail::cpu
