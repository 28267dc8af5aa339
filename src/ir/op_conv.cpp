// ir/op_conv.cpp — 2-D convolution and pooling (NCHW), their backward ops, and inference.
#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

Value conv2d(const Value& x, const Value& weight, const Value& bias, const Conv2dOptions& o, Loc loc) {
  return add_op1(OpKind::Conv2d, {x, weight, bias}, Conv2dAttrs{o.stride, o.padding, o.dilation, o.groups}, loc);
}

namespace {
Pool2dAttrs pool_attrs(const Pool2dOptions& o) {
  return Pool2dAttrs{o.kernel, o.stride.value_or(o.kernel), o.padding, o.ceil_mode, o.count_include_pad};
}
}  // namespace

Value max_pool2d(const Value& x, const Pool2dOptions& options, Loc loc) {
  return add_op1(OpKind::MaxPool2d, {x}, pool_attrs(options), loc);
}
Value avg_pool2d(const Value& x, const Pool2dOptions& options, Loc loc) {
  return add_op1(OpKind::AvgPool2d, {x}, pool_attrs(options), loc);
}
Value global_avg_pool2d(const Value& x, Loc loc) {
  if (!x.valid() || x.rank() != 4)
    fail(ErrorKind::ShapeMismatch,
         cat("global_avg_pool2d at ", where(loc), ": needs x[N, C, H, W], got ", x.to_string()));
  return mean(x, {2, 3}, false, loc);
}

namespace detail {

Value conv2d_backward_data(const Value& g, const Value& weight, const Shape& x_shape, const Conv2dAttrs& attrs,
                           const Loc& loc) {
  return add_op1(OpKind::Conv2dBackwardData, {g, weight}, attrs, loc, {TensorType{g.dtype(), x_shape}});
}
Value conv2d_backward_weight(const Value& g, const Value& x, const Shape& w_shape, const Conv2dAttrs& attrs,
                             const Loc& loc) {
  return add_op1(OpKind::Conv2dBackwardWeight, {g, x}, attrs, loc, {TensorType{g.dtype(), w_shape}});
}
Value max_pool2d_backward(const Value& g, const Value& x, const Value& y, const Pool2dAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::MaxPool2dBackward, {g, x, y}, attrs, loc);
}
Value avg_pool2d_backward(const Value& g, const Shape& x_shape, const Pool2dAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::AvgPool2dBackward, {g}, attrs, loc, {TensorType{g.dtype(), x_shape}});
}

namespace {

std::int64_t conv_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, std::int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

std::int64_t pool_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p, bool ceil_mode) {
  const std::int64_t span = in + 2 * p - k;
  std::int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;  // the last window must start inside the input or left padding
  return out;
}

Shape conv_output_shape(const InferContext& ctx, const Shape& x, const Shape& w) {
  const auto& a = ctx.attrs<Conv2dAttrs>();
  for (int i = 0; i < 2; ++i) {
    if (a.stride[i] < 1 || a.dilation[i] < 1 || a.padding[i] < 0)
      ctx.fail(ErrorKind::InvalidArgument, "stride and dilation must be >= 1 and padding >= 0");
  }
  if (x.rank() != 4) ctx.fail(ErrorKind::ShapeMismatch, "x must be [N, C, H, W]");
  if (w.rank() != 4) ctx.fail(ErrorKind::ShapeMismatch, "weight must be [O, C/groups, KH, KW]");
  if (a.groups < 1 || x[1] % a.groups != 0 || w[0] % a.groups != 0)
    ctx.fail(ErrorKind::ShapeMismatch, cat("groups = ", a.groups, " must divide the input channels (", x[1],
                                           ") and the output channels (", w[0], ")"));
  if (w[1] * a.groups != x[1])
    ctx.fail(ErrorKind::ShapeMismatch, cat("weight has ", w[1], " input channels per group, x has ", x[1],
                                           " channels in ", a.groups, " group(s)"));
  const std::int64_t oh = conv_out(x[2], w[2], a.stride[0], a.padding[0], a.dilation[0]);
  const std::int64_t ow = conv_out(x[3], w[3], a.stride[1], a.padding[1], a.dilation[1]);
  if (oh < 1 || ow < 1) ctx.fail(ErrorKind::ShapeMismatch, "the kernel does not fit in the padded input");
  return Shape{x[0], w[0], oh, ow};
}

