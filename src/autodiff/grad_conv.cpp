// autodiff/grad_conv.cpp — gradients of convolution and pooling (library backward calls).
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> grad_conv_pool(const GradContext& c) {
  const Value& x = c.in[0];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::Conv2d: {
      const auto& a = c.a<Conv2dAttrs>();
      const Value& w = c.in[1];
      return {c.need(0) ? conv2d_backward_data(g, w, x.shape(), a, l) : Value{},
              c.need(1) ? conv2d_backward_weight(g, x, w.shape(), a, l) : Value{},
              c.need(2) ? sum(g, {0, 2, 3}, false, l) : Value{}};
    }
    case OpKind::MaxPool2d: return {max_pool2d_backward(g, x, c.out[0], c.a<Pool2dAttrs>(), l)};
    case OpKind::AvgPool2d: return {avg_pool2d_backward(g, x.shape(), c.a<Pool2dAttrs>(), l)};
    default: no_gradient(c.kind, c);
  }
}

}  // namespace trainrt::detail
