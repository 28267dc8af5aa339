// autodiff/grad_elementwise.cpp — gradients of unary, binary and ternary elementwise ops.
// Broadcast operands get their gradient summed back to their own shape (sum_to).
#include "autodiff/grad_rules.h"
#include "core/error.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

namespace {

Value zeros_like(const Value& v) { return v.graph().full(v.shape(), 0.0, v.dtype()); }

std::vector<Value> unary(const GradContext& c) {
  const Value& x = c.in[0];
  const Value& y = c.out[0];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::Neg: return {neg(g, l)};
    case OpKind::Abs: return {mul(g, sign(x, l), l)};
    case OpKind::Sign:
    case OpKind::Floor: return {Value{}};  // zero almost everywhere
    case OpKind::Exp: return {mul(g, y, l)};
    case OpKind::Log: return {div(g, x, l)};
    case OpKind::Sqrt: return {div(g * 0.5, y, l)};            // 1 / (2 sqrt x)
    case OpKind::Rsqrt: return {mul(g * -0.5, y * y * y, l)};  // -x^(-3/2) / 2
    case OpKind::Sin: return {mul(g, cos(x, l), l)};
    case OpKind::Cos: return {neg(mul(g, sin(x, l), l), l)};
    case OpKind::Tanh: return {tanh_backward(g, y, l)};
    case OpKind::Sigmoid: return {sigmoid_backward(g, y, l)};
    case OpKind::Relu: return {relu_backward(g, y, l)};  // y > 0 exactly where x > 0
    case OpKind::Gelu: return {gelu_backward(g, x, c.a<GeluAttrs>().tanh_approximation, l)};
    case OpKind::Cast: return {is_floating(y.dtype()) ? cast(g, x.dtype(), l) : Value{}};
    case OpKind::LogicalNot: return {Value{}};
    default: no_gradient(c.kind, c);
  }
}

/// Weight of operand a in max/min: 1 where it wins, 1/2 on ties, 0 where it loses (PyTorch).
Value winner_weight(const Value& a, const Value& b, bool is_max, const Loc& l) {
  const Value wins = is_max ? gt(a, b, l) : lt(a, b, l);
  const DType dt = a.dtype();
  Graph gr = a.graph();
  const Value one = gr.scalar(1.0, dt), half = gr.scalar(0.5, dt), zero = gr.scalar(0.0, dt);
  return where(wins, one, where(eq(a, b, l), half, zero, l), l);
}

std::vector<Value> binary(const GradContext& c) {
  const Value& a = c.in[0];
  const Value& b = c.in[1];
  const Value& y = c.out[0];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  auto to_a = [&](const Value& v) { return c.need(0) ? sum_to(v, a.shape(), l) : Value{}; };
  auto to_b = [&](const Value& v) { return c.need(1) ? sum_to(v, b.shape(), l) : Value{}; };
  switch (c.kind) {
    case OpKind::Add: return {to_a(g), to_b(g)};
    case OpKind::Sub: return {to_a(g), c.need(1) ? to_b(neg(g, l)) : Value{}};
    case OpKind::Mul: return {c.need(0) ? to_a(mul(g, b, l)) : Value{}, c.need(1) ? to_b(mul(g, a, l)) : Value{}};
    case OpKind::Div:
      return {c.need(0) ? to_a(div(g, b, l)) : Value{}, c.need(1) ? to_b(neg(div(mul(g, y, l), b, l), l)) : Value{}};
    case OpKind::Pow: {
      Value ga, gb;
      if (c.need(0)) ga = to_a(mul(g, mul(b, pow(a, b - 1.0, l), l), l));
      if (c.need(1)) {
        // d/db a^b = a^b log a; PyTorch defines it as 0 where a == 0 and b >= 0.
        const Value zero = a.graph().scalar(0.0, a.dtype());
        const Value masked = logical_and(eq(a, zero, l), ge(b, zero, l), l);
        gb = to_b(where(masked, zero, mul(g, mul(y, log(a, l), l), l), l));
      }
      return {ga, gb};
    }
    case OpKind::Maximum:
    case OpKind::Minimum: {
      const Value w = winner_weight(a, b, c.kind == OpKind::Maximum, l);
      return {c.need(0) ? to_a(mul(g, w, l)) : Value{}, c.need(1) ? to_b(mul(g, 1.0 - w, l)) : Value{}};
    }
    case OpKind::Eq:
    case OpKind::Ne:
    case OpKind::Lt:
    case OpKind::Le:
    case OpKind::Gt:
    case OpKind::Ge:
    case OpKind::LogicalAnd:
    case OpKind::LogicalOr: return {Value{}, Value{}};
    default: no_gradient(c.kind, c);
  }
}

std::vector<Value> ternary(const GradContext& c) {
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  if (c.kind == OpKind::Fma) {
    const Value &a = c.in[0], &b = c.in[1], &x = c.in[2];
    return {c.need(0) ? sum_to(mul(g, b, l), a.shape(), l) : Value{},
            c.need(1) ? sum_to(mul(g, a, l), b.shape(), l) : Value{}, c.need(2) ? sum_to(g, x.shape(), l) : Value{}};
  }
  if (c.kind == OpKind::Where) {
    const Value &cond = c.in[0], &a = c.in[1], &b = c.in[2];
    Value ga, gb;
    if (c.need(1)) ga = sum_to(where(cond, g, zeros_like(g), l), a.shape(), l);
    if (c.need(2)) gb = sum_to(where(cond, zeros_like(g), g, l), b.shape(), l);
    return {Value{}, ga, gb};
  }
  no_gradient(c.kind, c);
}

}  // namespace

std::vector<Value> grad_elementwise(const GradContext& c) {
  switch (op_family(c.kind)) {
    case OpFamily::Unary: return unary(c);
    case OpFamily::Binary: return binary(c);
    default: return ternary(c);
  }
}

}  // namespace trainrt::detail
