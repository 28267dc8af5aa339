// ir/op_nn.cpp — softmax, log-softmax, cross-entropy, embedding and dropout (public ops and
// their backward ops), with inference.
#include <cmath>

#include "core/error.h"
#include "core/hash.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

namespace {
std::int64_t axis_of(const Value& x, std::int64_t axis, std::string_view op, const Loc& loc) {
  if (!x.valid()) fail(ErrorKind::InvalidArgument, cat(op, " at ", where(loc), ": the operand is absent"));
  try {
    return normalize_axis(axis, x.rank());
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat(op, " at ", where(loc), ": ", e.what(), " (", x.to_string(), ")"));
  }
}
}  // namespace

Value softmax(const Value& x, std::int64_t axis, Loc loc) {
  return add_op1(OpKind::Softmax, {x}, AxisAttrs{axis_of(x, axis, "softmax", loc)}, loc);
}

Value log_softmax(const Value& x, std::int64_t axis, Loc loc) {
  return add_op1(OpKind::LogSoftmax, {x}, AxisAttrs{axis_of(x, axis, "log_softmax", loc)}, loc);
}

Value cross_entropy(const Value& logits, const Value& labels, const CrossEntropyOptions& options, Loc loc) {
  if (!(options.label_smoothing >= 0.0 && options.label_smoothing < 1.0))
    fail(ErrorKind::InvalidArgument,
         cat("cross_entropy at ", where(loc), ": label_smoothing must be in [0, 1), got ", options.label_smoothing));
  return add_op(OpKind::CrossEntropy, {logits, labels},
                CrossEntropyAttrs{options.ignore_index, options.label_smoothing}, loc)
      .front();
}

Value embedding(const Value& table, const Value& indices, Loc loc) {
  return add_op1(OpKind::Embedding, {table, indices}, NoAttrs{}, loc);
}

Value dropout(const Value& x, double p, Loc loc) {
  if (!(p >= 0.0 && p < 1.0))
    fail(ErrorKind::InvalidArgument, cat("dropout at ", where(loc), ": p must be in [0, 1), got ", p));
  if (!x.valid()) fail(ErrorKind::InvalidArgument, cat("dropout at ", where(loc), ": the operand is absent"));
  if (p == 0.0) return x;
  // The key names this dropout's random stream. It depends only on where the node sits in
  // the graph, so the same model built twice draws the same masks; the seed is mixed in
  // when the graph is lowered for training. Gradients reuse the key, hence the mask.
  const std::uint64_t key = hash_combine(0x64726f706f7574ull, static_cast<std::uint64_t>(x.impl()->size()));
  return add_op1(OpKind::Dropout, {x}, DropoutAttrs{p, key}, loc);
}

namespace detail {

Value softmax_backward(const Value& g, const Value& y, std::int64_t axis, const Loc& loc) {
  return add_op1(OpKind::SoftmaxBackward, {g, y}, AxisAttrs{axis}, loc);
}
Value log_softmax_backward(const Value& g, const Value& y, std::int64_t axis, const Loc& loc) {
  return add_op1(OpKind::LogSoftmaxBackward, {g, y}, AxisAttrs{axis}, loc);
}
Value cross_entropy_backward(const Value& g, const Value& logits, const Value& labels, const Value& lse,
                             const CrossEntropyAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::CrossEntropyBackward, {g, logits, labels, lse}, attrs, loc);
}
Value embedding_backward(const Value& g, const Value& indices, std::int64_t rows, const Loc& loc) {
  const std::int64_t dim = g.shape()[g.rank() - 1];
  return add_op1(OpKind::EmbeddingBackward, {g, indices}, NoAttrs{}, loc, {TensorType{g.dtype(), Shape{rows, dim}}});
}
Value dropout_apply(const Value& x, const Value& step, const DropoutAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::DropoutApply, {x, step}, attrs, loc);
}

namespace {
DType stats_dtype(DType d) { return d == DType::f64 ? DType::f64 : DType::f32; }
}  // namespace

std::vector<TensorType> infer_softmax_loss(const InferContext& ctx) {
  const TensorType& x = ctx.in(0);
  switch (ctx.kind()) {
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
      if (!is_floating(x.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "needs a floating dtype");
      if (ctx.attrs<AxisAttrs>().axis >= x.shape.rank()) ctx.fail(ErrorKind::InvalidArgument, "axis out of range");
      return {x};
    case OpKind::SoftmaxBackward:
    case OpKind::LogSoftmaxBackward:
      if (!(ctx.in(1) == x)) ctx.fail(ErrorKind::ShapeMismatch, "gradient and output types differ");
      return {x};
    case OpKind::CrossEntropy: {
      const TensorType& labels = ctx.in(1);
      if (!is_floating(x.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "logits need a floating dtype");
      if (!is_integer(labels.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "labels need an integer dtype (i32 or i64)");
      if (x.shape.rank() < 1) ctx.fail(ErrorKind::ShapeMismatch, "logits need a class axis (the last axis)");
      const std::vector<std::int64_t> lead(x.shape.dims().begin(), x.shape.dims().end() - 1);
      if (!(labels.shape == Shape(lead)))
        ctx.fail(ErrorKind::ShapeMismatch, cat("labels must have shape ", Shape(lead).to_string(),
                                               " (the logits' shape without the class axis)"));
      if (x.shape[x.shape.rank() - 1] == 0) ctx.fail(ErrorKind::ShapeMismatch, "there are no classes");
      return {TensorType{x.dtype, Shape{}}, TensorType{stats_dtype(x.dtype), labels.shape}};
    }
    case OpKind::CrossEntropyBackward:
      if (ctx.in(0).shape.rank() != 0) ctx.fail(ErrorKind::ShapeMismatch, "the incoming gradient must be a scalar");
      return {ctx.in(1)};
    default: break;
  }
  check_internal(false, "infer_softmax_loss: wrong op");
  return {};
}

std::vector<TensorType> infer_random_embedding(const InferContext& ctx) {
  switch (ctx.kind()) {
    case OpKind::Dropout:
      if (!is_floating(ctx.in(0).dtype)) ctx.fail(ErrorKind::DTypeMismatch, "needs a floating dtype");
      return {ctx.in(0)};
    case OpKind::DropoutApply:
      if (ctx.in(1).dtype != DType::i64 || ctx.in(1).shape.rank() != 0)
        ctx.fail(ErrorKind::Internal, "the step operand must be an i64 scalar");
      return {ctx.in(0)};
    case OpKind::Embedding: {
      const TensorType& table = ctx.in(0);
      const TensorType& idx = ctx.in(1);
      if (table.shape.rank() != 2) ctx.fail(ErrorKind::ShapeMismatch, "the table must have rank 2 [count, dim]");
      if (!is_floating(table.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "the table needs a floating dtype");
      if (!is_integer(idx.dtype)) ctx.fail(ErrorKind::DTypeMismatch, "indices need an integer dtype (i32 or i64)");
      std::vector<std::int64_t> dims = idx.shape.dims();
      dims.push_back(table.shape[1]);
      return {TensorType{table.dtype, Shape(dims)}};
    }
    case OpKind::EmbeddingBackward: {
      const TensorType& t = ctx.requested_type();
      std::vector<std::int64_t> dims = ctx.in(1).shape.dims();
      dims.push_back(t.shape[1]);
      if (!(ctx.in(0).shape == Shape(dims)))
        ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match indices");
      return {t};
    }
    default: break;
  }
  check_internal(false, "infer_random_embedding: wrong op");
  return {};
}

}  // namespace detail
}  // namespace trainrt
