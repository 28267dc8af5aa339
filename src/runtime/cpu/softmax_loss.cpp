// runtime/cpu/softmax_loss.cpp — softmax, log-softmax, their backward ops, and the fused
// cross-entropy loss with its backward.
//
// The normalized axis is viewed as [outer, L, inner]. With inner == 1 each row is a
// contiguous run; otherwise tiles of `inner` columns are processed together so the loops
// stay contiguous. Maxima are subtracted before exponentiating; sums accumulate in double.
//
// Cross-entropy over logits [R, C] with labels [R] and label smoothing e:
//   lse_r  = log sum_c exp(x_rc)
//   loss_r = (1 - e) (lse_r - x_r,label) + e (lse_r - mean_c x_rc)
//   loss   = sum over rows that are not ignore_index / their count
//   d loss / d x_rc = g / count * (exp(x_rc - lse_r) - (1 - e) [c == label] - e / C)
// Row losses are computed in parallel into scratch and summed in row order. In f32 the
// cross-entropy's exponentials run on vectors (vec_kernels.h) (softmax and log-softmax
// still call std::exp in double).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "runtime/cpu/accumulate.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"
#include "runtime/cpu/vec_kernels.h"

namespace trainrt::detail::cpu {

namespace {

struct AxisView {
  std::int64_t outer = 1, len = 1, inner = 1;
};

AxisView view_of(const Shape& s, std::int64_t axis) {
  AxisView v;
  for (std::int64_t d = 0; d < s.rank(); ++d) {
    if (d < axis) v.outer *= s[d];
    else if (d == axis) v.len = s[d];
    else v.inner *= s[d];
  }
  return v;
}

enum class SoftmaxKind { softmax, log_softmax, softmax_backward, log_softmax_backward };

template <class T>
class SoftmaxKernel final : public Kernel {
 public:
  SoftmaxKernel(AxisView v, SoftmaxKind kind) : v_(v), kind_(kind) {}

  void run(const KernelArgs& a) override {
    const bool backward = kind_ == SoftmaxKind::softmax_backward || kind_ == SoftmaxKind::log_softmax_backward;
    const T* x = static_cast<const T*>(a.in[0]);                       // forward: x; backward: g
    const T* y = backward ? static_cast<const T*>(a.in[1]) : nullptr;  // backward: saved output
    T* out = static_cast<T*>(a.out[0]);
    const std::int64_t L = v_.len, inner = v_.inner;
    constexpr std::int64_t kTile = 64;
    const std::int64_t tiles = (inner + kTile - 1) / kTile;
    parallel_for(v_.outer * tiles, grain_for(L * std::min(inner, kTile)), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t w = b; w < e; ++w) {
        const std::int64_t o = w / tiles, c0 = (w % tiles) * kTile, cols = std::min(kTile, inner - c0);
        const std::int64_t base = o * L * inner + c0;
        if (inner == 1) row(x + base, y ? y + base : nullptr, out + base);
        else columns(x + base, y ? y + base : nullptr, out + base, cols);
      }
    });
  }

 private:
  /// One contiguous row of length L.
  void row(const T* x, const T* y, T* out) const {
    const std::int64_t L = v_.len;
    switch (kind_) {
      case SoftmaxKind::softmax:
      case SoftmaxKind::log_softmax: {
        const T m = lane_max(x, L);
        double s = 0;
        for (std::int64_t i = 0; i < L; ++i) s += std::exp(static_cast<double>(x[i] - m));
        if (kind_ == SoftmaxKind::softmax) {
          const double inv = 1.0 / s;
          for (std::int64_t i = 0; i < L; ++i) out[i] = static_cast<T>(std::exp(static_cast<double>(x[i] - m)) * inv);
        } else {
          const T shift = static_cast<T>(static_cast<double>(m) + std::log(s));
          for (std::int64_t i = 0; i < L; ++i) out[i] = x[i] - shift;
        }
        break;
      }
      case SoftmaxKind::softmax_backward: {  // dx = y (g - <g, y>)
        const T dot = static_cast<T>(lane_dot(x, y, L));
        for (std::int64_t i = 0; i < L; ++i) out[i] = y[i] * (x[i] - dot);
        break;
      }
      case SoftmaxKind::log_softmax_backward: {  // dx = g - exp(y) sum(g)
        const T s = static_cast<T>(lane_sum(x, L));
        for (std::int64_t i = 0; i < L; ++i) out[i] = x[i] - std::exp(y[i]) * s;
        break;
      }
    }
  }

