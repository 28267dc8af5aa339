// runtime/cpu/elementwise_ops.h — the scalar math of each elementwise op, and the factories
// of the three arities. Formulas follow PyTorch where it defines them (NaN propagation of
// maximum/minimum, the tanh form of GELU).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>

#include "runtime/cpu/kernel.h"
#include "runtime/cpu/types.h"
#include "runtime/cpu/vec_kernels.h"

namespace trainrt::detail::cpu {

std::unique_ptr<Kernel> make_unary_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_binary_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_ternary_kernel(const KernelEnv& env);

namespace ew {

// sqrt(2/pi), the tanh-GELU cubic coefficient, 1/sqrt(2), 1/sqrt(2*pi).
inline constexpr double kSqrt2OverPi = 0.7978845608028654;
inline constexpr double kGeluCubic = 0.044715;
inline constexpr double kInvSqrt2 = 0.7071067811865476;
inline constexpr double kInvSqrt2Pi = 0.3989422804014327;

struct Neg {
  template <class T>
  static T f(T x) {
    return -x;
  }
};
struct Abs {
  template <class T>
  static T f(T x) {
    return x < T(0) ? -x : x;
  }
};
struct Sign {
  template <class T>
  static T f(T x) {
    return T((x > T(0)) - (x < T(0)));
  }
};
struct Relu {
  template <class T>
  static T f(T x) {
    return x > T(0) ? x : T(0);
  }
};
// Ops with an f32_array() run their contiguous f32 loops there (vec_kernels.h).
struct Exp {
  template <class T>
  static T f(T x) {
    return std::exp(x);
  }
  static void f32_array(const float* x, float* y, std::int64_t n) { exp_f32_array(x, y, n); }
};
struct Log {
  template <class T>
  static T f(T x) {
    return std::log(x);
  }
};
struct Sqrt {
  template <class T>
  static T f(T x) {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <class T>
  static T f(T x) {
    return T(1) / std::sqrt(x);
  }
};
struct Sin {
  template <class T>
  static T f(T x) {
    return std::sin(x);
  }
};
struct Cos {
  template <class T>
  static T f(T x) {
    return std::cos(x);
  }
};
struct Floor {
  template <class T>
  static T f(T x) {
    return std::floor(x);
  }
};
struct Tanh {
  template <class T>
  static T f(T x) {
    return std::tanh(x);
  }
};
struct Sigmoid {
  template <class T>
  static T f(T x) {
    return T(1) / (T(1) + std::exp(-x));
  }
  static void f32_array(const float* x, float* y, std::int64_t n) { sigmoid_f32_array(x, y, n); }
};
struct Gelu {
  template <class T>
  static T f(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
  }
  static void f32_array(const float* x, float* y, std::int64_t n) { gelu_f32_array(x, y, n); }
};
struct GeluTanh {
  template <class T>
  static T f(T x) {
    return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x)));
  }
};
struct LogicalNot {
  template <class T>
  static T f(T x) {
    return T(!x);
  }
};

struct Add {
  template <class T>
  static T f(T a, T b) {
    return a + b;
  }
};
struct Sub {
  template <class T>
  static T f(T a, T b) {
    return a - b;
  }
};
struct Mul {
  template <class T>
  static T f(T a, T b) {
    return a * b;
  }
};
struct Div {
  template <class T>
  static T f(T a, T b) {
    return a / b;
  }
};
struct Pow {
  template <class T>
  static T f(T a, T b) {
    return std::pow(a, b);
  }
};
// NaN wins, as in torch.maximum/minimum (a != a only for NaN).
// NOLINTBEGIN(misc-redundant-expression): x != x is the NaN test
struct Maximum {
  template <class T>
  static T f(T a, T b) {
    return (a > b || a != a) ? a : b;
  }
};
struct Minimum {
  template <class T>
  static T f(T a, T b) {
    return (a < b || a != a) ? a : b;
  }
};
// NOLINTEND(misc-redundant-expression)
struct Eq {
  template <class T>
  static Bool f(T a, T b) {
    return a == b;
  }
};
struct Ne {
  template <class T>
  static Bool f(T a, T b) {
    return a != b;
  }
};
struct Lt {
  template <class T>
  static Bool f(T a, T b) {
    return a < b;
  }
};
struct Le {
  template <class T>
  static Bool f(T a, T b) {
    return a <= b;
  }
};
struct Gt {
  template <class T>
  static Bool f(T a, T b) {
    return a > b;
  }
};
struct Ge {
  template <class T>
  static Bool f(T a, T b) {
    return a >= b;
  }
};
struct LogicalAnd {
  template <class T>
  static Bool f(T a, T b) {
    return a && b;
  }
};
struct LogicalOr {
  template <class T>
  static Bool f(T a, T b) {
    return a || b;
  }
};

// Backward of activations: (incoming gradient g, saved value).
struct ReluBackward {
  template <class T>
  static T f(T g, T y) {
    return y > T(0) ? g : T(0);
  }
};
struct SigmoidBackward {
  template <class T>
  static T f(T g, T y) {
    return g * y * (T(1) - y);
  }
};
struct TanhBackward {
  template <class T>
  static T f(T g, T y) {
    return g * (T(1) - y * y);
  }
};
// d/dx x*Phi(x) = Phi(x) + x*phi(x).
struct GeluBackward {
  template <class T>
  static T f(T g, T x) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    return g * (cdf + x * pdf);
  }
  static void f32_array(const float* g, const float* x, float* y, std::int64_t n) {
    gelu_backward_f32_array(g, x, y, n);
  }
};
// u = k0 (x + k1 x^3), t = tanh(u): d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k0 (1 + 3 k1 x^2).
struct GeluTanhBackward {
  template <class T>
  static T f(T g, T x) {
    const T t = std::tanh(T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x));
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
  }
};

}  // namespace ew
}  // namespace trainrt::detail::cpu
