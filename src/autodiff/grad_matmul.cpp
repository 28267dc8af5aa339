// autodiff/grad_matmul.cpp — gradient of the batched matrix product.
//
// With op(A) = A or A^T and C = op(A) op(B):  d op(A) = G op(B)^T,  d op(B) = op(A)^T G.
// Each case below is one matmul with transpose flags, so no transposed copy is made. Batch
// axes that were broadcast are summed back (sum_to).
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> grad_matmul(const GradContext& c) {
  const Value& a = c.in[0];
  const Value& b = c.in[1];
  const Value& g = c.gout[0];
  const Loc& l = c.loc;
  const auto& t = c.a<MatmulAttrs>();
  Value da, db;
  if (c.need(0)) {
    // !ta: dA = G op(B)^T;  ta: dA = op(B) G^T.
    da = t.transpose_a ? matmul(b, g, {.transpose_a = t.transpose_b, .transpose_b = true}, l)
                       : matmul(g, b, {.transpose_a = false, .transpose_b = !t.transpose_b}, l);
    da = sum_to(da, a.shape(), l);
  }
  if (c.need(1)) {
    // !tb: dB = op(A)^T G;  tb: dB = G^T op(A).
    db = t.transpose_b ? matmul(g, a, {.transpose_a = true, .transpose_b = t.transpose_a}, l)
                       : matmul(a, g, {.transpose_a = !t.transpose_a, .transpose_b = false}, l);
    db = sum_to(db, b.shape(), l);
  }
  return {da, db};
}

}  // namespace trainrt::detail
