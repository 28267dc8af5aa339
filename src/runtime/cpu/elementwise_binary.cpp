// runtime/cpu/elementwise_binary.cpp — two-operand elementwise kernels (arithmetic,
// comparisons, logic, activation backward).
#include "runtime/cpu/elementwise.h"
#include "runtime/cpu/elementwise_ops.h"

namespace trainrt::detail::cpu {

namespace {

template <class Op, class T, class R>
class BinaryKernel final : public Kernel {
 public:
  explicit BinaryKernel(BroadcastPlan plan) : plan_(plan) {}
  void run(const KernelArgs& a) override {
    binary_loop<Op, T, R>(plan_, static_cast<const T*>(a.in[0]), static_cast<const T*>(a.in[1]),
                          static_cast<R*>(a.out[0]));
  }

 private:
  BroadcastPlan plan_;
};

BroadcastPlan plan_of(const KernelEnv& env) {
  return make_broadcast_plan(env.out(0).shape, {env.in(0).shape, env.in(1).shape});
}

template <class Op>
std::unique_ptr<Kernel> floating_kernel(const KernelEnv& env) {
  return dispatch_floating(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    using T = decltype(t);
    return std::make_unique<BinaryKernel<Op, T, T>>(plan_of(env));
  });
}

template <class Op>
std::unique_ptr<Kernel> numeric_kernel(const KernelEnv& env) {
  return dispatch_numeric(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    using T = decltype(t);
    return std::make_unique<BinaryKernel<Op, T, T>>(plan_of(env));
  });
}

/// Comparisons: result bool. `with_bool` admits bool operands (eq, ne).
template <class Op, bool with_bool>
std::unique_ptr<Kernel> compare_kernel(const KernelEnv& env) {
  auto make = [&](auto t) -> std::unique_ptr<Kernel> {
    using T = decltype(t);
    return std::make_unique<BinaryKernel<Op, T, Bool>>(plan_of(env));
  };
  if constexpr (with_bool) return dispatch_all(env.in(0).dtype, make);
  else return dispatch_numeric(env.in(0).dtype, make);
}

}  // namespace

std::unique_ptr<Kernel> make_binary_kernel(const KernelEnv& env) {
  switch (env.n().kind) {
    case OpKind::Add: return numeric_kernel<ew::Add>(env);
    case OpKind::Sub: return numeric_kernel<ew::Sub>(env);
    case OpKind::Mul: return numeric_kernel<ew::Mul>(env);
    case OpKind::Maximum: return numeric_kernel<ew::Maximum>(env);
    case OpKind::Minimum: return numeric_kernel<ew::Minimum>(env);
    case OpKind::Div: return floating_kernel<ew::Div>(env);
    case OpKind::Pow: return floating_kernel<ew::Pow>(env);
    case OpKind::Eq: return compare_kernel<ew::Eq, true>(env);
    case OpKind::Ne: return compare_kernel<ew::Ne, true>(env);
    case OpKind::Lt: return compare_kernel<ew::Lt, false>(env);
    case OpKind::Le: return compare_kernel<ew::Le, false>(env);
    case OpKind::Gt: return compare_kernel<ew::Gt, false>(env);
    case OpKind::Ge: return compare_kernel<ew::Ge, false>(env);
    case OpKind::LogicalAnd: return std::make_unique<BinaryKernel<ew::LogicalAnd, Bool, Bool>>(plan_of(env));
    case OpKind::LogicalOr: return std::make_unique<BinaryKernel<ew::LogicalOr, Bool, Bool>>(plan_of(env));
    case OpKind::ReluBackward: return floating_kernel<ew::ReluBackward>(env);
    case OpKind::SigmoidBackward: return floating_kernel<ew::SigmoidBackward>(env);
    case OpKind::TanhBackward: return floating_kernel<ew::TanhBackward>(env);
    case OpKind::GeluBackward:
      return std::get<GeluAttrs>(env.n().attrs).tanh_approximation ? floating_kernel<ew::GeluTanhBackward>(env)
                                                                   : floating_kernel<ew::GeluBackward>(env);
    default: break;
  }
  unsupported_dtype(env, env.in(0).dtype);
}

}  // namespace trainrt::detail::cpu
