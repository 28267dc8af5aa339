// autodiff/grad_nn.cpp — gradients of softmax, log-softmax, cross-entropy, embedding and
// dropout.
#include "autodiff/grad_rules.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> grad_softmax_loss(const GradContext& c) {
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::Softmax: return {softmax_backward(c.gout[0], c.out[0], c.a<AxisAttrs>().axis, l)};
    case OpKind::LogSoftmax: return {log_softmax_backward(c.gout[0], c.out[0], c.a<AxisAttrs>().axis, l)};
    case OpKind::CrossEntropy:
      // Output 1 (per-row log-sum-exp) is saved for backward only; no gradient flows from it.
      return {cross_entropy_backward(c.gout[0], c.in[0], c.in[1], c.out[1], c.a<CrossEntropyAttrs>(), l), Value{}};
    default: no_gradient(c.kind, c);
  }
}

std::vector<Value> grad_random_embedding(const GradContext& c) {
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::Embedding: return {embedding_backward(c.gout[0], c.in[1], c.in[0].shape()[0], l), Value{}};
    case OpKind::Dropout:
      // The same key gives the same mask: forward and backward lower to one Philox stream.
      return {add_op1(OpKind::Dropout, {c.gout[0]}, c.attrs, l)};
    case OpKind::DropoutApply: return {dropout_apply(c.gout[0], c.in[1], c.a<DropoutAttrs>(), l), Value{}};
    default: no_gradient(c.kind, c);
  }
}

}  // namespace trainrt::detail
