// ir/op_shape.cpp — ops that move data without arithmetic: reshape, permute, slice, concat,
// broadcast_to (and the helpers built on them), with their inference.
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

namespace {
void require(const Value& x, std::string_view op, const Loc& loc) {
  if (!x.valid()) fail(ErrorKind::InvalidArgument, cat(op, " at ", where(loc), ": the operand is absent"));
}
}  // namespace

Value reshape(const Value& x, const std::vector<std::int64_t>& shape, Loc loc) {
  require(x, "reshape", loc);
  std::vector<std::int64_t> dims = shape;
  std::int64_t known = 1, infer_at = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (infer_at >= 0)
        fail(ErrorKind::InvalidArgument,
             cat("reshape at ", where(loc), ": only one dimension may be -1 (", x.to_string(), ")"));
      infer_at = static_cast<std::int64_t>(i);
    } else if (dims[i] < 0) {
      fail(ErrorKind::InvalidArgument, cat("reshape at ", where(loc), ": dimension ", i, " is ", dims[i]));
    } else {
      known *= dims[i];
    }
  }
  const std::int64_t n = x.shape().numel();
  if (infer_at >= 0) {
    if (known == 0 || n % known != 0)
      fail(ErrorKind::ShapeMismatch, cat("reshape at ", where(loc), ": cannot infer the -1 dimension: ", n,
                                         " elements do not divide by ", known, " (", x.to_string(), ")"));
    dims[static_cast<std::size_t>(infer_at)] = n / known;
  }
  Shape target(std::move(dims));
  if (target == x.shape()) return x;
  return add_op1(OpKind::Reshape, {x}, NoAttrs{}, loc, {TensorType{x.dtype(), target}});
}

Value permute(const Value& x, const std::vector<std::int64_t>& perm, Loc loc) {
  require(x, "permute", loc);
  const std::int64_t rank = x.rank();
  std::vector<std::int64_t> p(perm.size());
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  bool ok = static_cast<std::int64_t>(perm.size()) == rank;
  for (std::size_t i = 0; ok && i < perm.size(); ++i) {
    const std::int64_t a = perm[i] < 0 ? perm[i] + rank : perm[i];
    ok = a >= 0 && a < rank && !seen[static_cast<std::size_t>(a)];
    if (ok) seen[static_cast<std::size_t>(a)] = true, p[i] = a;
  }
  if (!ok) {
    std::string s;
    for (auto a : perm) s += (s.empty() ? "" : ",") + std::to_string(a);
    fail(ErrorKind::InvalidArgument,
         cat("permute at ", where(loc), ": [", s, "] is not a permutation of the ", rank, " axes of ", x.to_string()));
  }
  bool identity = true;
  for (std::size_t i = 0; i < p.size(); ++i) identity = identity && p[i] == static_cast<std::int64_t>(i);
  if (identity) return x;
  return add_op1(OpKind::Permute, {x}, PermAttrs{p}, loc);
}

Value transpose(const Value& x, std::int64_t axis0, std::int64_t axis1, Loc loc) {
  require(x, "transpose", loc);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(x.rank()));
  std::iota(perm.begin(), perm.end(), 0);
  std::int64_t a = 0, b = 0;
  try {
    a = normalize_axis(axis0, x.rank());
    b = normalize_axis(axis1, x.rank());
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat("transpose at ", where(loc), ": ", e.what(), " (", x.to_string(), ")"));
  }
  std::swap(perm[static_cast<std::size_t>(a)], perm[static_cast<std::size_t>(b)]);
  return permute(x, perm, loc);
}

Value slice(const Value& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step, Loc loc) {
  require(x, "slice", loc);
  std::int64_t a = 0;
  try {
    a = normalize_axis(axis, x.rank());
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat("slice at ", where(loc), ": ", e.what(), " (", x.to_string(), ")"));
  }
  if (step < 1) fail(ErrorKind::InvalidArgument, cat("slice at ", where(loc), ": step must be >= 1, got ", step));
  const std::int64_t dim = x.shape()[a];
  auto clip = [dim](std::int64_t i) { return std::clamp(i < 0 ? i + dim : i, std::int64_t{0}, dim); };
  const std::int64_t s = clip(start), e = clip(end);
  const std::int64_t count = e > s ? (e - s + step - 1) / step : 0;
  if (s == 0 && count == dim && step == 1) return x;
  std::vector<std::int64_t> dims = x.shape().dims();
  dims[static_cast<std::size_t>(a)] = count;
  return add_op1(OpKind::Slice, {x}, SliceAttrs{a, s, step}, loc, {TensorType{x.dtype(), Shape(dims)}});
}

