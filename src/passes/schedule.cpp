#include "passes/schedule.h"

namespace trainrt::detail {

std::vector<std::int32_t> schedule_nodes(const GraphImpl& graph) {
  std::vector<std::int32_t> order, assigns;
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.node(i);
    if (n.dead) continue;
    (n.kind == OpKind::Assign ? assigns : order).push_back(i);
  }
  order.insert(order.end(), assigns.begin(), assigns.end());
  return order;
}

}  // namespace trainrt::detail
