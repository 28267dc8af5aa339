// ir/fused.cpp — queries on fused nodes.
#include "ir/fused.h"

#include "core/error.h"
#include "ir/graph_impl.h"

namespace trainrt::detail {

const FusedBody& fused_body(const Node& node) {
  check_internal(node.kind == OpKind::Fused, "fused_body: not a fused node");
  const auto& attrs = std::get<FusedAttrs>(node.attrs);
  check_internal(attrs.body != nullptr, "fused_body: a fused node without a body");
  return *attrs.body;
}

bool may_write_over_operand(const GraphImpl& graph, std::int32_t node, std::int32_t out, std::size_t operand) {
  const Node& n = graph.node(node);
  const TensorType& out_type = n.outputs[static_cast<std::size_t>(out)];
  if (operand >= n.inputs.size() || !n.inputs[operand].valid() || !(graph.type(n.inputs[operand]) == out_type))
    return false;
  if (is_elementwise(n.kind)) return true;
  if (n.kind != OpKind::Fused) return false;
  const FusedBody& body = fused_body(n);
  const FusedOutput& o = body.outputs[static_cast<std::size_t>(out)];
  const std::int32_t arg = fused_operand_arg(static_cast<std::int32_t>(operand));
  for (std::size_t gi = 0; gi < body.groups.size(); ++gi) {
    const FusedGroup& g = body.groups[gi];
    bool reads = false;
    for (const FusedOp& op : g.ops)
      for (std::int32_t a : op.args) reads = reads || a == arg;
    if (!reads) continue;
    if (static_cast<std::int32_t>(gi) != o.group || !g.reduce_axes.empty() || !(g.loop == out_type.shape)) return false;
  }
  return true;
}

}  // namespace trainrt::detail
