#include "passes/lower_mode.h"

#include "core/error.h"
#include "core/hash.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

namespace {

/// running = (1 - momentum) * running + momentum * batch, in the running tensor's dtype.
void update_running(const Value& running, const Value& batch, double momentum, const Loc& l) {
  const Value b = cast(batch, running.dtype(), l);
  assign(running, fma(running, running.graph().scalar(1.0 - momentum, running.dtype()), b * momentum, l), l);
}

bool lower_batch_norm_train(std::int32_t i, Rewriter& rw) {
  const Node& n = rw.source().node(i);
  const auto attrs = std::get<NormAttrs>(n.attrs);
  const Loc l = Loc::current();
  const Value x = rw.operand(i, 0);
  const auto r = batch_norm_train(x, rw.operand(i, 1), rw.operand(i, 2), attrs, l);
  rw.map_output(i, 0, r[0]);
  const Value rm = rw.operand(i, 3), rv = rw.operand(i, 4);
  if (rm.valid()) {
    // PyTorch keeps the unbiased variance in running_var: var * n / (n - 1).
    const auto n_per_channel = static_cast<double>(x.shape().numel()) / static_cast<double>(x.shape()[1]);
    update_running(rm, r[1], attrs.momentum, l);
    update_running(rv, r[2] * (n_per_channel / (n_per_channel - 1.0)), attrs.momentum, l);
  }
  return true;
}

}  // namespace

std::shared_ptr<GraphImpl> lower_for_training(const GraphImpl& graph, std::uint64_t seed, ValueMap& map) {
  const std::int32_t step_node = graph.find(kStepVariable);
  check_internal(step_node >= 0, "lower_for_training: the step counter variable is missing");
  bool step_copied = false;
  return rewrite_graph(
      graph,
      [&](std::int32_t i, Rewriter& rw) {
        // The counter is created last (by compile()), but dropout reads it: copy it first.
        if (!step_copied) {
          rw.copy(step_node);
          step_copied = true;
        }
        if (i == step_node) return true;
        const Node& n = graph.node(i);
        switch (n.kind) {
          case OpKind::BatchNorm: return lower_batch_norm_train(i, rw);
          case OpKind::Dropout: {
            DropoutAttrs a = std::get<DropoutAttrs>(n.attrs);
            a.key = hash_combine(seed, a.key);
            rw.map_output(i, 0, dropout_apply(rw.operand(i, 0), rw.value({step_node, 0}), a, Loc::current()));
            return true;
          }
          default: return false;
        }
      },
      map);
}

std::shared_ptr<GraphImpl> lower_for_evaluation(const GraphImpl& graph, ValueMap& map) {
  return rewrite_graph(
      graph,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = graph.node(i);
        const Loc l = Loc::current();
        switch (n.kind) {
          case OpKind::BatchNorm: {
            const auto& a = std::get<NormAttrs>(n.attrs);
            const Value x = rw.operand(i, 0), gamma = rw.operand(i, 1), beta = rw.operand(i, 2);
            const Value rm = rw.operand(i, 3), rv = rw.operand(i, 4);
            rw.map_output(
                i, 0,
                rm.valid() ? batch_norm_eval(x, gamma, beta, rm, rv, a, l) : batch_norm_train(x, gamma, beta, a, l)[0]);
            return true;
          }
          case OpKind::Dropout: rw.map_output(i, 0, rw.operand(i, 0)); return true;
          default: return false;
        }
      },
      map);
}

}  // namespace trainrt::detail
