// runtime/cpu/vec_kernels.h — f32 loops over arrays for the transcendental elementwise ops,
// compiled for AVX-512, AVX2 and the x86-64 baseline, the best picked when the library loads.
//
// The rest of the library is built for the x86-64 baseline (SSE2), where the vector math of
// vec_math.h runs on 4 lanes; these loops run it on 16. Every target does the same
// operations on 16 logical lanes in the same order (no contraction into FMA: the build uses
// -std=c++20, whose default is -ffp-contract=off), so results are the same bits on any x86-64
// machine, and the same as the scalar tails.
#pragma once

#include <cstdint>

namespace trainrt::detail::cpu {

/// y[i] = e^x[i].
void exp_f32_array(const float* x, float* y, std::int64_t n);
/// y[i] = 1 / (1 + e^-x[i]).
void sigmoid_f32_array(const float* x, float* y, std::int64_t n);
/// y[i] = x[i] Phi(x[i]) (exact GELU).
void gelu_f32_array(const float* x, float* y, std::int64_t n);
/// y[i] = g[i] (Phi(x[i]) + x[i] phi(x[i])) (exact GELU's backward).
void gelu_backward_f32_array(const float* g, const float* x, float* y, std::int64_t n);
/// sum over i < n of e^(x[i] - m): 16 lanes per block of 1024 elements, lanes combined
/// pairwise, block totals added in f64.
double sum_exp_f32(const float* x, float m, std::int64_t n);
/// d[i] = scale (e^(x[i] - l) - uniform).
void softmax_minus_f32(const float* x, float l, float scale, float uniform, float* d, std::int64_t n);
/// s[i] = e^(s[i] - sub[i * sub_stride]) (sub_stride 0 or 1).
void exp_diff_f32(float* s, const float* sub, std::int64_t sub_stride, std::int64_t n);

// Ops of elementwise_ops.h that have an f32 array loop here.
template <class Op>
concept UnaryF32Array = requires(const float* x, float* y, std::int64_t n) {
  Op::f32_array(x, y, n);
};
template <class Op>
concept BinaryF32Array = requires(const float* a, float* y, std::int64_t n) {
  Op::f32_array(a, a, y, n);
};

}  // namespace trainrt::detail::cpu
