// autodiff/grad_attention.cpp — gradient of scaled dot-product attention (one fused
// backward op that recomputes the probabilities from the saved log-sum-exp).
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> grad_attention(const GradContext& c) {
  if (c.kind != OpKind::Attention) no_gradient(c.kind, c);
  auto r = attention_backward(c.gout[0], c.in[0], c.in[1], c.in[2], c.in[3], c.out[0], c.out[1], c.a<AttentionAttrs>(),
                              c.loc);
  return {c.need(0) ? r[0] : Value{}, c.need(1) ? r[1] : Value{}, c.need(2) ? r[2] : Value{}, Value{}};
}

}  // namespace trainrt::detail
