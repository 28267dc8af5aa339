// autodiff/grad_reduce.cpp — gradients of sum, mean and max over axes.
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

namespace {
/// g (the reduced shape) with the reduced axes back as size 1, broadcast to x's shape.
Value expand(const Value& g, const Value& x, const ReduceAttrs& r, const Loc& l) {
  std::vector<std::int64_t> kept = x.shape().dims();
  for (std::int64_t a : r.axes) kept[static_cast<std::size_t>(a)] = 1;
  return broadcast_to(reshape(g, kept, l), x.shape(), l);
}
}  // namespace

std::vector<Value> grad_reduce(const GradContext& c) {
  const Value& x = c.in[0];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  const auto& r = c.a<ReduceAttrs>();
  switch (c.kind) {
    case OpKind::ReduceSum: return {expand(g, x, r, l)};
    case OpKind::ReduceMean: {
      std::int64_t count = 1;
      for (std::int64_t a : r.axes) count *= x.shape()[a];
      return {expand(g * (1.0 / static_cast<double>(count)), x, r, l)};
    }
    case OpKind::ReduceMax: {
      // The gradient is shared evenly by the elements equal to the maximum.
      const Value hit = cast(eq(x, expand(c.out[0], x, r, l), l), x.dtype(), l);
      const Value count = sum(hit, r.axes, /*keepdims=*/true, l);
      return {mul(div(hit, broadcast_to(count, x.shape(), l), l), expand(g, x, r, l), l)};
    }
    default: no_gradient(c.kind, c);
  }
}

}  // namespace trainrt::detail
