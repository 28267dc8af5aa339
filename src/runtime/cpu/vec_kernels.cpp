// runtime/cpu/vec_kernels.cpp — see vec_kernels.h. Each function is cloned by GCC's
// target_clones: an ifunc resolver picks the AVX-512, AVX2 or baseline body once, when the
// library is loaded. The bodies inline vec_math.h's templates on 64-byte vectors (one zmm
// register, two ymm, or four xmm).
#include "runtime/cpu/vec_kernels.h"

// 64-byte vectors passed by value would change the calling convention between targets; here
// every function taking one is always inlined, never called, so GCC's -Wpsabi note is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "runtime/cpu/vec_math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TRAINRT_VEC_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define TRAINRT_VEC_CLONES
#endif

namespace trainrt::detail::cpu {

namespace {

typedef float Vec16 __attribute__((vector_size(64)));  // NOLINT(modernize-use-using): GNU vector type
constexpr std::int64_t kLanes = 16;

[[gnu::always_inline]] inline Vec16 load16(const float* p) {
  Vec16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store16(float* p, Vec16 v) { __builtin_memcpy(p, &v, sizeof v); }

template <class F>
[[gnu::always_inline]] inline F gelu(F x) {
  F cdf, pdf;
  normal_cdf_pdf_f32(x, cdf, pdf);
  return x * cdf;
}

template <class F>
[[gnu::always_inline]] inline F gelu_backward(F g, F x) {
  F cdf, pdf;
  normal_cdf_pdf_f32(x, cdf, pdf);
  return g * (cdf + x * pdf);
}

template <class F>
[[gnu::always_inline]] inline F sigmoid(F x) {
  return 1.0f / (1.0f + exp_f32(-x));
}

}  // namespace

TRAINRT_VEC_CLONES void exp_f32_array(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(y + i, exp_f32(load16(x + i)));
  for (; i < n; ++i) y[i] = exp_f32(x[i]);
}

TRAINRT_VEC_CLONES void sigmoid_f32_array(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(y + i, sigmoid(load16(x + i)));
  for (; i < n; ++i) y[i] = sigmoid(x[i]);
}

TRAINRT_VEC_CLONES void gelu_f32_array(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(y + i, gelu(load16(x + i)));
  for (; i < n; ++i) y[i] = gelu(x[i]);
}

TRAINRT_VEC_CLONES void gelu_backward_f32_array(const float* g, const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(y + i, gelu_backward(load16(g + i), load16(x + i)));
  for (; i < n; ++i) y[i] = gelu_backward(g[i], x[i]);
}

TRAINRT_VEC_CLONES double sum_exp_f32(const float* x, float m, std::int64_t n) {
  constexpr std::int64_t kBlock = 1024;
  const Vec16 mv = m - Vec16{};
  double total = 0;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = n < b + kBlock ? n : b + kBlock;
    Vec16 acc = {};
    std::int64_t i = b;
    for (; i + kLanes <= e; i += kLanes) acc += exp_f32(load16(x + i) - mv);
    float lanes[kLanes];
    __builtin_memcpy(lanes, &acc, sizeof lanes);
    for (; i < e; ++i) lanes[i & (kLanes - 1)] += exp_f32(x[i] - m);
    for (std::int64_t w = kLanes / 2; w > 0; w /= 2)
      for (std::int64_t j = 0; j < w; ++j) lanes[j] += lanes[j + w];
    total += static_cast<double>(lanes[0]);
  }
  return total;
}

TRAINRT_VEC_CLONES void softmax_minus_f32(const float* x, float l, float scale, float uniform, float* d,
                                          std::int64_t n) {
  const Vec16 lv = l - Vec16{};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store16(d + i, scale * (exp_f32(load16(x + i) - lv) - uniform));
  for (; i < n; ++i) d[i] = scale * (exp_f32(x[i] - l) - uniform);
}

TRAINRT_VEC_CLONES void exp_diff_f32(float* s, const float* sub, std::int64_t sub_stride, std::int64_t n) {
  std::int64_t i = 0;
  if (sub_stride == 0) {
    const Vec16 b = sub[0] - Vec16{};
    for (; i + kLanes <= n; i += kLanes) store16(s + i, exp_f32(load16(s + i) - b));
  } else {
    for (; i + kLanes <= n; i += kLanes) store16(s + i, exp_f32(load16(s + i) - load16(sub + i)));
  }
  for (; i < n; ++i) s[i] = exp_f32(s[i] - sub[i * sub_stride]);
}

}  // namespace trainrt::detail::cpu
