// ir/op_elementwise.cpp — unary, binary and ternary elementwise ops: the public functions,
// the operators, and their shape/dtype inference (numpy broadcasting, equal dtypes).
#include <cmath>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

namespace {

Value unary(OpKind kind, const Value& x, const Loc& loc, Attrs attrs = NoAttrs{}) {
  return add_op1(kind, {x}, std::move(attrs), loc);
}
Value binary(OpKind kind, const Value& a, const Value& b, const Loc& loc) {
  return add_op1(kind, {a, b}, NoAttrs{}, loc);
}

/// A rank-0 constant of `like`'s dtype holding `value`; integers must be representable.
Value scalar_like(const Value& like, double value, OpKind for_op, const Loc& loc) {
  if (!like.valid())
    fail(ErrorKind::InvalidArgument, cat(op_name(for_op), " at ", where(loc), ": the tensor operand is absent"));
  const DType dt = like.dtype();
  if (!is_floating(dt) && (std::nearbyint(value) != value || std::abs(value) > 9.007199254740992e15))
    fail(ErrorKind::DTypeMismatch, cat(op_name(for_op), " at ", where(loc), ": the scalar ", value,
                                       " is not representable in the operand's dtype ", name(dt), " (",
                                       like.to_string(), "); cast the tensor first"));
  return like.graph().scalar(value, dt, loc);
}

Value binary_scalar(OpKind kind, const Value& a, double b, const Loc& loc) {
  return binary(kind, a, scalar_like(a, b, kind, loc), loc);
}
Value scalar_binary(OpKind kind, double a, const Value& b, const Loc& loc) {
  return binary(kind, scalar_like(b, a, kind, loc), b, loc);
}

}  // namespace

Value neg(const Value& x, Loc loc) { return unary(OpKind::Neg, x, loc); }
Value abs(const Value& x, Loc loc) { return unary(OpKind::Abs, x, loc); }
Value sign(const Value& x, Loc loc) { return unary(OpKind::Sign, x, loc); }
Value exp(const Value& x, Loc loc) { return unary(OpKind::Exp, x, loc); }
Value log(const Value& x, Loc loc) { return unary(OpKind::Log, x, loc); }
Value sqrt(const Value& x, Loc loc) { return unary(OpKind::Sqrt, x, loc); }
Value rsqrt(const Value& x, Loc loc) { return unary(OpKind::Rsqrt, x, loc); }
Value sin(const Value& x, Loc loc) { return unary(OpKind::Sin, x, loc); }
Value cos(const Value& x, Loc loc) { return unary(OpKind::Cos, x, loc); }
Value floor(const Value& x, Loc loc) { return unary(OpKind::Floor, x, loc); }
Value tanh(const Value& x, Loc loc) { return unary(OpKind::Tanh, x, loc); }
Value sigmoid(const Value& x, Loc loc) { return unary(OpKind::Sigmoid, x, loc); }
Value relu(const Value& x, Loc loc) { return unary(OpKind::Relu, x, loc); }
Value gelu(const Value& x, GeluApproximation approximation, Loc loc) {
  return unary(OpKind::Gelu, x, loc, GeluAttrs{approximation == GeluApproximation::tanh});
}
Value logical_not(const Value& x, Loc loc) { return unary(OpKind::LogicalNot, x, loc); }
Value cast(const Value& x, DType dtype, Loc loc) {
  if (!x.valid()) fail(ErrorKind::InvalidArgument, cat("cast at ", where(loc), ": the operand is absent"));
  if (x.dtype() == dtype) return x;
  return add_op1(OpKind::Cast, {x}, NoAttrs{}, loc, {TensorType{dtype, x.shape()}});
}

Value add(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Add, a, b, loc); }
Value sub(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Sub, a, b, loc); }
Value mul(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Mul, a, b, loc); }
Value div(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Div, a, b, loc); }
Value pow(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Pow, a, b, loc); }
Value pow(const Value& a, double exponent, Loc loc) { return binary_scalar(OpKind::Pow, a, exponent, loc); }
Value maximum(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Maximum, a, b, loc); }
Value minimum(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Minimum, a, b, loc); }
Value fma(const Value& a, const Value& b, const Value& c, Loc loc) {
  return add_op1(OpKind::Fma, {a, b, c}, NoAttrs{}, loc);
}
Value clamp(const Value& x, double low, double high, Loc loc) {
  if (!(low <= high)) fail(ErrorKind::InvalidArgument, cat("clamp at ", where(loc), ": low ", low, " > high ", high));
  return binary_scalar(OpKind::Minimum, binary_scalar(OpKind::Maximum, x, low, loc), high, loc);
}

Value eq(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Eq, a, b, loc); }
Value ne(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Ne, a, b, loc); }
Value lt(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Lt, a, b, loc); }
Value le(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Le, a, b, loc); }
Value gt(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Gt, a, b, loc); }
Value ge(const Value& a, const Value& b, Loc loc) { return binary(OpKind::Ge, a, b, loc); }
Value logical_and(const Value& a, const Value& b, Loc loc) { return binary(OpKind::LogicalAnd, a, b, loc); }
Value logical_or(const Value& a, const Value& b, Loc loc) { return binary(OpKind::LogicalOr, a, b, loc); }
Value where(const Value& cond, const Value& a, const Value& b, Loc loc) {
  return add_op1(OpKind::Where, {cond, a, b}, NoAttrs{}, loc);
}