Value concat(const std::vector<Value>& values, std::int64_t axis, Loc loc) {
  if (values.empty()) fail(ErrorKind::InvalidArgument, cat("concat at ", where(loc), ": no values"));
  for (const Value& v : values) require(v, "concat", loc);
  std::int64_t a = 0;
  try {
    a = normalize_axis(axis, values[0].rank());
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat("concat at ", where(loc), ": ", e.what()));
  }
  if (values.size() == 1) return values[0];
  return add_op1(OpKind::Concat, values, AxisAttrs{a}, loc);
}

Value broadcast_to(const Value& x, const Shape& shape, Loc loc) {
  require(x, "broadcast_to", loc);
  if (x.shape() == shape) return x;
  return add_op1(OpKind::BroadcastTo, {x}, NoAttrs{}, loc, {TensorType{x.dtype(), shape}});
}

Value unsqueeze(const Value& x, std::int64_t axis, Loc loc) {
  require(x, "unsqueeze", loc);
  const std::int64_t a = axis < 0 ? axis + x.rank() + 1 : axis;
  if (a < 0 || a > x.rank())
    fail(ErrorKind::InvalidArgument,
         cat("unsqueeze at ", where(loc), ": axis ", axis, " out of range for ", x.to_string()));
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.insert(dims.begin() + a, 1);
  return reshape(x, dims, loc);
}

Value squeeze(const Value& x, std::int64_t axis, Loc loc) {
  require(x, "squeeze", loc);
  std::int64_t a = 0;
  try {
    a = normalize_axis(axis, x.rank());
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat("squeeze at ", where(loc), ": ", e.what()));
  }
  if (x.shape()[a] != 1)
    fail(ErrorKind::ShapeMismatch, cat("squeeze at ", where(loc), ": axis ", axis, " of ", x.to_string(), " is not 1"));
  std::vector<std::int64_t> dims = x.shape().dims();
  dims.erase(dims.begin() + a);
  return reshape(x, dims, loc);
}

Value flatten(const Value& x, std::int64_t start, std::int64_t end, Loc loc) {
  require(x, "flatten", loc);
  if (x.rank() == 0) return reshape(x, {1}, loc);
  std::int64_t s = 0, e = 0;
  try {
    s = normalize_axis(start, x.rank());
    e = normalize_axis(end, x.rank());
  } catch (const Error& err) {
    fail(ErrorKind::InvalidArgument, cat("flatten at ", where(loc), ": ", err.what()));
  }
  if (s > e) fail(ErrorKind::InvalidArgument, cat("flatten at ", where(loc), ": start axis after end axis"));
  std::vector<std::int64_t> dims;
  std::int64_t merged = 1;
  for (std::int64_t i = 0; i < x.rank(); ++i) {
    if (i < s || i > e) {
      dims.push_back(x.shape()[i]);
    } else {
      merged *= x.shape()[i];
      if (i == e) dims.push_back(merged);
    }
  }
  return reshape(x, dims, loc);
}

