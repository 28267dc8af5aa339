// runtime/cpu/elementwise.h — loops for elementwise kernels with numpy broadcasting.
//
// The output is dense; each operand is read through element strides where a broadcast
// axis has stride 0. Axes of size 1 are dropped and adjacent axes merged where every
// operand allows it, so [N, C] + [C] runs as N rows of one contiguous loop and x * scalar
// as one loop. After merging, an operand's innermost stride is 0 or 1, and the inner loops
// are specialized for those cases so that the compiler vectorizes them. Rows are split
// over threads in fixed chunks. An operand may be the output itself (in place): each
// element is read before it is written.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "runtime/cpu/parallel.h"
#include "runtime/cpu/vec_kernels.h"
#include "trainrt/shape.hpp"

namespace trainrt::detail::cpu {

inline constexpr int kMaxDims = 16;
inline constexpr int kMaxOperands = 3;

struct BroadcastPlan {
  int operands = 0;
  int rank = 0;  // after merging; >= 1
  std::int64_t dims[kMaxDims] = {};
  std::int64_t stride[kMaxOperands][kMaxDims] = {};
  std::int64_t numel = 0;
  std::int64_t inner() const { return dims[rank - 1]; }
  std::int64_t rows() const { return inner() ? numel / inner() : 0; }
};

/// Plans reading `inputs` (each broadcastable to `out`) in `out`'s dense order. Throws
/// Unsupported beyond kMaxDims axes after merging.
BroadcastPlan make_broadcast_plan(const Shape& out, const std::vector<Shape>& inputs);

/// Walks rows [begin, end) of `plan`, calling row(offsets, out_offset, count) with each
/// operand's element offset for the row's first element, the output offset (row * inner)
/// and count = inner.
template <class Row>
void for_rows(const BroadcastPlan& plan, std::int64_t begin, std::int64_t end, const Row& row) {
  const int outer = plan.rank - 1;
  std::int64_t idx[kMaxDims] = {};
  std::int64_t off[kMaxOperands] = {};
  std::int64_t r = begin;
  for (int d = outer - 1; d >= 0; --d) {
    idx[d] = r % plan.dims[d];
    r /= plan.dims[d];
    for (int k = 0; k < plan.operands; ++k) off[k] += idx[d] * plan.stride[k][d];
  }
  const std::int64_t inner = plan.inner();
  for (std::int64_t row_index = begin; row_index < end; ++row_index) {
    row(off, row_index * inner, inner);
    for (int d = outer - 1; d >= 0; --d) {  // odometer step
      for (int k = 0; k < plan.operands; ++k) off[k] += plan.stride[k][d];
      if (++idx[d] < plan.dims[d]) break;
      for (int k = 0; k < plan.operands; ++k) off[k] -= idx[d] * plan.stride[k][d];
      idx[d] = 0;
    }
  }
}

/// Runs `plan` in parallel. Short rows are grouped; a row longer than 2 * kSerialElements
/// is cut into pieces of kSerialElements (x * scalar over a whole tensor is one row), so
/// every large op splits over threads, in pieces that depend only on the shape.
template <class Row>
void run_rows(const BroadcastPlan& plan, const Row& row) {
  const std::int64_t inner = plan.inner(), rows = plan.rows();
  if (inner < 2 * kSerialElements) {
    parallel_for(rows, grain_for(inner), [&](std::int64_t b, std::int64_t e) { for_rows(plan, b, e, row); });
    return;
  }
  const std::int64_t pieces = (inner + kSerialElements - 1) / kSerialElements;
  const int last = plan.rank - 1;
  parallel_for(rows * pieces, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t item = b; item < e; ++item) {
      const std::int64_t r = item / pieces, col = (item % pieces) * kSerialElements;
      std::int64_t off[kMaxOperands] = {};
      std::int64_t rest = r;
      for (int d = last - 1; d >= 0; --d) {
        const std::int64_t i = rest % plan.dims[d];
        rest /= plan.dims[d];
        for (int k = 0; k < plan.operands; ++k) off[k] += i * plan.stride[k][d];
      }
      for (int k = 0; k < plan.operands; ++k) off[k] += col * plan.stride[k][last];
      row(off, r * inner + col, std::min(kSerialElements, inner - col));
    }
  });
}

/// out[i] = Op(a[i*sa], b[i*sb]) for i < n, specialized for contiguous and broadcast operands.
template <class Op, class T, class R>
inline void binary_inner(const T* a, std::int64_t sa, const T* b, std::int64_t sb, R* out, std::int64_t n) {
  if constexpr (std::is_same_v<T, float> && std::is_same_v<R, float> && BinaryF32Array<Op>) {
    if (sa == 1 && sb == 1) return Op::f32_array(a, b, out, n);
  }
  if (sa == 1 && sb == 1) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T y = b[0];
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const T x = a[0];
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(x, b[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(a[i * sa], b[i * sb]);
  }
}

template <class Op, class T, class R>
void binary_loop(const BroadcastPlan& plan, const T* a, const T* b, R* out) {
  const std::int64_t sa = plan.stride[0][plan.rank - 1], sb = plan.stride[1][plan.rank - 1];
  run_rows(plan, [&](const std::int64_t* off, std::int64_t o, std::int64_t n) {
    binary_inner<Op>(a + off[0], sa, b + off[1], sb, out + o, n);
  });
}

/// out[i] = Op(x[i]) over n contiguous elements, in parallel chunks.
template <class Op, class T, class R>
void unary_loop(std::int64_t n, const T* x, R* out) {
  parallel_for(n, kSerialElements, [&](std::int64_t b, std::int64_t e) {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<R, float> && UnaryF32Array<Op>) {
      Op::f32_array(x + b, out + b, e - b);
    } else {
      for (std::int64_t i = b; i < e; ++i) out[i] = Op::f(x[i]);
    }
  });
}

}  // namespace trainrt::detail::cpu
