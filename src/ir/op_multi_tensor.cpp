// ir/op_multi_tensor.cpp — ops that read many tensors in one pass, with their inference.
//
// gradient_stats: N floating tensors (any shapes, f16/bf16/f32/f64 mixed) -> {found: bool[],
//                 sum_of_squares: f32[]}. found is true when any element is infinite or NaN;
//                 sum_of_squares is the sum over every element of every tensor of its
//                 square. The gradient guard (optim/gradient_guard.h) builds it once per step
//                 over the raw gradients: loss scaling reads found, clipping the norm
//                 sqrt(sum_of_squares) (divided by the loss scale). One kernel instead of a
//                 reduction per gradient (DESIGN decision 5).
#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> gradient_stats(const std::vector<Value>& grads, const Loc& loc) {
  return add_op(OpKind::GradientStats, grads, NoAttrs{}, loc);
}

std::vector<TensorType> infer_multi_tensor(const InferContext& ctx) {
  check_internal(ctx.kind() == OpKind::GradientStats, "infer_multi_tensor: not a multi-tensor op");
  const std::size_t n = ctx.node().inputs.size();
  if (n == 0) ctx.fail(ErrorKind::InvalidArgument, "gradient_stats needs at least one tensor");
  for (std::size_t i = 0; i < n; ++i) {
    if (!ctx.has(i)) ctx.fail(ErrorKind::InvalidArgument, cat("gradient_stats: tensor ", i, " is absent"));
    if (!is_floating(ctx.in(i).dtype))
      ctx.fail(ErrorKind::DTypeMismatch,
               cat("gradient_stats: tensor ", i, " is ", name(ctx.in(i).dtype), "; gradients are floating"));
  }
  return {TensorType{DType::boolean, Shape{}}, TensorType{DType::f32, Shape{}}};
}

}  // namespace trainrt::detail
