// runtime/cpu/pool.cpp — 2-D max and average pooling (NCHW) and their backward ops.
//
// Windows follow PyTorch. Output (i, j) covers input rows [i * stride - padding, + kernel)
// and likewise columns; padding acts as -infinity for max and as zeros for average. For
// average pooling the window is first clipped to the padded input (ceil_mode can make the
// last window run past it), and the divisor is the size of that clipped window when
// count_include_pad is true, else the number of real input elements in it.
//   max backward: g of each output goes to the FIRST element (row-major window order) that
//                 equals the output (NaN matches NaN), as the forward picks the first maximum;
//   avg backward: g / divisor goes to every real element of the window.
//
// Our own loops rather than oneDNN: pooling is memory-bound, and oneDNN's max-pool backward
// needs the opaque workspace of its forward, which the IR does not carry between nodes.
// A task owns whole (n, c) planes and visits a plane in a fixed order, so the
// overlapping-window sums of the backward ops, and every result, do not depend on threads.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

/// One output row's window: real input rows [lo, hi), and the extent of the window
/// clipped to the padded input (the count_include_pad divisor factor).
struct Window {
  std::int64_t lo = 0, hi = 0, padded = 0;
};

std::vector<Window> windows(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t s, std::int64_t p) {
  std::vector<Window> w(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) {
    const std::int64_t start = i * s - p;
    const std::int64_t end = std::min(start + k, in + p);
    w[static_cast<std::size_t>(i)] = {std::max<std::int64_t>(start, 0), std::min(end, in), end - start};
  }
  return w;
}

/// The output columns [lo, hi) whose window tap k lands inside the input row:
/// 0 <= j * s - p + k < in.
struct TapRange {
  std::int64_t lo = 0, hi = 0;
};

TapRange tap_range(std::int64_t in, std::int64_t out, std::int64_t s, std::int64_t p, std::int64_t k) {
  const std::int64_t off = k - p;
  const std::int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
  const std::int64_t hi = in - off <= 0 ? 0 : (in - off + s - 1) / s;
  return {std::min(lo, out), std::min(hi, out)};
}

/// Output columns handled at once by avg_pool2d; its per-column sums live on the stack.
constexpr std::int64_t kChunk = 256;

// Loop order of max forward and both average ops. A plane is done output row by output
// row. For output row i, each window row ih (in order) and each tap kw (in order) update
// the output columns j at once, from x[ih][j * stride - padding + kw]: the inner loop runs
// along the row (vectorizable when the stride is 1) and needs no bounds test. For any one
// output this visits its window in row-major order, so maxima and sums are exactly those
// of a window-by-window loop. Against one (single thread, CPU time, batch-128 CNN shapes
// with 2x2 and 3x3 windows) this measured 3-4x faster for max forward, 1.4x for average
// backward and the same for average forward.
template <class T>
class PoolKernel final : public Kernel {
 public:
  PoolKernel(OpKind kind, const Shape& x, const Shape& y, const Pool2dAttrs& a)
      : kind_(kind),
        planes_(x[0] * x[1]),
        h_(x[2]),
        w_(x[3]),
        oh_(y[2]),
        ow_(y[3]),
        stride_(a.stride[1]),
        pad_(a.padding[1]),
        count_include_pad_(a.count_include_pad),
        rows_(windows(h_, oh_, a.kernel[0], a.stride[0], a.padding[0])),
        cols_(windows(w_, ow_, a.kernel[1], a.stride[1], a.padding[1])),
        window_rows_(a.kernel[0]) {
    for (std::int64_t k = 0; k < a.kernel[1]; ++k) taps_.push_back(tap_range(w_, ow_, stride_, pad_, k));
  }