  /// `cols` columns of stride `inner`, processed together.
  void columns(const T* x, const T* y, T* out, std::int64_t cols) const {
    const std::int64_t L = v_.len, st = v_.inner;
    double acc[64];
    T m[64];
    switch (kind_) {
      case SoftmaxKind::softmax:
      case SoftmaxKind::log_softmax: {
        for (std::int64_t j = 0; j < cols; ++j) m[j] = x[j], acc[j] = 0;
        for (std::int64_t i = 1; i < L; ++i)
          for (std::int64_t j = 0; j < cols; ++j) {
            const T v = x[i * st + j];
            m[j] = (v > m[j] || v != v) ? v : m[j];  // NOLINT(misc-redundant-expression): x != x is the NaN test
          }
        for (std::int64_t i = 0; i < L; ++i)
          for (std::int64_t j = 0; j < cols; ++j) acc[j] += std::exp(static_cast<double>(x[i * st + j] - m[j]));
        for (std::int64_t i = 0; i < L; ++i)
          for (std::int64_t j = 0; j < cols; ++j) {
            const std::int64_t k = i * st + j;
            out[k] = kind_ == SoftmaxKind::softmax
                         ? static_cast<T>(std::exp(static_cast<double>(x[k] - m[j])) / acc[j])
                         : static_cast<T>(static_cast<double>(x[k] - m[j]) - std::log(acc[j]));
          }
        break;
      }
      case SoftmaxKind::softmax_backward:
      case SoftmaxKind::log_softmax_backward: {
        const bool soft = kind_ == SoftmaxKind::softmax_backward;
        for (std::int64_t j = 0; j < cols; ++j) acc[j] = 0;
        for (std::int64_t i = 0; i < L; ++i)
          for (std::int64_t j = 0; j < cols; ++j) {
            const std::int64_t k = i * st + j;
            acc[j] += soft ? static_cast<double>(x[k]) * static_cast<double>(y[k]) : static_cast<double>(x[k]);
          }
        for (std::int64_t i = 0; i < L; ++i)
          for (std::int64_t j = 0; j < cols; ++j) {
            const std::int64_t k = i * st + j;
            out[k] = soft ? y[k] * (x[k] - static_cast<T>(acc[j])) : x[k] - std::exp(y[k]) * static_cast<T>(acc[j]);
          }
        break;
      }
    }
  }

  AxisView v_;
  SoftmaxKind kind_;
};

/// sum over c < n of e^(x[c] - m); f32 on vectors (vec_kernels.h), f64 with std::exp in order.
inline double sum_exp(const float* x, float m, std::int64_t n) { return sum_exp_f32(x, m, n); }
inline double sum_exp(const double* x, double m, std::int64_t n) {
  double s = 0;
  for (std::int64_t c = 0; c < n; ++c) s += std::exp(x[c] - m);
  return s;
}

/// d[c] = scale * (e^(x[c] - l) - uniform) for c < n: the cross-entropy gradient before the
/// label's term. f32 on vectors.
inline void softmax_minus(const float* x, double l, double scale, double uniform, float* d, std::int64_t n) {
  softmax_minus_f32(x, static_cast<float>(l), static_cast<float>(scale), static_cast<float>(uniform), d, n);
}
inline void softmax_minus(const double* x, double l, double scale, double uniform, double* d, std::int64_t n) {
  for (std::int64_t c = 0; c < n; ++c) d[c] = scale * (std::exp(x[c] - l) - uniform);
}

template <class T, class I>
class CrossEntropyKernel final : public Kernel {
 public:
  CrossEntropyKernel(std::int64_t rows, std::int64_t classes, CrossEntropyAttrs attrs, bool backward, SourceLoc loc)
      : rows_(rows), classes_(classes), a_(attrs), backward_(backward), loc_(loc) {}

  std::size_t scratch_bytes() const override {
    return backward_ ? 0 : static_cast<std::size_t>(rows_) * sizeof(double);
  }

