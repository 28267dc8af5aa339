#include "passes/fuse_update_groups.h"

#include <algorithm>

#include "ir/builder.h"
#include "ir/fused.h"
#include "passes/contract_groups.h"

namespace trainrt::detail {

namespace {

/// Appends one Fused node doing the work of every node of `members` (Fused nodes).
void emit_merged(const GraphImpl& g, const std::vector<std::int32_t>& members, Rewriter& rw) {
  auto body = std::make_shared<FusedBody>();
  Node node;
  node.kind = OpKind::Fused;
  std::vector<std::pair<std::int32_t, std::int32_t>> outputs;  // old (node, output) by new output
  for (std::int32_t m : members) {
    const Node& old = g.node(m);
    const FusedBody& ob = fused_body(old);
    // Operand k of `old` -> operand of the merged node (shared operands are read once).
    std::vector<std::int32_t> operand_of;
    for (const ValueId& in : old.inputs) {
      const Value v = rw.value(in);
      const ValueId now{v.node(), v.output()};
      auto it = std::find(node.inputs.begin(), node.inputs.end(), now);
      if (it == node.inputs.end()) it = node.inputs.insert(node.inputs.end(), now);
      operand_of.push_back(static_cast<std::int32_t>(it - node.inputs.begin()));
    }
    const auto group_base = static_cast<std::int32_t>(body->groups.size());
    for (FusedGroup grp : ob.groups) {
      for (FusedOp& op : grp.ops)
        for (std::int32_t& a : op.args)
          if (a < 0) a = fused_operand_arg(operand_of[static_cast<std::size_t>(fused_arg_operand(a))]);
      body->groups.push_back(std::move(grp));
    }
    for (std::size_t o = 0; o < ob.outputs.size(); ++o) {
      body->outputs.push_back({ob.outputs[o].group + group_base, ob.outputs[o].op});
      node.outputs.push_back(old.outputs[o]);
      outputs.emplace_back(m, static_cast<std::int32_t>(o));
    }
  }
  node.attrs = FusedAttrs{std::move(body)};
  node.loc = g.node(members.back()).loc;
  const auto& target = rw.target();
  const Phase saved = target->phase();
  target->set_phase(Phase::update);
  const std::int32_t index = target->append(std::move(node));
  target->set_phase(saved);
  for (std::size_t o = 0; o < outputs.size(); ++o)
    rw.map_output(outputs[o].first, outputs[o].second, make_value(target, {index, static_cast<std::int32_t>(o)}));
}

}  // namespace

std::shared_ptr<GraphImpl> fuse_update_groups(const GraphImpl& graph, ValueMap& map, std::size_t& merged) {
  ContractionCheck check(graph);
  std::vector<std::vector<std::int32_t>> batches;
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.node(i);
    if (n.dead || n.kind != OpKind::Fused || n.phase != Phase::update) continue;
    bool placed = false;
    for (auto& b : batches) {
      // Groups of one node read no values of another: no direct edge, and no path.
      const bool reads_batch = std::any_of(n.inputs.begin(), n.inputs.end(), [&](const ValueId& v) {
        return v.valid() && std::find(b.begin(), b.end(), v.node) != b.end();
      });
      if (!reads_batch && check.contractible(b, {i})) {
        b.push_back(i);
        placed = true;
        break;
      }
    }
    if (!placed) batches.push_back({i});
  }
  // Batches that would close a cycle between them give way, the smallest first.
  break_group_cycles(graph, batches, [&](std::size_t i) { return static_cast<double>(batches[i].size()); });
  std::vector<std::vector<std::int32_t>> groups;
  merged = 0;
  for (auto& b : batches)
    if (b.size() >= 2) {
      merged += b.size() - 1;
      groups.push_back(std::move(b));
    }
  return contract_groups(
      graph, groups,
      [&](std::size_t i) {
        std::vector<std::int32_t> src;
        for (std::int32_t m : groups[i])
          for (const ValueId& v : graph.node(m).inputs)
            if (v.valid()) src.push_back(v.node);
        return src;
      },
      [&](std::size_t i, Rewriter& rw) { emit_merged(graph, groups[i], rw); }, map);
}

}  // namespace trainrt::detail
