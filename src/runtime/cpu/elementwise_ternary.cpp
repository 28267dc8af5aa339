// runtime/cpu/elementwise_ternary.cpp — fma(a, b, c) = a*b + c and where(cond, a, b).
#include "runtime/cpu/elementwise.h"
#include "runtime/cpu/elementwise_ops.h"

namespace trainrt::detail::cpu {

namespace {

/// out = Op(x[i*sx], y[i*sy], z[i*sz]); the all-contiguous and "scalar middle operand"
/// cases (optimizer updates: p + (-lr) * d) get their own vectorizable loops.
template <class Op, class X, class T>
void ternary_inner(const X* x, std::int64_t sx, const T* y, std::int64_t sy, const T* z, std::int64_t sz, T* out,
                   std::int64_t n) {
  if (sx == 1 && sy == 1 && sz == 1) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(x[i], y[i], z[i]);
  } else if (sx == 1 && sy == 0 && sz == 1) {
    const T b = y[0];
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(x[i], b, z[i]);
  } else if (sx == 1 && sy == 0 && sz == 0) {
    const T b = y[0], c = z[0];
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(x[i], b, c);
  } else {
    for (std::int64_t i = 0; i < n; ++i) out[i] = Op::f(x[i * sx], y[i * sy], z[i * sz]);
  }
}

struct Fma {
  template <class T>
  static T f(T a, T b, T c) {
    return a * b + c;
  }
};
struct Where {
  template <class T>
  static T f(Bool c, T a, T b) {
    return c ? a : b;
  }
};

template <class Op, class X, class T>
class TernaryKernel final : public Kernel {
 public:
  explicit TernaryKernel(BroadcastPlan plan) : plan_(plan) {}
  void run(const KernelArgs& a) override {
    const auto* x = static_cast<const X*>(a.in[0]);
    const auto* y = static_cast<const T*>(a.in[1]);
    const auto* z = static_cast<const T*>(a.in[2]);
    auto* out = static_cast<T*>(a.out[0]);
    const int last = plan_.rank - 1;
    const std::int64_t sx = plan_.stride[0][last], sy = plan_.stride[1][last], sz = plan_.stride[2][last];
    run_rows(plan_, [&](const std::int64_t* off, std::int64_t o, std::int64_t n) {
      ternary_inner<Op>(x + off[0], sx, y + off[1], sy, z + off[2], sz, out + o, n);
    });
  }

 private:
  BroadcastPlan plan_;
};

}  // namespace

std::unique_ptr<Kernel> make_ternary_kernel(const KernelEnv& env) {
  const BroadcastPlan plan = make_broadcast_plan(env.out(0).shape, {env.in(0).shape, env.in(1).shape, env.in(2).shape});
  if (env.n().kind == OpKind::Fma)
    return dispatch_numeric(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
      using T = decltype(t);
      return std::make_unique<TernaryKernel<Fma, T, T>>(plan);
    });
  if (env.n().kind == OpKind::Where)
    return dispatch_all(env.in(1).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
      return std::make_unique<TernaryKernel<Where, Bool, decltype(t)>>(plan);
    });
  unsupported_dtype(env, env.in(0).dtype);
}

}  // namespace trainrt::detail::cpu
