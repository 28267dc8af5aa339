// runtime/cpu/norm.cpp — batch normalization (training, evaluation, backward) and layer
// normalization (forward, backward).
//
// Batch norm views x as [N, C, S] and works per channel: the statistics take one pass of
// moments shifted by a value of the channel (accumulate.h); the variance is biased (the
// unbiased running-variance update is graph code, see passes/lower_mode.cpp).
//   backward: dx = gamma / sigma * (g - mean(g) - xhat * mean(g * xhat)),
//             dgamma = sum(g * xhat), dbeta = sum(g).
// Layer norm views x as [R, D] and works per row; its dgamma/dbeta sum over rows in tiles
// of columns, rows in order, so results do not depend on threads.
#include <algorithm>
#include <cmath>

#include "runtime/cpu/accumulate.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

template <class T>
class BatchNormKernel final : public Kernel {
 public:
  BatchNormKernel(OpKind kind, const Shape& x, double eps) : kind_(kind), eps_(eps) {
    n_ = x[0];
    c_ = x[1];
    s_ = x.numel() / std::max<std::int64_t>(n_ * c_, 1);
  }

  void run(const KernelArgs& a) override {
    switch (kind_) {
      case OpKind::BatchNormTrain: return train(a);
      case OpKind::BatchNormEval: return eval(a);
      default: return backward(a);
    }
  }

 private:
  const T* plane(const T* x, std::int64_t n, std::int64_t c) const { return x + (n * c_ + c) * s_; }
  T* plane(T* x, std::int64_t n, std::int64_t c) const { return x + (n * c_ + c) * s_; }

  void normalize(const T* x, T* y, std::int64_t c, double scale, double shift) const {
    const T sc = static_cast<T>(scale), sh = static_cast<T>(shift);
    for (std::int64_t n = 0; n < n_; ++n) {
      const T* xp = plane(x, n, c);
      T* yp = plane(y, n, c);
      for (std::int64_t i = 0; i < s_; ++i) yp[i] = xp[i] * sc + sh;
    }
  }