  void run(const KernelArgs& a) override {
    const std::int64_t in_plane = h_ * w_, out_plane = oh_ * ow_;
    const std::int64_t window = window_rows_ * static_cast<std::int64_t>(taps_.size());
    const std::int64_t grain = grain_for(in_plane + out_plane * window);
    parallel_for(planes_, grain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = lo; p < hi; ++p) {
        switch (kind_) {
          case OpKind::MaxPool2d:
            max_forward(static_cast<const T*>(a.in[0]) + p * in_plane, static_cast<T*>(a.out[0]) + p * out_plane);
            break;
          case OpKind::AvgPool2d:
            avg_forward(static_cast<const T*>(a.in[0]) + p * in_plane, static_cast<T*>(a.out[0]) + p * out_plane);
            break;
          case OpKind::MaxPool2dBackward:
            max_backward(static_cast<const T*>(a.in[0]) + p * out_plane, static_cast<const T*>(a.in[1]) + p * in_plane,
                         static_cast<const T*>(a.in[2]) + p * out_plane, static_cast<T*>(a.out[0]) + p * in_plane);
            break;
          default:
            avg_backward(static_cast<const T*>(a.in[0]) + p * out_plane, static_cast<T*>(a.out[0]) + p * in_plane);
            break;
        }
      }
    });
  }

 private:
  static bool is_nan(T v) { return v != v; }  // NOLINT(misc-redundant-expression): x != x is the NaN test

  /// Calls fn(lo, hi, base) for every window row ih of output row i and tap kw (in that
  /// order) that reaches some of the output columns [j0, j1): columns [lo, hi) read the
  /// plane element base + j * stride, that is x[ih][j * stride - padding + kw]. base may be
  /// negative (left padding); base + j * stride is not.
  template <class Fn>
  void for_taps(std::int64_t i, std::int64_t j0, std::int64_t j1, const Fn& fn) const {
    const Window& r = rows_[static_cast<std::size_t>(i)];
    for (std::int64_t ih = r.lo; ih < r.hi; ++ih)
      for (std::size_t kw = 0; kw < taps_.size(); ++kw) {
        const std::int64_t lo = std::max(taps_[kw].lo, j0), hi = std::min(taps_[kw].hi, j1);
        if (lo < hi) fn(lo, hi, ih * w_ + static_cast<std::int64_t>(kw) - pad_);
      }
  }

  void max_forward(const T* x, T* y) const {
    for (std::int64_t i = 0; i < oh_; ++i) {
      T* yr = y + i * ow_;
      // An empty window cannot occur (padding <= kernel / 2); it would give -inf.
      std::fill(yr, yr + ow_, -std::numeric_limits<T>::infinity());
      for_taps(i, 0, ow_, [&](std::int64_t lo, std::int64_t hi, std::int64_t base) {
        // Only a strictly greater value replaces the maximum, so the first maximum stays; a
        // NaN wins over numbers (the first NaN stays): a window holding NaN gives NaN, as
        // in PyTorch.
        for (std::int64_t j = lo; j < hi; ++j) {
          const T v = x[base + j * stride_];
          yr[j] = (v > yr[j] || (is_nan(v) && !is_nan(yr[j]))) ? v : yr[j];
        }
      });
    }
  }

  /// Index in the plane of the first element of the window of output (i, j) equal to m
  /// (NaN matching NaN), or -1. That is the element the forward picked.
  std::int64_t first_max(const T* x, std::int64_t i, std::int64_t j, T m) const {
    const Window& r = rows_[static_cast<std::size_t>(i)];
    const Window& c = cols_[static_cast<std::size_t>(j)];
    const bool nan = is_nan(m);
    for (std::int64_t ih = r.lo; ih < r.hi; ++ih)
      for (std::int64_t iw = c.lo; iw < c.hi; ++iw) {
        const T v = x[ih * w_ + iw];
        if (v == m || (nan && is_nan(v))) return ih * w_ + iw;
      }
    return -1;
  }

  // Window by window with an early exit, unlike the other three ops: scanning rows of
  // windows with selects (recomputing the argmax, or testing "found yet" per output)
  // measured 1.5-2x slower.
  void max_backward(const T* g, const T* x, const T* y, T* dx) const {
    std::fill(dx, dx + h_ * w_, T(0));
    for (std::int64_t i = 0; i < oh_; ++i)
      for (std::int64_t j = 0; j < ow_; ++j) {
        const std::int64_t at = first_max(x, i, j, y[i * ow_ + j]);
        if (at >= 0) dx[at] += g[i * ow_ + j];
      }
  }

  /// The divisor of output (i, j); 0 only for an (impossible) empty window.
  std::int64_t divisor(std::int64_t i, std::int64_t j) const {
    const Window& r = rows_[static_cast<std::size_t>(i)];
    const Window& c = cols_[static_cast<std::size_t>(j)];
    return count_include_pad_ ? r.padded * c.padded : (r.hi - r.lo) * (c.hi - c.lo);
  }

  void avg_forward(const T* x, T* y) const {
    double acc[kChunk];  // double for f32 too, as PyTorch's CPU kernel accumulates
    for (std::int64_t i = 0; i < oh_; ++i) {
      for (std::int64_t j0 = 0; j0 < ow_; j0 += kChunk) {
        const std::int64_t j1 = std::min(j0 + kChunk, ow_);
        std::fill(acc, acc + (j1 - j0), 0.0);
        for_taps(i, j0, j1, [&](std::int64_t lo, std::int64_t hi, std::int64_t base) {
          for (std::int64_t j = lo; j < hi; ++j) acc[j - j0] += static_cast<double>(x[base + j * stride_]);
        });
        for (std::int64_t j = j0; j < j1; ++j) {
          const std::int64_t d = divisor(i, j);
          y[i * ow_ + j] = d > 0 ? static_cast<T>(acc[j - j0] / static_cast<double>(d)) : T(0);
        }
      }
    }
  }

  void avg_backward(const T* g, T* dx) const {
    std::fill(dx, dx + h_ * w_, T(0));
    T share[kChunk];  // g / divisor of each output of the chunk
    for (std::int64_t i = 0; i < oh_; ++i) {
      for (std::int64_t j0 = 0; j0 < ow_; j0 += kChunk) {
        const std::int64_t j1 = std::min(j0 + kChunk, ow_);
        for (std::int64_t j = j0; j < j1; ++j) {
          const std::int64_t d = divisor(i, j);
          share[j - j0] = d > 0 ? g[i * ow_ + j] / static_cast<T>(d) : T(0);
        }
        for_taps(i, j0, j1, [&](std::int64_t lo, std::int64_t hi, std::int64_t base) {
          for (std::int64_t j = lo; j < hi; ++j) dx[base + j * stride_] += share[j - j0];
        });
      }
    }
  }

  OpKind kind_;
  std::int64_t planes_, h_, w_, oh_, ow_;
  std::int64_t stride_, pad_;  // along W
  bool count_include_pad_;
  std::vector<Window> rows_, cols_;  // per output row / column
  std::vector<TapRange> taps_;       // per kernel column: the output columns it reaches
  std::int64_t window_rows_;         // kernel height, for the grain
};

}  // namespace