  void run(const KernelArgs& args) override {
    if (backward_) return run_backward(args);
    const T* x = static_cast<const T*>(args.in[0]);
    const I* labels = static_cast<const I*>(args.in[1]);
    T* loss = static_cast<T*>(args.out[0]);
    T* lse = static_cast<T*>(args.out[1]);
    auto* row_loss = static_cast<double*>(args.scratch);
    const double e = a_.label_smoothing;
    parallel_for(rows_, grain_for(classes_ * 4), [&](std::int64_t b, std::int64_t end) {
      for (std::int64_t r = b; r < end; ++r) {
        const T* xr = x + r * classes_;
        const T m = lane_max(xr, classes_);
        const double l = static_cast<double>(m) + std::log(sum_exp(xr, m, classes_));
        lse[r] = static_cast<T>(l);
        const auto label = static_cast<std::int64_t>(labels[r]);
        if (label == a_.ignore_index) {
          row_loss[r] = 0;
          continue;
        }
        check_label(label, r);
        double v = (1.0 - e) * (l - static_cast<double>(xr[label]));
        if (e != 0) v += e * (l - static_cast<double>(lane_sum(xr, classes_)) / static_cast<double>(classes_));
        row_loss[r] = v;
      }
    });
    double total = 0;
    for (std::int64_t r = 0; r < rows_; ++r) total += row_loss[r];
    loss[0] = static_cast<T>(total / static_cast<double>(count(labels)));  // NaN when all ignored, as in PyTorch
  }

 private:
  std::int64_t count(const I* labels) const {
    std::int64_t n = 0;
    for (std::int64_t r = 0; r < rows_; ++r) n += static_cast<std::int64_t>(labels[r]) != a_.ignore_index;
    return n;
  }

  void check_label(std::int64_t label, std::int64_t row) const {
    if (label < 0 || label >= classes_)
      fail(ErrorKind::InvalidArgument,
           cat("cross_entropy at ", where(loc_.file, loc_.line), ": label ", label, " at position ", row,
               " is out of range [0, ", classes_, ") (ignore_index is ", a_.ignore_index, ")"));
  }

  void run_backward(const KernelArgs& args) const {
    const T g = *static_cast<const T*>(args.in[0]);
    const T* x = static_cast<const T*>(args.in[1]);
    const I* labels = static_cast<const I*>(args.in[2]);
    const T* lse = static_cast<const T*>(args.in[3]);
    T* dx = static_cast<T*>(args.out[0]);
    const double scale = static_cast<double>(g) / static_cast<double>(count(labels));
    const double e = a_.label_smoothing, uniform = e / static_cast<double>(classes_);
    parallel_for(rows_, grain_for(classes_ * 4), [&](std::int64_t b, std::int64_t end) {
      for (std::int64_t r = b; r < end; ++r) {
        T* d = dx + r * classes_;
        const auto label = static_cast<std::int64_t>(labels[r]);
        if (label == a_.ignore_index) {
          std::fill(d, d + classes_, T(0));
          continue;
        }
        check_label(label, r);
        const T* xr = x + r * classes_;
        const auto l = static_cast<double>(lse[r]);
        softmax_minus(xr, l, scale, uniform, d, classes_);
        d[label] = static_cast<T>(static_cast<double>(d[label]) - scale * (1.0 - e));
      }
    });
  }

  std::int64_t rows_, classes_;
  CrossEntropyAttrs a_;
  bool backward_;
  SourceLoc loc_;
};

}  // namespace

std::unique_ptr<Kernel> make_softmax_loss_kernel(const KernelEnv& env) {
  const Node& n = env.n();
  switch (n.kind) {
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
    case OpKind::SoftmaxBackward:
    case OpKind::LogSoftmaxBackward: {
      const SoftmaxKind kind = n.kind == OpKind::Softmax           ? SoftmaxKind::softmax
                               : n.kind == OpKind::LogSoftmax      ? SoftmaxKind::log_softmax
                               : n.kind == OpKind::SoftmaxBackward ? SoftmaxKind::softmax_backward
                                                                   : SoftmaxKind::log_softmax_backward;
      const AxisView v = view_of(env.out(0).shape, std::get<AxisAttrs>(n.attrs).axis);
      return dispatch_floating(env.out(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
        return std::make_unique<SoftmaxKernel<decltype(t)>>(v, kind);
      });
    }
    case OpKind::CrossEntropy:
    case OpKind::CrossEntropyBackward: {
      const bool backward = n.kind == OpKind::CrossEntropyBackward;
      const Shape& logits = env.in(backward ? 1 : 0).shape;
      const std::int64_t classes = logits[logits.rank() - 1];
      const std::int64_t rows = classes ? logits.numel() / classes : 0;
      const auto& attrs = std::get<CrossEntropyAttrs>(n.attrs);
      return dispatch_floating(env.in(backward ? 1 : 0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
        return dispatch_index(env.in(backward ? 2 : 1).dtype, [&](auto i) -> std::unique_ptr<Kernel> {
          return std::make_unique<CrossEntropyKernel<decltype(t), decltype(i)>>(rows, classes, attrs, backward, n.loc);
        });
      });
    }
    default: unsupported_dtype(env, env.out(0).dtype);
  }
}

}  // namespace trainrt::detail::cpu