  void train(const KernelArgs& a) const {
    const T* x = static_cast<const T*>(a.in[0]);
    const T* gamma = static_cast<const T*>(a.in[1]);
    const T* beta = static_cast<const T*>(a.in[2]);
    T* y = static_cast<T*>(a.out[0]);
    T* mean = static_cast<T*>(a.out[1]);
    T* var = static_cast<T*>(a.out[2]);
    const auto m = static_cast<double>(n_ * s_);
    parallel_for(c_, grain_for(3 * n_ * s_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        // One pass over the channel: moments shifted by one of its values (no cancellation
        // when the data sit far from zero), then mean and biased variance in double.
        const double shift = n_ * s_ > 0 ? static_cast<double>(plane(x, 0, c)[0]) : 0.0;
        double s1 = 0, s2 = 0;
        for (std::int64_t n = 0; n < n_; ++n) lane_shifted_moments(plane(x, n, c), s_, shift, s1, s2);
        const double d = s1 / m;
        const double mu = shift + d;
        const double v = std::max(s2 / m - d * d, 0.0);
        mean[c] = static_cast<T>(mu);
        var[c] = static_cast<T>(v);
        const double scale = (gamma ? static_cast<double>(gamma[c]) : 1.0) / std::sqrt(v + eps_);
        normalize(x, y, c, scale, (beta ? static_cast<double>(beta[c]) : 0.0) - mu * scale);
      }
    });
  }

  void eval(const KernelArgs& a) const {
    const T* x = static_cast<const T*>(a.in[0]);
    const T* gamma = static_cast<const T*>(a.in[1]);
    const T* beta = static_cast<const T*>(a.in[2]);
    const T* mean = static_cast<const T*>(a.in[3]);
    const T* var = static_cast<const T*>(a.in[4]);
    T* y = static_cast<T*>(a.out[0]);
    parallel_for(c_, grain_for(n_ * s_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        const double scale =
            (gamma ? static_cast<double>(gamma[c]) : 1.0) / std::sqrt(static_cast<double>(var[c]) + eps_);
        normalize(x, y, c, scale, (beta ? static_cast<double>(beta[c]) : 0.0) - static_cast<double>(mean[c]) * scale);
      }
    });
  }

  void backward(const KernelArgs& a) const {
    const T* g = static_cast<const T*>(a.in[0]);
    const T* x = static_cast<const T*>(a.in[1]);
    const T* gamma = static_cast<const T*>(a.in[2]);
    const T* mean = static_cast<const T*>(a.in[3]);
    const T* var = static_cast<const T*>(a.in[4]);
    T* dx = static_cast<T*>(a.out[0]);
    T* dgamma = static_cast<T*>(a.out[1]);
    T* dbeta = static_cast<T*>(a.out[2]);
    const auto m = static_cast<double>(n_ * s_);
    parallel_for(c_, grain_for(3 * n_ * s_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c) {
        const auto mu = static_cast<double>(mean[c]);
        const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps_);
        double sum_g = 0, sum_gx = 0;  // sum(g), sum(g * (x - mu))
        for (std::int64_t n = 0; n < n_; ++n) {
          const T* gp = plane(g, n, c);
          sum_g += lane_sum(gp, s_);
          sum_gx += lane_dot(gp, plane(x, n, c), s_);
        }
        sum_gx -= mu * sum_g;
        dbeta[c] = static_cast<T>(sum_g);
        dgamma[c] = static_cast<T>(sum_gx * invstd);
        // dx = k * (g - sum_g/m - (x - mu) * invstd^2 * sum_gx/m), k = gamma * invstd
        const double k = (gamma ? static_cast<double>(gamma[c]) : 1.0) * invstd;
        const T a1 = static_cast<T>(k), a0 = static_cast<T>(-k * sum_g / m);
        const T b1 = static_cast<T>(-k * invstd * invstd * sum_gx / m), b0 = static_cast<T>(mu);
        for (std::int64_t n = 0; n < n_; ++n) {
          const T* gp = plane(g, n, c);
          const T* xp = plane(x, n, c);
          T* dp = plane(dx, n, c);
          for (std::int64_t i = 0; i < s_; ++i) dp[i] = a1 * gp[i] + a0 + b1 * (xp[i] - b0);
        }
      }
    });
  }

  OpKind kind_;
  double eps_;
  std::int64_t n_ = 0, c_ = 0, s_ = 0;
};

template <class T>
class LayerNormKernel final : public Kernel {
 public:
  LayerNormKernel(bool backward, std::int64_t rows, std::int64_t dim, double eps)
      : backward_(backward), rows_(rows), d_(dim), eps_(eps) {}

  void run(const KernelArgs& a) override { backward_ ? run_backward(a) : run_forward(a); }

