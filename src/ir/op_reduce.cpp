// ir/op_reduce.cpp — sum, mean and max over axes, with their inference.
#include <algorithm>

#include "core/error.h"
#include "ir/builder.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

namespace {

Value reduce(OpKind kind, const Value& x, const Axes& axes, bool keepdims, const Loc& loc) {
  if (!x.valid()) fail(ErrorKind::InvalidArgument, cat(op_name(kind), " at ", where(loc), ": the operand is absent"));
  std::vector<std::int64_t> norm;
  if (axes.empty()) {
    for (std::int64_t i = 0; i < x.rank(); ++i) norm.push_back(i);
  } else {
    for (std::int64_t a : axes) {
      const std::int64_t n = a < 0 ? a + x.rank() : a;
      if (n < 0 || n >= x.rank())
        fail(ErrorKind::InvalidArgument,
             cat(op_name(kind), " at ", where(loc), ": axis ", a, " is out of range for ", x.to_string()));
      norm.push_back(n);
    }
    std::sort(norm.begin(), norm.end());
    if (std::adjacent_find(norm.begin(), norm.end()) != norm.end())
      fail(ErrorKind::InvalidArgument, cat(op_name(kind), " at ", where(loc), ": an axis is repeated"));
  }
  return add_op1(kind, {x}, ReduceAttrs{norm, keepdims}, loc);
}

}  // namespace

Value sum(const Value& x, const Axes& axes, bool keepdims, Loc loc) {
  return reduce(OpKind::ReduceSum, x, axes, keepdims, loc);
}
Value mean(const Value& x, const Axes& axes, bool keepdims, Loc loc) {
  return reduce(OpKind::ReduceMean, x, axes, keepdims, loc);
}
Value max(const Value& x, const Axes& axes, bool keepdims, Loc loc) {
  return reduce(OpKind::ReduceMax, x, axes, keepdims, loc);
}

namespace detail {

std::vector<TensorType> infer_reduce(const InferContext& ctx) {
  const TensorType& x = ctx.in(0);
  const auto& a = ctx.attrs<ReduceAttrs>();
  if (ctx.kind() == OpKind::ReduceMax ? x.dtype == DType::boolean : !is_floating(x.dtype) && !is_integer(x.dtype))
    ctx.fail(ErrorKind::DTypeMismatch, cat("cannot reduce ", name(x.dtype)));
  if (ctx.kind() == OpKind::ReduceMean && !is_floating(x.dtype))
    ctx.fail(ErrorKind::DTypeMismatch, "mean needs a floating dtype (cast first)");
  std::vector<std::int64_t> dims;
  for (std::int64_t i = 0; i < x.shape.rank(); ++i) {
    const bool reduced = std::binary_search(a.axes.begin(), a.axes.end(), i);
    if (reduced && ctx.kind() == OpKind::ReduceMax && x.shape[i] == 0)
      ctx.fail(ErrorKind::ShapeMismatch, "max over an empty axis");
    if (!reduced) dims.push_back(x.shape[i]);
    else if (a.keepdims) dims.push_back(1);
  }
  return {TensorType{x.dtype, Shape(dims)}};
}

}  // namespace detail
}  // namespace trainrt