/// Max pooling whose windows tile the input: kernel == stride, no padding, every window
/// inside the input (the common 2x2/2 pooling of CNNs). Each input element then belongs to
/// at most one window, so the backward writes every element of dx exactly once — the
/// gradient where the first maximum of its window sits, zero elsewhere — with no zero-fill
/// pass and no scatter, and the 2x2 case runs as straight-line code the compiler
/// vectorizes. Results equal PoolKernel's (the same first-maximum rule, NaN propagating).
/// Measured with TRAINRT_PROFILE=1 on the example CNN's first pooling (f32[128,32,28,28] to
/// 14x14), one thread, against PoolKernel: forward 5.5 -> 1.8 ms, backward 14.6 -> 4.5 ms.
template <class T>
class TiledMaxPool final : public Kernel {
 public:
  TiledMaxPool(OpKind kind, const Shape& x, const Shape& y, const Pool2dAttrs& a)
      : backward_(kind == OpKind::MaxPool2dBackward),
        planes_(x[0] * x[1]),
        h_(x[2]),
        w_(x[3]),
        oh_(y[2]),
        ow_(y[3]),
        kh_(a.kernel[0]),
        kw_(a.kernel[1]) {}

  static bool applies(const Shape& x, const Shape& y, const Pool2dAttrs& a) {
    return a.kernel == a.stride && a.padding[0] == 0 && a.padding[1] == 0 && y[2] * a.kernel[0] <= x[2] &&
           y[3] * a.kernel[1] <= x[3];
  }