Shape pool_output_shape(const InferContext& ctx, const Shape& x) {
  const auto& a = ctx.attrs<Pool2dAttrs>();
  if (x.rank() != 4) ctx.fail(ErrorKind::ShapeMismatch, "x must be [N, C, H, W]");
  for (int i = 0; i < 2; ++i) {
    if (a.kernel[i] < 1 || a.stride[i] < 1 || a.padding[i] < 0)
      ctx.fail(ErrorKind::InvalidArgument, "kernel and stride must be >= 1 and padding >= 0");
    if (a.padding[i] * 2 > a.kernel[i]) ctx.fail(ErrorKind::InvalidArgument, "padding must be at most half the kernel");
  }
  const std::int64_t oh = pool_out(x[2], a.kernel[0], a.stride[0], a.padding[0], a.ceil_mode);
  const std::int64_t ow = pool_out(x[3], a.kernel[1], a.stride[1], a.padding[1], a.ceil_mode);
  if (oh < 1 || ow < 1) ctx.fail(ErrorKind::ShapeMismatch, "the window does not fit in the padded input");
  return Shape{x[0], x[1], oh, ow};
}

void require_floating_same(const InferContext& ctx) {
  const DType dt = ctx.in(0).dtype;
  if (!is_floating(dt)) ctx.fail(ErrorKind::DTypeMismatch, "needs a floating dtype");
  for (std::size_t i = 1; i < ctx.num_inputs(); ++i)
    if (ctx.has(i) && ctx.in(i).dtype != dt) ctx.fail(ErrorKind::DTypeMismatch, "operands must have the same dtype");
}

}  // namespace

std::vector<TensorType> infer_conv_pool(const InferContext& ctx) {
  require_floating_same(ctx);
  const DType dt = ctx.in(0).dtype;
  switch (ctx.kind()) {
    case OpKind::Conv2d: {
      const Shape out = conv_output_shape(ctx, ctx.in(0).shape, ctx.in(1).shape);
      if (ctx.has(2) && !(ctx.in(2).shape == Shape{out[1]}))
        ctx.fail(ErrorKind::ShapeMismatch, cat("bias must have shape [", out[1], "]"));
      return {TensorType{dt, out}};
    }
    case OpKind::Conv2dBackwardData: {
      const Shape& x = ctx.requested_type().shape;
      if (!(conv_output_shape(ctx, x, ctx.in(1).shape) == ctx.in(0).shape))
        ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match the convolution");
      return {TensorType{dt, x}};
    }
    case OpKind::Conv2dBackwardWeight: {
      const Shape& w = ctx.requested_type().shape;
      if (!(conv_output_shape(ctx, ctx.in(1).shape, w) == ctx.in(0).shape))
        ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match the convolution");
      return {TensorType{dt, w}};
    }
    case OpKind::MaxPool2d:
    case OpKind::AvgPool2d: return {TensorType{dt, pool_output_shape(ctx, ctx.in(0).shape)}};
    case OpKind::MaxPool2dBackward:
      if (!(pool_output_shape(ctx, ctx.in(1).shape) == ctx.in(0).shape) || !(ctx.in(2) == ctx.in(0)))
        ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match the pooling");
      return {ctx.in(1)};
    case OpKind::AvgPool2dBackward: {
      const Shape& x = ctx.requested_type().shape;
      if (!(pool_output_shape(ctx, x) == ctx.in(0).shape))
        ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match the pooling");
      return {TensorType{dt, x}};
    }
    default: break;
  }
  check_internal(false, "infer_conv_pool: wrong op");
  return {};
}

}  // namespace detail
}  // namespace trainrt