namespace detail {

Value slice_backward(const Value& g, const Shape& input_shape, const SliceAttrs& attrs, const Loc& loc) {
  return add_op1(OpKind::SliceBackward, {g}, attrs, loc, {TensorType{g.dtype(), input_shape}});
}

Value sum_to(const Value& g, const Shape& shape, const Loc& loc) {
  if (g.shape() == shape) return g;
  const std::int64_t lead = g.rank() - shape.rank();
  Axes axes;
  for (std::int64_t i = 0; i < g.rank(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) axes.push_back(i);
  }
  Value r = axes.empty() ? g : sum(g, axes, /*keepdims=*/true, loc);
  return reshape(r, shape.dims(), loc);
}

std::vector<TensorType> infer_shape_op(const InferContext& ctx) {
  const TensorType& x = ctx.in(0);
  switch (ctx.kind()) {
    case OpKind::Reshape: {
      const TensorType& t = ctx.requested_type();
      if (t.shape.numel() != x.shape.numel())
        ctx.fail(ErrorKind::ShapeMismatch,
                 cat("cannot reshape ", x.shape.numel(), " elements to ", t.shape.to_string()));
      return {TensorType{x.dtype, t.shape}};
    }
    case OpKind::Permute: {
      const auto& perm = ctx.attrs<PermAttrs>().perm;
      if (static_cast<std::int64_t>(perm.size()) != x.shape.rank())
        ctx.fail(ErrorKind::InvalidArgument, "bad permutation");
      std::vector<std::int64_t> dims;
      dims.reserve(perm.size());
      for (auto p : perm) dims.push_back(x.shape[p]);
      return {TensorType{x.dtype, Shape(dims)}};
    }
    case OpKind::Slice: {
      const auto& a = ctx.attrs<SliceAttrs>();
      const TensorType& t = ctx.requested_type();
      if (a.axis >= x.shape.rank() || t.shape.rank() != x.shape.rank())
        ctx.fail(ErrorKind::InvalidArgument, "bad slice");
      const std::int64_t count = t.shape[a.axis];
      if (count > 0 && a.start + (count - 1) * a.step >= x.shape[a.axis])
        ctx.fail(ErrorKind::InvalidArgument, "slice runs past the end of the axis");
      return {TensorType{x.dtype, t.shape}};
    }
    case OpKind::SliceBackward: {
      const auto& a = ctx.attrs<SliceAttrs>();
      const TensorType& t = ctx.requested_type();
      if (t.shape.rank() != x.shape.rank()) ctx.fail(ErrorKind::InvalidArgument, "bad slice_backward");
      const std::int64_t count = x.shape[a.axis];
      if (count > 0 && a.start + (count - 1) * a.step >= t.shape[a.axis])
        ctx.fail(ErrorKind::InvalidArgument, "slice_backward runs past the end of the axis");
      return {TensorType{x.dtype, t.shape}};
    }
    case OpKind::Concat: {
      const std::int64_t axis = ctx.attrs<AxisAttrs>().axis;
      std::vector<std::int64_t> dims = x.shape.dims();
      if (axis >= x.shape.rank()) ctx.fail(ErrorKind::InvalidArgument, "axis out of range");
      for (std::size_t i = 1; i < ctx.num_inputs(); ++i) {
        const TensorType& t = ctx.in(i);
        if (t.dtype != x.dtype) ctx.fail(ErrorKind::DTypeMismatch, cat("operand ", i, " has another dtype"));
        bool ok = t.shape.rank() == x.shape.rank();
        for (std::int64_t d = 0; ok && d < x.shape.rank(); ++d) ok = d == axis || t.shape[d] == x.shape[d];
        if (!ok) ctx.fail(ErrorKind::ShapeMismatch, cat("operand ", i, " differs in shape outside axis ", axis));
        dims[static_cast<std::size_t>(axis)] += t.shape[axis];
      }
      return {TensorType{x.dtype, Shape(dims)}};
    }
    case OpKind::BroadcastTo: {
      const TensorType& t = ctx.requested_type();
      bool ok = t.shape.rank() >= x.shape.rank();
      for (std::int64_t i = 0; ok && i < x.shape.rank(); ++i) {
        const std::int64_t d = x.shape[i], o = t.shape[t.shape.rank() - x.shape.rank() + i];
        ok = d == o || d == 1;
      }
      if (!ok) ctx.fail(ErrorKind::ShapeMismatch, cat("cannot broadcast to ", t.shape.to_string()));
      return {TensorType{x.dtype, t.shape}};
    }
    default: break;
  }
  check_internal(false, "infer_shape_op: not a shape op");
  return {};
}

}  // namespace detail
}  // namespace trainrt