 private:
  void run_forward(const KernelArgs& a) const {
    const T* x = static_cast<const T*>(a.in[0]);
    const T* gamma = static_cast<const T*>(a.in[1]);
    const T* beta = static_cast<const T*>(a.in[2]);
    T* y = static_cast<T*>(a.out[0]);
    T* mean = static_cast<T*>(a.out[1]);
    T* rstd = static_cast<T*>(a.out[2]);
    parallel_for(rows_, grain_for(3 * d_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* xr = x + r * d_;
        const double mu = static_cast<double>(lane_sum(xr, d_)) / static_cast<double>(d_);
        const double rs = 1.0 / std::sqrt(lane_sum_sq_dev(xr, d_, mu) / static_cast<double>(d_) + eps_);
        mean[r] = static_cast<T>(mu);
        rstd[r] = static_cast<T>(rs);
        T* yr = y + r * d_;
        const T m = static_cast<T>(mu), s = static_cast<T>(rs);
        for (std::int64_t j = 0; j < d_; ++j) {
          T v = (xr[j] - m) * s;
          if (gamma) v *= gamma[j];
          if (beta) v += beta[j];
          yr[j] = v;
        }
      }
    });
  }

  void run_backward(const KernelArgs& a) const {
    const T* g = static_cast<const T*>(a.in[0]);
    const T* x = static_cast<const T*>(a.in[1]);
    const T* gamma = static_cast<const T*>(a.in[2]);
    const T* mean = static_cast<const T*>(a.in[3]);
    const T* rstd = static_cast<const T*>(a.in[4]);
    T* dx = static_cast<T*>(a.out[0]);
    T* dgamma = static_cast<T*>(a.out[1]);
    T* dbeta = static_cast<T*>(a.out[2]);
    const double inv_d = 1.0 / static_cast<double>(d_);
    parallel_for(rows_, grain_for(4 * d_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        const T* gr = g + r * d_;
        const T* xr = x + r * d_;
        const auto mu = static_cast<double>(mean[r]), rs = static_cast<double>(rstd[r]);
        double s1 = 0, s2 = 0;  // sum(dxhat), sum(dxhat * xhat)
        for (std::int64_t j = 0; j < d_; ++j) {
          const double dxhat = static_cast<double>(gr[j]) * (gamma ? static_cast<double>(gamma[j]) : 1.0);
          s1 += dxhat;
          s2 += dxhat * (static_cast<double>(xr[j]) - mu) * rs;
        }
        T* dr = dx + r * d_;
        for (std::int64_t j = 0; j < d_; ++j) {
          const double xhat = (static_cast<double>(xr[j]) - mu) * rs;
          const double dxhat = static_cast<double>(gr[j]) * (gamma ? static_cast<double>(gamma[j]) : 1.0);
          dr[j] = static_cast<T>(rs * (dxhat - s1 * inv_d - xhat * s2 * inv_d));
        }
      }
    });
    constexpr std::int64_t kTile = 256;
    const std::int64_t tiles = (d_ + kTile - 1) / kTile;
    parallel_for(tiles, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t t = b; t < e; ++t) {
        const std::int64_t j0 = t * kTile, len = std::min(kTile, d_ - j0);
        double sg[kTile] = {}, sb[kTile] = {};
        for (std::int64_t r = 0; r < rows_; ++r) {
          const auto mu = static_cast<double>(mean[r]), rs = static_cast<double>(rstd[r]);
          const T* gr = g + r * d_ + j0;
          const T* xr = x + r * d_ + j0;
          for (std::int64_t j = 0; j < len; ++j) {
            sg[j] += static_cast<double>(gr[j]) * (static_cast<double>(xr[j]) - mu) * rs;
            sb[j] += static_cast<double>(gr[j]);
          }
        }
        for (std::int64_t j = 0; j < len; ++j)
          dgamma[j0 + j] = static_cast<T>(sg[j]), dbeta[j0 + j] = static_cast<T>(sb[j]);
      }
    });
  }

  bool backward_;
  std::int64_t rows_, d_;
  double eps_;
};

}  // namespace

std::unique_ptr<Kernel> make_norm_kernel(const KernelEnv& env) {
  const Node& n = env.n();
  const auto& attrs = std::get<NormAttrs>(n.attrs);
  const bool bwd = n.kind == OpKind::BatchNormBackward || n.kind == OpKind::LayerNormBackward;
  const TensorType& x = env.in(bwd ? 1 : 0);
  switch (n.kind) {
    case OpKind::BatchNormTrain:
    case OpKind::BatchNormEval:
    case OpKind::BatchNormBackward:
      return dispatch_floating(x.dtype, [&](auto t) -> std::unique_ptr<Kernel> {
        return std::make_unique<BatchNormKernel<decltype(t)>>(n.kind, x.shape, attrs.eps);
      });
    case OpKind::LayerNorm:
    case OpKind::LayerNormBackward: {
      std::int64_t d = 1;
      for (std::int64_t i = x.shape.rank() - attrs.normalized_axes; i < x.shape.rank(); ++i) d *= x.shape[i];
      const std::int64_t rows = d ? x.shape.numel() / d : 0;
      return dispatch_floating(x.dtype, [&](auto t) -> std::unique_ptr<Kernel> {
        return std::make_unique<LayerNormKernel<decltype(t)>>(bwd, rows, d, attrs.eps);
      });
    }
    default: unsupported_dtype(env, x.dtype);  // BatchNorm itself is lowered before kernels exist
  }
}

}  // namespace trainrt::detail::cpu
