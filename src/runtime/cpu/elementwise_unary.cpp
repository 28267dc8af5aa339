// runtime/cpu/elementwise_unary.cpp — one-operand elementwise kernels, and cast.
#include <cmath>
#include <limits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/half.h"
#include "runtime/cpu/elementwise.h"
#include "runtime/cpu/elementwise_ops.h"

namespace trainrt::detail::cpu {

namespace {

template <class Op, class T>
class UnaryKernel final : public Kernel {
 public:
  explicit UnaryKernel(std::int64_t n) : n_(n) {}
  void run(const KernelArgs& a) override {
    unary_loop<Op, T, T>(n_, static_cast<const T*>(a.in[0]), static_cast<T*>(a.out[0]));
  }

 private:
  std::int64_t n_;
};

template <class Op>
std::unique_ptr<Kernel> floating_kernel(const KernelEnv& env) {
  const std::int64_t n = env.out(0).shape.numel();
  return dispatch_floating(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return std::make_unique<UnaryKernel<Op, decltype(t)>>(n);
  });
}

template <class Op>
std::unique_ptr<Kernel> numeric_kernel(const KernelEnv& env) {
  const std::int64_t n = env.out(0).shape.numel();
  return dispatch_numeric(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return std::make_unique<UnaryKernel<Op, decltype(t)>>(n);
  });
}

// ---- cast ----------------------------------------------------------------------------------
// Storage tags for the two 16-bit float formats (both stored as uint16_t).
struct F16 {};
struct BF16 {};

template <class T>
struct Storage {
  using type = T;
};
template <>
struct Storage<F16> {
  using type = std::uint16_t;
};
template <>
struct Storage<BF16> {
  using type = std::uint16_t;
};

template <class T>
inline double load(typename Storage<T>::type v) {
  return static_cast<double>(v);
}
template <>
inline double load<F16>(std::uint16_t v) {
  return half_to_float(v);
}
template <>
inline double load<BF16>(std::uint16_t v) {
  return bf16_to_float(v);
}

