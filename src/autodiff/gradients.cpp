#include "autodiff/gradients.h"

#include <map>

#include "autodiff/grad_rules.h"
#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "ir/printer.h"

namespace trainrt {

using namespace detail;

std::vector<Value> gradients(const Value& loss, const std::vector<Value>& wrt, Loc loc) {
  if (!loss.valid()) fail(ErrorKind::InvalidArgument, cat("gradients at ", where(loc), ": the loss is absent"));
  std::vector<ValueId> ids;
  for (std::size_t i = 0; i < wrt.size(); ++i) {
    if (!wrt[i].valid() || wrt[i].impl() != loss.impl())
      fail(ErrorKind::InvalidArgument, cat("gradients at ", where(loc), ": value ", i, " (", wrt[i].to_string(),
                                           ") is absent or belongs to another graph than the loss"));
    ids.push_back(id_of(wrt[i]));
  }
  return build_gradients(loss.impl_ptr(), id_of(loss), ids);
}

namespace detail {

namespace {

GradRule rule_of(OpKind kind) {
  switch (op_family(kind)) {
    case OpFamily::Unary:
    case OpFamily::Binary:
    case OpFamily::Ternary: return grad_elementwise;
    case OpFamily::Shape: return grad_shape;
    case OpFamily::Reduce: return grad_reduce;
    case OpFamily::Matmul: return grad_matmul;
    case OpFamily::Conv:
    case OpFamily::Pool: return grad_conv_pool;
    case OpFamily::Softmax:
    case OpFamily::Loss: return grad_softmax_loss;
    case OpFamily::Norm: return grad_norm;
    case OpFamily::Random:
    case OpFamily::Embedding: return grad_random_embedding;
    case OpFamily::Attention: return grad_attention;
    case OpFamily::State:
    case OpFamily::Collective:             // made after differentiation (gradient sync)
    case OpFamily::MultiTensor:            // made after differentiation (the gradient guard)
    case OpFamily::Fused: return nullptr;  // fusion runs after differentiation
  }
  return nullptr;
}

/// Restores the graph's build phase and location override when differentiation ends.
class BuildScope {
 public:
  explicit BuildScope(GraphImpl& g) : g_(g), phase_(g.phase()), loc_(g.location_override()) {}
  ~BuildScope() {
    g_.set_phase(phase_);
    g_.set_location_override(loc_);
  }
  BuildScope(const BuildScope&) = delete;
  BuildScope& operator=(const BuildScope&) = delete;

 private:
  GraphImpl& g_;
  Phase phase_;
  SourceLoc loc_;
};

}  // namespace

std::vector<Value> build_gradients(const std::shared_ptr<GraphImpl>& graph, ValueId loss,
                                   const std::vector<ValueId>& wrt) {
  GraphImpl& g = *graph;
  const TensorType& lt = g.type(loss);
  if (lt.shape.rank() != 0 || !is_floating(lt.dtype))
    fail(ErrorKind::InvalidArgument,
         cat("gradients: the loss must be a floating scalar, but it is ", describe_value(g, loss)));
  for (const ValueId& w : wrt)
    if (!is_floating(g.type(w).dtype))
      fail(ErrorKind::DTypeMismatch,
           cat("gradients: cannot differentiate with respect to ", describe_value(g, w), " (not a floating tensor)"));

  const std::int32_t end = loss.node + 1;  // nodes after the loss cannot affect it
  // depends[i]: node i depends on some wrt value.  reaches[i]: the loss depends on node i.
  std::vector<bool> depends(static_cast<std::size_t>(end), false), reaches(static_cast<std::size_t>(end), false);
  for (const ValueId& w : wrt)
    if (w.node < end) depends[static_cast<std::size_t>(w.node)] = true;
  for (std::int32_t i = 0; i < end; ++i) {
    const Node& n = g.node(i);
    if (n.dead) continue;
    for (const ValueId& in : n.inputs)
      if (in.valid() && depends[static_cast<std::size_t>(in.node)]) depends[static_cast<std::size_t>(i)] = true;
  }
  reaches[static_cast<std::size_t>(loss.node)] = true;
  for (std::int32_t i = end - 1; i >= 0; --i) {
    if (!reaches[static_cast<std::size_t>(i)]) continue;
    for (const ValueId& in : g.node(i).inputs)
      if (in.valid()) reaches[static_cast<std::size_t>(in.node)] = true;
  }
  auto on_path = [&](std::int32_t i) {
    return depends[static_cast<std::size_t>(i)] && reaches[static_cast<std::size_t>(i)];
  };

  BuildScope scope(g);
  g.set_phase(Phase::backward);
  std::map<ValueId, std::vector<Value>> contributions;
  auto total = [&](ValueId v) -> Value {
    auto it = contributions.find(v);
    if (it == contributions.end() || it->second.empty()) return {};
    Value s = it->second[0];
    for (std::size_t i = 1; i < it->second.size(); ++i) s = add(s, it->second[i]);
    it->second.assign(1, s);  // keep the sum: later readers reuse it
    return s;
  };

  g.set_location_override(g.node(loss.node).loc);
  contributions[loss].push_back(Graph(graph).scalar(1.0, lt.dtype));

  for (std::int32_t i = loss.node; i >= 0; --i) {
    if (!on_path(i)) continue;
    const Node node = g.node(i);  // a copy: rules append nodes, which moves the node array
    if (node.dead || op_family(node.kind) == OpFamily::State) continue;
    GradContext ctx{node.kind, node.attrs, {}, {}, {}, {}, Loc::current(), node.loc};
    g.set_location_override(node.loc);
    bool any = false;
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(node.outputs.size()); ++o) {
      ctx.out.emplace_back(graph, i, o);
      ctx.gout.push_back(total({i, o}));
      any = any || ctx.gout.back().valid();
    }
    // Multi-output ops (cross_entropy, layer_norm, batch_norm_train, attention) are
    // differentiable through output 0 only; the others are statistics saved for backward.
    if (!any || !ctx.gout[0].valid()) continue;
    for (const ValueId& in : node.inputs) {
      ctx.in.push_back(in.valid() ? make_value(graph, in) : Value{});
      ctx.needs.push_back(in.valid() && on_path(in.node) && is_floating(g.type(in).dtype));
    }
    const std::vector<ValueId>& inputs = node.inputs;
    const GradRule rule = rule_of(ctx.kind);
    check_internal(rule != nullptr, "no gradient rule for a family");
    const std::vector<Value> grads = rule(ctx);
    check_internal(grads.size() == inputs.size(), "gradient rule returned the wrong number of gradients");
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      if (!ctx.need(k) || !grads[k].valid()) continue;
      check_internal(grads[k].dtype() == g.type(inputs[k]).dtype && grads[k].shape() == g.type(inputs[k]).shape,
                     "a gradient's type differs from its operand's");
      contributions[inputs[k]].push_back(grads[k]);
    }
  }

  std::vector<Value> result;
  for (const ValueId& w : wrt) {
    Value s = total(w);
    if (!s.valid()) {
      g.set_location_override(g.node(w.node).loc);
      const TensorType& t = g.type(w);
      s = Graph(graph).full(t.shape, 0.0, t.dtype);
    }
    result.push_back(s);
  }
  return result;
}

[[noreturn]] void no_gradient(OpKind kind, const GradContext& ctx) {
  fail(ErrorKind::Unsupported,
       cat(op_name(kind), " at ", where(ctx.where.file, ctx.where.line),
           ": has no gradient rule (it is a backward op; second derivatives are not supported)"));
}

}  // namespace detail
}  // namespace trainrt
