// ir/op_norm.cpp — batch and layer normalization, their training/evaluation forms and
// backward ops, with inference.
#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

Value batch_norm(const Value& x, const Value& gamma, const Value& beta, const Value& running_mean,
                 const Value& running_var, const BatchNormOptions& options, Loc loc) {
  if (!(options.momentum >= 0.0 && options.momentum <= 1.0) || !(options.eps > 0.0))
    fail(ErrorKind::InvalidArgument, cat("batch_norm at ", where(loc), ": momentum must be in [0, 1] and eps > 0"));
  if (running_mean.valid() != running_var.valid())
    fail(ErrorKind::InvalidArgument,
         cat("batch_norm at ", where(loc), ": give both running_mean and running_var, or neither"));
  for (const Value* v : {&running_mean, &running_var}) {
    if (!v->valid()) continue;
    const Node& n = v->impl()->node(v->node());
    if (n.kind != OpKind::Variable || std::get<VariableAttrs>(n.attrs).kind != VariableKind::state)
      fail(ErrorKind::InvalidArgument, cat("batch_norm at ", where(loc),
                                           ": running statistics must be state tensors made "
                                           "with Graph::state (got ",
                                           v->to_string(), ")"));
  }
  return add_op1(OpKind::BatchNorm, {x, gamma, beta, running_mean, running_var},
                 NormAttrs{options.momentum, options.eps, 1}, loc);
}

Value layer_norm(const Value& x, const Value& gamma, const Value& beta, const LayerNormOptions& options, Loc loc) {
  if (!(options.eps > 0.0)) fail(ErrorKind::InvalidArgument, cat("layer_norm at ", where(loc), ": eps must be > 0"));
  return add_op(OpKind::LayerNorm, {x, gamma, beta}, NormAttrs{0.0, options.eps, options.normalized_axes}, loc).front();
}

namespace detail {

std::vector<Value> batch_norm_train(const Value& x, const Value& gamma, const Value& beta, const NormAttrs& attrs,
                                    const Loc& loc) {
  return add_op(OpKind::BatchNormTrain, {x, gamma, beta}, attrs, loc);
}
Value batch_norm_eval(const Value& x, const Value& gamma, const Value& beta, const Value& mean, const Value& var,
                      const NormAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::BatchNormEval, {x, gamma, beta, mean, var}, attrs, loc);
}
std::vector<Value> batch_norm_backward(const Value& g, const Value& x, const Value& gamma, const Value& mean,
                                       const Value& var, const NormAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::BatchNormBackward, {g, x, gamma, mean, var}, attrs, loc);
}
std::vector<Value> layer_norm_backward(const Value& g, const Value& x, const Value& gamma, const Value& mean,
                                       const Value& rstd, const NormAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::LayerNormBackward, {g, x, gamma, mean, rstd}, attrs, loc);
}

namespace {

DType stats_dtype(DType d) { return d == DType::f64 ? DType::f64 : DType::f32; }

void check_vector(const InferContext& ctx, std::size_t i, const Shape& shape, const char* what) {
  if (!ctx.has(i)) return;
  if (!(ctx.in(i).shape == shape))
    ctx.fail(ErrorKind::ShapeMismatch, cat(what, " must have shape ", shape.to_string()));
}

}  // namespace

std::vector<TensorType> infer_norm(const InferContext& ctx) {
  const OpKind k = ctx.kind();
  const bool backward = k == OpKind::BatchNormBackward || k == OpKind::LayerNormBackward;
  const TensorType& x = ctx.in(backward ? 1 : 0);
  if (!is_floating(x.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "needs a floating dtype");
  switch (k) {
    case OpKind::BatchNorm:
    case OpKind::BatchNormTrain:
    case OpKind::BatchNormEval:
    case OpKind::BatchNormBackward: {
      if (x.shape.rank() < 2) ctx.fail(ErrorKind::ShapeMismatch, "x must be [N, C, ...]");
      const Shape c{x.shape[1]};
      const std::size_t base = backward ? 1 : 0;
      check_vector(ctx, base + 1, c, "gamma");
      if (ctx.has(base + 1) && ctx.in(base + 1).dtype != x.dtype)
        ctx.fail(ErrorKind::DTypeMismatch, "gamma must have the dtype of x");
      if (k == OpKind::BatchNormBackward) {
        if (!(ctx.in(0) == x)) ctx.fail(ErrorKind::ShapeMismatch, "gradient and x types differ");
        return {x, TensorType{x.dtype, c}, TensorType{x.dtype, c}};
      }
      check_vector(ctx, 2, c, "beta");
      if (ctx.has(2) && ctx.in(2).dtype != x.dtype) ctx.fail(ErrorKind::DTypeMismatch, "beta must have the dtype of x");
      if (k == OpKind::BatchNorm || k == OpKind::BatchNormEval) {
        check_vector(ctx, 3, c, "running_mean");
        check_vector(ctx, 4, c, "running_var");
        if (k == OpKind::BatchNormEval && (!ctx.has(3) || !ctx.has(4)))
          ctx.fail(ErrorKind::Internal, "batch_norm_eval needs statistics");
      }
      if (k == OpKind::BatchNormTrain) {
        if (x.shape.numel() / std::max<std::int64_t>(x.shape[1], 1) < 2 && x.shape.numel() > 0)
          ctx.fail(ErrorKind::ShapeMismatch, "training needs more than one value per channel");
        return {x, TensorType{stats_dtype(x.dtype), c}, TensorType{stats_dtype(x.dtype), c}};
      }
      return {x};
    }
    case OpKind::LayerNorm:
    case OpKind::LayerNormBackward: {
      const std::int64_t n = ctx.attrs<NormAttrs>().normalized_axes;
      if (n < 1 || n > x.shape.rank())
        ctx.fail(ErrorKind::InvalidArgument, cat("normalized_axes = ", n, " must be in [1, rank]"));
      const auto split = x.shape.dims().end() - n;
      const Shape lead(std::vector<std::int64_t>(x.shape.dims().begin(), split));
      const Shape trail(std::vector<std::int64_t>(split, x.shape.dims().end()));
      const std::size_t base = backward ? 1 : 0;
      check_vector(ctx, base + 1, trail, "gamma");
      if (ctx.has(base + 1) && ctx.in(base + 1).dtype != x.dtype)
        ctx.fail(ErrorKind::DTypeMismatch, "gamma must have the dtype of x");
      if (k == OpKind::LayerNormBackward) {
        if (!(ctx.in(0) == x)) ctx.fail(ErrorKind::ShapeMismatch, "gradient and x types differ");
        return {x, TensorType{x.dtype, trail}, TensorType{x.dtype, trail}};
      }
      check_vector(ctx, 2, trail, "beta");
      if (ctx.has(2) && ctx.in(2).dtype != x.dtype) ctx.fail(ErrorKind::DTypeMismatch, "beta must have the dtype of x");
      return {x, TensorType{stats_dtype(x.dtype), lead}, TensorType{stats_dtype(x.dtype), lead}};
    }
    default: break;
  }
  check_internal(false, "infer_norm: wrong op");
  return {};
}

}  // namespace detail
}  // namespace trainrt