/// Float to integer truncates toward zero; NaN becomes 0 and out-of-range values saturate
/// (C++ leaves those undefined; PyTorch's result is platform-dependent).
template <class I>
inline I to_integer(double v) {
  if (!(v == v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v >= static_cast<double>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

template <class T>
inline typename Storage<T>::type store(double v) {
  return static_cast<T>(v);
}
template <>
inline std::uint16_t store<F16>(double v) {
  return float_to_half(static_cast<float>(v));
}
template <>
inline std::uint16_t store<BF16>(double v) {
  return float_to_bf16(static_cast<float>(v));
}
template <>
inline std::int32_t store<std::int32_t>(double v) {
  return to_integer<std::int32_t>(v);
}
template <>
inline std::int64_t store<std::int64_t>(double v) {
  return to_integer<std::int64_t>(v);
}
template <>
inline Bool store<Bool>(double v) {
  return v != 0.0;
}

// f32 <-> f16 with the F16C instructions where the CPU has them (every x86-64 since 2012):
// eight lanes at a time, rounding to nearest even as float_to_half does. The library is
// built for baseline x86-64, so these carry their own target and are chosen at run time.
#if defined(__x86_64__)
bool has_f16c() {
  // Every CPU with AVX2 has F16C, and "avx2" is a feature name both GCC and Clang know here.
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}
__attribute__((target("avx,f16c"))) std::int64_t f32_to_f16_f16c(const float* x, std::uint16_t* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return i;
}
__attribute__((target("avx,f16c"))) std::int64_t f16_to_f32_f16c(const std::uint16_t* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  return i;
}
#else
bool has_f16c() { return false; }
std::int64_t f32_to_f16_f16c(const float*, std::uint16_t*, std::int64_t) { return 0; }
std::int64_t f16_to_f32_f16c(const std::uint16_t*, float*, std::int64_t) { return 0; }
#endif

template <class From, class To>
class CastKernel final : public Kernel {
 public:
  explicit CastKernel(std::int64_t n) : n_(n) {}
  void run(const KernelArgs& a) override {
    const auto* x = static_cast<const typename Storage<From>::type*>(a.in[0]);
    auto* y = static_cast<typename Storage<To>::type*>(a.out[0]);
    parallel_for(n_, kSerialElements, [&](std::int64_t b, std::int64_t e) {
      if constexpr (std::is_same_v<From, float> && std::is_same_v<To, F16>) {
        if (has_f16c()) b += f32_to_f16_f16c(x + b, y + b, e - b);
      } else if constexpr (std::is_same_v<From, F16> && std::is_same_v<To, float>) {
        if (has_f16c()) b += f16_to_f32_f16c(x + b, y + b, e - b);
      }
      for (std::int64_t i = b; i < e; ++i) y[i] = convert(x[i]);
    });
  }

 private:
  static typename Storage<To>::type convert(typename Storage<From>::type v) {
    if constexpr (std::is_same_v<From, std::int64_t> && std::is_same_v<To, std::int32_t>) {
      return static_cast<std::int32_t>(v);  // wraps, as integer narrowing does
    } else if constexpr ((std::is_same_v<From, std::int64_t> ||
                          std::is_same_v<From, std::int32_t>)&&std::is_same_v<To, std::int64_t>) {
      return static_cast<std::int64_t>(v);  // exact (no detour through double)
    } else if constexpr (std::is_same_v<From, float> && std::is_same_v<To, BF16>) {
      return float_to_bf16(v);
    } else if constexpr (std::is_same_v<From, float> && std::is_same_v<To, F16>) {
      return float_to_half(v);
    } else if constexpr (std::is_same_v<To, float> && std::is_same_v<From, BF16>) {
      return bf16_to_float(v);
    } else if constexpr (std::is_same_v<To, float> && std::is_same_v<From, F16>) {
      return half_to_float(v);
    } else {
      return store<To>(load<From>(v));
    }
  }
  std::int64_t n_;
};

template <class Fn>
std::unique_ptr<Kernel> dispatch_cast_type(DType d, Fn&& fn) {
  switch (d) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::f16: return fn(F16{});
    case DType::bf16: return fn(BF16{});
    case DType::i32: return fn(std::int32_t{});
    case DType::i64: return fn(std::int64_t{});
    case DType::boolean: return fn(Bool{});
  }
  return nullptr;
}

std::unique_ptr<Kernel> cast_kernel(const KernelEnv& env) {
  const std::int64_t n = env.out(0).shape.numel();
  return dispatch_cast_type(env.in(0).dtype, [&](auto from) {
    return dispatch_cast_type(env.out(0).dtype, [&](auto to) -> std::unique_ptr<Kernel> {
      return std::make_unique<CastKernel<decltype(from), decltype(to)>>(n);
    });
  });
}

}  // namespace

std::unique_ptr<Kernel> make_unary_kernel(const KernelEnv& env) {
  switch (env.n().kind) {
    case OpKind::Neg: return numeric_kernel<ew::Neg>(env);
    case OpKind::Abs: return numeric_kernel<ew::Abs>(env);
    case OpKind::Sign: return numeric_kernel<ew::Sign>(env);
    case OpKind::Relu: return numeric_kernel<ew::Relu>(env);
    case OpKind::Exp: return floating_kernel<ew::Exp>(env);
    case OpKind::Log: return floating_kernel<ew::Log>(env);
    case OpKind::Sqrt: return floating_kernel<ew::Sqrt>(env);
    case OpKind::Rsqrt: return floating_kernel<ew::Rsqrt>(env);
    case OpKind::Sin: return floating_kernel<ew::Sin>(env);
    case OpKind::Cos: return floating_kernel<ew::Cos>(env);
    case OpKind::Floor: return floating_kernel<ew::Floor>(env);
    case OpKind::Tanh: return floating_kernel<ew::Tanh>(env);
    case OpKind::Sigmoid: return floating_kernel<ew::Sigmoid>(env);
    case OpKind::Gelu:
      return std::get<GeluAttrs>(env.n().attrs).tanh_approximation ? floating_kernel<ew::GeluTanh>(env)
                                                                   : floating_kernel<ew::Gelu>(env);
    case OpKind::LogicalNot: return std::make_unique<UnaryKernel<ew::LogicalNot, Bool>>(env.out(0).shape.numel());
    case OpKind::Cast: return cast_kernel(env);
    default: break;
  }
  unsupported_dtype(env, env.in(0).dtype);
}

}  // namespace trainrt::detail::cpu