  void run(const KernelArgs& a) override {
    const std::int64_t in_plane = h_ * w_, out_plane = oh_ * ow_;
    parallel_for(planes_, grain_for(2 * in_plane), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = lo; p < hi; ++p) {
        if (backward_)
          backward(static_cast<const T*>(a.in[0]) + p * out_plane, static_cast<const T*>(a.in[1]) + p * in_plane,
                   static_cast<const T*>(a.in[2]) + p * out_plane, static_cast<T*>(a.out[0]) + p * in_plane);
        else forward(static_cast<const T*>(a.in[0]) + p * in_plane, static_cast<T*>(a.out[0]) + p * out_plane);
      }
    });
  }

 private:
  /// max(m, v) that keeps the first maximum and lets NaN win (v != v only for NaN).
  // NOLINTNEXTLINE(misc-redundant-expression): x != x is the NaN test
  static T pick(T m, T v) { return (v > m || v != v) ? v : m; }
  /// Whether v is the maximum m (NaN matches NaN).
  // NOLINTNEXTLINE(misc-redundant-expression): x != x is the NaN test
  static bool is_max(T v, T m) { return (v == m) | ((v != v) & (m != m)); }

  void forward(const T* x, T* y) const {
    for (std::int64_t i = 0; i < oh_; ++i) {
      const T* r0 = x + i * kh_ * w_;
      T* yr = y + i * ow_;
      if (kh_ == 2 && kw_ == 2) {
        const T* r1 = r0 + w_;
        for (std::int64_t j = 0; j < ow_; ++j)
          yr[j] = pick(pick(pick(r0[2 * j], r0[2 * j + 1]), r1[2 * j]), r1[2 * j + 1]);
        continue;
      }
      for (std::int64_t j = 0; j < ow_; ++j) {
        T m = r0[j * kw_];
        for (std::int64_t a = 0; a < kh_; ++a)
          for (std::int64_t b = 0; b < kw_; ++b) m = pick(m, r0[a * w_ + j * kw_ + b]);
        yr[j] = m;
      }
    }
  }

  void backward(const T* g, const T* x, const T* y, T* dx) const {
    for (std::int64_t i = 0; i < oh_; ++i) {
      const T* xr = x + i * kh_ * w_;
      T* dr = dx + i * kh_ * w_;
      const T* gr = g + i * ow_;
      const T* yr = y + i * ow_;
      if (kh_ == 2 && kw_ == 2) {
        // Bitwise logic, no short-circuit: the compiler turns the selects into blends and
        // vectorizes the loop.
        for (std::int64_t j = 0; j < ow_; ++j) {
          const T m = yr[j], gv = gr[j];
          const bool i0 = is_max(xr[2 * j], m), i1 = is_max(xr[2 * j + 1], m), i2 = is_max(xr[w_ + 2 * j], m);
          const bool h1 = i1 & !i0, h2 = i2 & !(i0 | i1), h3 = !(i0 | i1 | i2);  // the first maximum wins
          dr[2 * j] = i0 ? gv : T(0);
          dr[2 * j + 1] = h1 ? gv : T(0);
          dr[w_ + 2 * j] = h2 ? gv : T(0);
          dr[w_ + 2 * j + 1] = h3 ? gv : T(0);
        }
      } else {
        for (std::int64_t j = 0; j < ow_; ++j) {
          bool found = false;
          for (std::int64_t a = 0; a < kh_; ++a)
            for (std::int64_t b = 0; b < kw_; ++b) {
              const std::int64_t at = a * w_ + j * kw_ + b;
              const bool hit = !found && is_max(xr[at], yr[j]);
              dr[at] = hit ? gr[j] : T(0);
              found = found || hit;
            }
        }
      }
      for (std::int64_t a = 0; a < kh_; ++a)  // columns no window covers
        std::fill(dr + a * w_ + ow_ * kw_, dr + (a + 1) * w_, T(0));
    }
    std::fill(dx + oh_ * kh_ * w_, dx + h_ * w_, T(0));  // rows no window covers
  }

  bool backward_;
  std::int64_t planes_, h_, w_, oh_, ow_, kh_, kw_;
};

std::unique_ptr<Kernel> make_pool_kernel(const KernelEnv& env) {
  const OpKind kind = env.n().kind;
  const auto& attrs = std::get<Pool2dAttrs>(env.n().attrs);
  Shape x, y;
  switch (kind) {
    case OpKind::MaxPool2d:
    case OpKind::AvgPool2d: x = env.in(0).shape, y = env.out(0).shape; break;
    case OpKind::MaxPool2dBackward: x = env.in(1).shape, y = env.in(0).shape; break;
    case OpKind::AvgPool2dBackward: x = env.out(0).shape, y = env.in(0).shape; break;
    default: check_internal(false, "make_pool_kernel: not a pooling op"); return nullptr;
  }
  const DType dtype = env.out(0).dtype;
  const bool max = kind == OpKind::MaxPool2d || kind == OpKind::MaxPool2dBackward;
  if (max && TiledMaxPool<float>::applies(x, y, attrs)) {
    if (dtype == DType::f32) return std::make_unique<TiledMaxPool<float>>(kind, x, y, attrs);
    if (dtype == DType::f64) return std::make_unique<TiledMaxPool<double>>(kind, x, y, attrs);
  }
  switch (dtype) {
    case DType::f32: return std::make_unique<PoolKernel<float>>(kind, x, y, attrs);
    case DType::f64: return std::make_unique<PoolKernel<double>>(kind, x, y, attrs);
    default: unsupported_dtype(env, dtype);
  }
}

}  // namespace trainrt::detail::cpu
