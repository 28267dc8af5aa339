// autodiff/grad_norm.cpp — gradients of batch and layer normalization.
//
// batch_norm in a user's graph is mode-generic (lowering picks the training or evaluation
// form). Differentiating it directly, as gradients() on a user graph does, gives the
// training-mode gradient: the batch statistics are recomputed for the backward op. compile()
// lowers before it differentiates, so the training step never recomputes them.
#include "autodiff/grad_rules.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

namespace {

/// [C] reshaped to broadcast against x[N, C, ...].
Value per_channel(const Value& v, const Value& x, const Loc& l) {
  std::vector<std::int64_t> dims(static_cast<std::size_t>(x.rank()), 1);
  dims[1] = x.shape()[1];
  return reshape(v, dims, l);
}

std::vector<Value> train_backward(const GradContext& c, const Value& mean, const Value& var) {
  const auto& a = c.a<NormAttrs>();
  auto r = batch_norm_backward(c.gout[0], c.in[0], c.in[1], mean, var, a, c.loc);
  std::vector<Value> grads{c.need(0) ? r[0] : Value{}, c.need(1) ? r[1] : Value{}, c.need(2) ? r[2] : Value{}};
  grads.resize(c.in.size());  // running statistics (if any) get none
  return grads;
}

/// Evaluation form: y = (x - m) * rsqrt(v + eps) * gamma + beta, all per channel.
std::vector<Value> eval_backward(const GradContext& c) {
  const Loc& l = c.loc;
  const Value &x = c.in[0], &gamma = c.in[1], &m = c.in[3], &v = c.in[4], &g = c.gout[0];
  const double eps = c.a<NormAttrs>().eps;
  const Value rstd = per_channel(cast(rsqrt(v + eps, l), x.dtype(), l), x, l);
  const Value scale = gamma.valid() ? mul(rstd, per_channel(gamma, x, l), l) : rstd;
  Axes axes{0};
  for (std::int64_t i = 2; i < x.rank(); ++i) axes.push_back(i);
  const Value xhat = mul(sub(x, per_channel(cast(m, x.dtype(), l), x, l), l), rstd, l);
  std::vector<Value> grads(5);
  if (c.need(0)) grads[0] = mul(g, scale, l);
  if (c.need(1)) grads[1] = sum(mul(g, xhat, l), axes, false, l);
  if (c.need(2)) grads[2] = sum(g, axes, false, l);
  return grads;
}

}  // namespace

std::vector<Value> grad_norm(const GradContext& c) {
  const Loc& l = c.loc;
  switch (c.kind) {
    case OpKind::BatchNormTrain: return train_backward(c, c.out[1], c.out[2]);
    case OpKind::BatchNormEval: return eval_backward(c);
    case OpKind::BatchNorm: {
      const auto stats = batch_norm_train(c.in[0], c.in[1], c.in[2], c.a<NormAttrs>(), l);
      return train_backward(c, stats[1], stats[2]);
    }
    case OpKind::LayerNorm: {
      auto r = layer_norm_backward(c.gout[0], c.in[0], c.in[1], c.out[1], c.out[2], c.a<NormAttrs>(), l);
      return {c.need(0) ? r[0] : Value{}, c.need(1) ? r[1] : Value{}, c.need(2) ? r[2] : Value{}};
    }
    default: no_gradient(c.kind, c);
  }
}

}  // namespace trainrt::detail