Value operator-(const Located& x) { return neg(x.value, x.loc); }
Value operator+(const Located& a, const Value& b) { return add(a.value, b, a.loc); }
Value operator-(const Located& a, const Value& b) { return sub(a.value, b, a.loc); }
Value operator*(const Located& a, const Value& b) { return mul(a.value, b, a.loc); }
Value operator/(const Located& a, const Value& b) { return div(a.value, b, a.loc); }
Value operator+(const Located& a, double b) { return binary_scalar(OpKind::Add, a.value, b, a.loc); }
Value operator-(const Located& a, double b) { return binary_scalar(OpKind::Sub, a.value, b, a.loc); }
Value operator*(const Located& a, double b) { return binary_scalar(OpKind::Mul, a.value, b, a.loc); }
Value operator/(const Located& a, double b) { return binary_scalar(OpKind::Div, a.value, b, a.loc); }
Value operator+(double a, const Located& b) { return scalar_binary(OpKind::Add, a, b.value, b.loc); }
Value operator-(double a, const Located& b) { return scalar_binary(OpKind::Sub, a, b.value, b.loc); }
Value operator*(double a, const Located& b) { return scalar_binary(OpKind::Mul, a, b.value, b.loc); }
Value operator/(double a, const Located& b) { return scalar_binary(OpKind::Div, a, b.value, b.loc); }

namespace detail {

namespace {

enum class Domain { floating, numeric, boolean, any };

bool in_domain(DType dt, Domain d) {
  switch (d) {
    case Domain::floating: return is_floating(dt);
    case Domain::numeric: return is_floating(dt) || is_integer(dt);
    case Domain::boolean: return dt == DType::boolean;
    case Domain::any: return true;
  }
  return false;
}

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::floating: return "a floating dtype (f32, f64, f16, bf16)";
    case Domain::numeric: return "a numeric dtype (floating or i32/i64)";
    case Domain::boolean: return "bool";
    case Domain::any: return "any dtype";
  }
  return "?";
}

Domain operand_domain(OpKind k) {
  switch (k) {
    case OpKind::Neg:
    case OpKind::Abs:
    case OpKind::Sign:
    case OpKind::Relu:
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Maximum:
    case OpKind::Minimum:
    case OpKind::Lt:
    case OpKind::Le:
    case OpKind::Gt:
    case OpKind::Ge:
    case OpKind::Fma: return Domain::numeric;
    case OpKind::LogicalNot:
    case OpKind::LogicalAnd:
    case OpKind::LogicalOr: return Domain::boolean;
    case OpKind::Eq:
    case OpKind::Ne:
    case OpKind::Cast:
    case OpKind::Where: return Domain::any;
    default: return Domain::floating;
  }
}

Shape broadcast_all(const InferContext& ctx, std::size_t first) {
  Shape s = ctx.in(first).shape;
  for (std::size_t i = first + 1; i < ctx.num_inputs(); ++i) {
    const Shape& t = ctx.in(i).shape;
    try {
      s = broadcast_shapes(s, t);
    } catch (const Error&) {
      ctx.fail(ErrorKind::ShapeMismatch, "operand shapes do not broadcast");
    }
  }
  return s;
}

}  // namespace

std::vector<TensorType> infer_elementwise(const InferContext& ctx) {
  const OpKind k = ctx.kind();
  const std::size_t arity = op_family(k) == OpFamily::Unary ? 1 : op_family(k) == OpFamily::Binary ? 2 : 3;
  if (ctx.num_inputs() != arity) ctx.fail(ErrorKind::Internal, cat("expects ", arity, " operands"));
  for (std::size_t i = 0; i < arity; ++i) (void)ctx.in(i);  // every operand is required

  if (k == OpKind::Cast) return {TensorType{ctx.requested_type().dtype, ctx.in(0).shape}};

  // where(cond, a, b): cond is bool, a and b share a dtype.
  const std::size_t first_value = k == OpKind::Where ? 1 : 0;
  if (k == OpKind::Where && ctx.in(0).dtype != DType::boolean)
    ctx.fail(ErrorKind::DTypeMismatch, "the condition must be bool");
  const DType dt = ctx.in(first_value).dtype;
  for (std::size_t i = first_value + 1; i < arity; ++i)
    if (ctx.in(i).dtype != dt)
      ctx.fail(ErrorKind::DTypeMismatch, "operands must have the same dtype (no implicit promotion; use cast())");
  const Domain domain = operand_domain(k);
  if (!in_domain(dt, domain))
    ctx.fail(ErrorKind::DTypeMismatch, cat("needs ", domain_name(domain), ", got ", name(dt)));

  const Shape shape = broadcast_all(ctx, 0);
  const DType out = is_predicate(k) ? DType::boolean : dt;
  return {TensorType{out, shape}};
}

}  // namespace detail
}  // namespace trainrt

namespace trainrt::detail {

Value relu_backward(const Value& g, const Value& x, const Loc& loc) {
  return add_op1(OpKind::ReluBackward, {g, x}, NoAttrs{}, loc);
}
Value gelu_backward(const Value& g, const Value& x, bool tanh_approximation, const Loc& loc) {
  return add_op1(OpKind::GeluBackward, {g, x}, GeluAttrs{tanh_approximation}, loc);
}
Value sigmoid_backward(const Value& g, const Value& y, const Loc& loc) {
  return add_op1(OpKind::SigmoidBackward, {g, y}, NoAttrs{}, loc);
}
Value tanh_backward(const Value& g, const Value& y, const Loc& loc) {
  return add_op1(OpKind::TanhBackward, {g, y}, NoAttrs{}, loc);
}

}  // namespace trainrt::detail
