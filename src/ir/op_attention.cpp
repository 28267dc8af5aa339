// ir/op_attention.cpp — scaled dot-product attention and its backward op, with inference.
#include <cmath>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

Value scaled_dot_product_attention(const Value& q, const Value& k, const Value& v, const AttentionOptions& options,
                                   Loc loc) {
  if (!q.valid()) fail(ErrorKind::InvalidArgument, cat("attention at ", where(loc), ": q is absent"));
  if (q.rank() < 2 || q.shape()[q.rank() - 1] == 0)
    fail(ErrorKind::ShapeMismatch,
         cat("attention at ", where(loc), ": q must be [..., Lq, D] with D > 0, got ", q.to_string()));
  const double scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape()[q.rank() - 1])));
  if (!std::isfinite(scale))
    fail(ErrorKind::InvalidArgument, cat("attention at ", where(loc), ": the scale is not finite"));
  return add_op(OpKind::Attention, {q, k, v, options.mask}, AttentionAttrs{options.causal, scale}, loc).front();
}

namespace detail {

std::vector<Value> attention_backward(const Value& g, const Value& q, const Value& k, const Value& v, const Value& mask,
                                      const Value& out, const Value& lse, const AttentionAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::AttentionBackward, {g, q, k, v, mask, out, lse}, attrs, loc);
}

std::vector<TensorType> infer_attention(const InferContext& ctx) {
  const bool backward = ctx.kind() == OpKind::AttentionBackward;
  const std::size_t b = backward ? 1 : 0;
  const TensorType &q = ctx.in(b), &k = ctx.in(b + 1), &v = ctx.in(b + 2);
  if (!is_floating(q.dtype) || k.dtype != q.dtype || v.dtype != q.dtype)
    ctx.fail(ErrorKind::DTypeMismatch, "q, k and v need one floating dtype");
  const std::int64_t r = q.shape.rank();
  if (r < 2 || k.shape.rank() != r || v.shape.rank() != r)
    ctx.fail(ErrorKind::ShapeMismatch, "q, k and v must have one rank >= 2: [..., L, D]");
  for (std::int64_t i = 0; i < r - 2; ++i)
    if (k.shape[i] != q.shape[i] || v.shape[i] != q.shape[i])
      ctx.fail(ErrorKind::ShapeMismatch, "q, k and v must have equal leading (batch, head) axes");
  if (k.shape[r - 1] != q.shape[r - 1]) ctx.fail(ErrorKind::ShapeMismatch, "q and k must have the same feature size D");
  if (v.shape[r - 2] != k.shape[r - 2]) ctx.fail(ErrorKind::ShapeMismatch, "k and v must have the same length Lk");
  std::vector<std::int64_t> dims = q.shape.dims();
  dims.back() = v.shape[r - 1];
  const Shape out(dims);
  std::vector<std::int64_t> score = q.shape.dims();
  score.back() = k.shape[r - 2];
  if (ctx.has(b + 3)) {
    const TensorType& m = ctx.in(b + 3);
    if (m.dtype != DType::boolean) ctx.fail(ErrorKind::DTypeMismatch, "the mask must be bool (true = attend)");
    bool ok = m.shape.rank() <= r;
    for (std::int64_t i = 0; ok && i < m.shape.rank(); ++i) {
      const std::int64_t d = m.shape[i], s = score[static_cast<std::size_t>(r - m.shape.rank() + i)];
      ok = d == s || d == 1;
    }
    if (!ok)
      ctx.fail(ErrorKind::ShapeMismatch, cat("the mask must broadcast to the scores ", Shape(score).to_string()));
  }
  std::vector<std::int64_t> lse_dims(q.shape.dims().begin(), q.shape.dims().end() - 1);
  const TensorType lse{q.dtype == DType::f64 ? DType::f64 : DType::f32, Shape(lse_dims)};
  if (backward) {
    if (!(ctx.in(0).shape == out)) ctx.fail(ErrorKind::ShapeMismatch, "gradient shape does not match the output");
    return {q, k, v};
  }
  return {TensorType{q.dtype, out}, lse};
}

}  // namespace detail
}  // namespace trainrt
