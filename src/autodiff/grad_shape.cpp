// autodiff/grad_shape.cpp — gradients of data-movement ops: each routes the incoming
// gradient back to where the data came from.
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> grad_shape(const GradContext& c) {
  const Value& x = c.in[0];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::Reshape: return {reshape(g, x.shape().dims(), l)};
    case OpKind::Permute: {
      const auto& perm = c.a<PermAttrs>().perm;
      std::vector<std::int64_t> inverse(perm.size());
      for (std::size_t i = 0; i < perm.size(); ++i)
        inverse[static_cast<std::size_t>(perm[i])] = static_cast<std::int64_t>(i);
      return {permute(g, inverse, l)};
    }
    case OpKind::Slice: return {slice_backward(g, x.shape(), c.a<SliceAttrs>(), l)};
    case OpKind::SliceBackward: {
      const auto& s = c.a<SliceAttrs>();
      const std::int64_t count = x.shape()[s.axis];
      return {slice(g, s.axis, s.start, s.start + (count - 1) * s.step + 1, s.step, l)};
    }
    case OpKind::Concat: {
      const std::int64_t axis = c.a<AxisAttrs>().axis;
      std::vector<Value> grads;
      std::int64_t offset = 0;
      for (std::size_t i = 0; i < c.in.size(); ++i) {
        const std::int64_t n = c.in[i].shape()[axis];
        grads.push_back(c.need(i) ? slice(g, axis, offset, offset + n, 1, l) : Value{});
        offset += n;
      }
      return grads;
    }
    case OpKind::BroadcastTo: return {sum_to(g, x.shape(), l)};
    default: no_gradient(c.kind, c);
  }
}

}  // namespace trainrt::detail
