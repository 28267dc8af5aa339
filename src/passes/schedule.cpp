#include "passes/schedule.h"

#include <algorithm>

#include "core/error.h"

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

Dag build_dag(const GraphImpl& graph, const std::vector<std::int32_t>& order, bool parallel, std::int32_t guard_node) {
  Dag dag;
  dag.preds.resize(static_cast<std::size_t>(graph.size()));
  if (guard_node >= 0) dag.barriers.push_back(guard_node);
  // Collectives may throw too (a peer failed); and every rank must issue them in one order,
  // so each waits for the one before it in the schedule.
  std::int32_t last_collective = -1;
  for (std::int32_t node : order) {
    const OpKind kind = graph.node(node).kind;
    const bool collective = op_family(kind) == OpFamily::Collective;
    if (checks_data(kind) || collective) dag.barriers.push_back(node);
    if (collective) {
      if (last_collective >= 0) dag.preds[static_cast<std::size_t>(node)].push_back(last_collective);
      last_collective = node;
    }
  }
  std::vector<std::vector<std::int32_t>> readers(static_cast<std::size_t>(graph.size()));  // of each variable
  for (std::int32_t node : order) {
    const Node& n = graph.node(node);
    auto& p = dag.preds[static_cast<std::size_t>(node)];
    for (const ValueId& in : n.inputs)
      if (in.valid()) p.push_back(in.node);
    if (n.kind != OpKind::Assign)
      for (const ValueId& in : n.inputs)
        if (in.valid() && graph.node(in.node).kind == OpKind::Variable)
          readers[static_cast<std::size_t>(in.node)].push_back(node);
  }
  for (std::int32_t node : order) {
    const Node& n = graph.node(node);
    if (n.kind != OpKind::Assign) continue;
    auto& p = dag.preds[static_cast<std::size_t>(node)];
    for (std::int32_t r : readers[static_cast<std::size_t>(n.inputs[0].node)]) p.push_back(r);  // write after read
    p.insert(p.end(), dag.barriers.begin(), dag.barriers.end());
  }
  if (!parallel)
    for (std::size_t i = 1; i < order.size(); ++i)
      dag.preds[static_cast<std::size_t>(order[i])].push_back(order[i - 1]);
  for (auto& p : dag.preds) {
    std::sort(p.begin(), p.end());
    p.erase(std::unique(p.begin(), p.end()), p.end());
  }
  return dag;
}

Ancestors::Ancestors(const std::vector<std::int32_t>& order, const Dag& dag) : words_((order.size() + 63) / 64) {
  bits_.assign(order.size() * words_, 0);
  std::vector<int> pos(dag.preds.size(), -1);
  for (std::size_t p = 0; p < order.size(); ++p) pos[static_cast<std::size_t>(order[p])] = static_cast<int>(p);
  for (std::size_t p = 0; p < order.size(); ++p) {
    std::uint64_t* mine = bits_.data() + p * words_;
    for (std::int32_t pred : dag.preds[static_cast<std::size_t>(order[p])]) {
      const int q = pos[static_cast<std::size_t>(pred)];
      check_internal(q >= 0 && static_cast<std::size_t>(q) < p, "a DAG edge against the schedule order");
      const std::uint64_t* theirs = bits_.data() + static_cast<std::size_t>(q) * words_;
      for (std::size_t w = 0; w < words_; ++w) mine[w] |= theirs[w];
      mine[static_cast<std::size_t>(q) / 64] |= std::uint64_t{1} << (q % 64);
    }
  }
}

}  // namespace trainrt::detail
