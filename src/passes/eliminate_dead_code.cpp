#include "passes/eliminate_dead_code.h"

namespace trainrt::detail {

bool eliminate_dead_code(GraphImpl& graph, const std::vector<ValueId>& roots) {
  std::vector<bool> live(static_cast<std::size_t>(graph.size()), false);
  for (const ValueId& r : roots) live[static_cast<std::size_t>(r.node)] = true;
  for (std::int32_t i = graph.size() - 1; i >= 0; --i) {
    const Node& n = graph.node(i);
    if (n.dead) continue;
    if (n.kind == OpKind::Assign || n.kind == OpKind::Variable) live[static_cast<std::size_t>(i)] = true;
    if (!live[static_cast<std::size_t>(i)]) continue;
    for (const ValueId& in : n.inputs)
      if (in.valid()) live[static_cast<std::size_t>(in.node)] = true;
  }
  bool changed = false;
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    Node& n = graph.node(i);
    if (!n.dead && !live[static_cast<std::size_t>(i)]) {
      n.dead = true;
      changed = true;
    }
  }
  return changed;
}

}  // namespace trainrt::detail
