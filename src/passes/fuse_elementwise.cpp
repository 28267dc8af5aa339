#include "passes/fuse_elementwise.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/fused.h"
#include "passes/contract_groups.h"

namespace trainrt::detail {

bool fusible_dtype(DType dtype) noexcept {
  return dtype == DType::f32 || dtype == DType::f64 || dtype == DType::i32 || dtype == DType::i64 ||
         dtype == DType::boolean;
}

namespace {

bool has_fusible_types(const GraphImpl& g, const Node& n) {
  for (const TensorType& t : n.outputs)
    if (!fusible_dtype(t.dtype)) return false;
  for (const ValueId& in : n.inputs)
    if (in.valid() && !fusible_dtype(g.type(in).dtype)) return false;
  return true;
}

/// A node that can be a member of a group.
bool is_member_kind(const GraphImpl& g, const Node& n) {
  if (n.dead || n.kind == OpKind::DropoutApply || !is_elementwise(n.kind)) return false;
  return n.outputs.size() == 1 && has_fusible_types(g, n);
}

/// A node a group reads through without a buffer: a scalar fill, or a broadcast of a value
/// computed outside the group.
bool is_inlined_leaf(const GraphImpl& g, const Node& n) {
  if (n.dead || !has_fusible_types(g, n)) return false;
  return n.kind == OpKind::Full || n.kind == OpKind::BroadcastTo;
}

class Grouping {
 public:
  explicit Grouping(const GraphImpl& g) : g_(g), group_(static_cast<std::size_t>(g.size()), -1), check_(g) {}

  void build() {
    for (std::int32_t i = 0; i < g_.size(); ++i) {
      const Node& n = g_.node(i);
      if (!is_member_kind(g_, n)) continue;
      const Shape& loop = n.outputs[0].shape;
      std::int32_t mine = -1;
      for (const ValueId& in : n.inputs) {
        if (!in.valid()) continue;
        const std::int32_t other = group_[static_cast<std::size_t>(in.node)];
        if (other < 0 || other == mine || !(loop_[static_cast<std::size_t>(other)] == loop)) continue;
        if (mine < 0) {
          if (valid_with(members_[static_cast<std::size_t>(other)], {i})) {
            join(other, i);
            mine = other;
          }
        } else if (valid_with(members_[static_cast<std::size_t>(mine)], members_[static_cast<std::size_t>(other)])) {
          merge(mine, other);
        }
      }
      if (mine < 0) {
        mine = static_cast<std::int32_t>(members_.size());
        members_.emplace_back();
        loop_.push_back(loop);
        join(mine, i);
      }
    }
  }

  std::int32_t group_of(std::int32_t node) const { return group_[static_cast<std::size_t>(node)]; }
  const std::vector<std::vector<std::int32_t>>& members() const { return members_; }

 private:
  void join(std::int32_t grp, std::int32_t node) {
    members_[static_cast<std::size_t>(grp)].push_back(node);
    group_[static_cast<std::size_t>(node)] = grp;
  }
  void merge(std::int32_t into, std::int32_t from) {
    for (std::int32_t m : members_[static_cast<std::size_t>(from)]) join(into, m);
    members_[static_cast<std::size_t>(from)].clear();
    auto& v = members_[static_cast<std::size_t>(into)];
    std::sort(v.begin(), v.end());
  }

  bool valid_with(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
    return check_.contractible(a, b);
  }

  const GraphImpl& g_;
  std::vector<std::int32_t> group_;
  ContractionCheck check_;
  std::vector<std::vector<std::int32_t>> members_;
  std::vector<Shape> loop_;
};

/// Builds the Fused node of one group in the new graph.
class GroupBuilder {
 public:
  GroupBuilder(const GraphImpl& g, const std::vector<std::int32_t>& members, const std::set<ValueId>& read_outside,
               Rewriter& rw)
      : g_(g), members_(members), read_outside_(read_outside), rw_(rw) {}

  void build() {
    FusedGroup grp;
    grp.loop = g_.node(members_.front()).outputs[0].shape;
    for (std::int32_t m : members_) {
      const Node& n = g_.node(m);
      FusedOp op{n.kind, {}, n.outputs[0], n.attrs};
      for (const ValueId& v : n.inputs) op.args.push_back(arg_of(grp, v));
      index_[m] = static_cast<std::int32_t>(grp.ops.size());
      grp.ops.push_back(std::move(op));
    }
    auto body = std::make_shared<FusedBody>();
    Node node;
    node.kind = OpKind::Fused;
    for (std::int32_t m : members_) {
      if (!read_outside_.contains({m, 0})) continue;
      body->outputs.push_back({0, index_.at(m)});
      node.outputs.push_back(g_.node(m).outputs[0]);
      outputs_.push_back(m);
    }
    body->groups.push_back(std::move(grp));
    node.inputs = operands_;
    node.attrs = FusedAttrs{std::move(body)};
    const Node& last = g_.node(members_.back());
    node.loc = last.loc;
    const auto& target = rw_.target();
    const Phase saved = target->phase();
    target->set_phase(last.phase);
    const std::int32_t index = target->append(std::move(node));
    target->set_phase(saved);
    for (std::size_t o = 0; o < outputs_.size(); ++o)
      rw_.map_output(outputs_[o], 0, make_value(target, {index, static_cast<std::int32_t>(o)}));
  }

 private:
  std::int32_t operand(ValueId old) {
    const ValueId now = id_of(rw_.value(old));
    auto it = std::find(operands_.begin(), operands_.end(), now);
    if (it != operands_.end()) return fused_operand_arg(static_cast<std::int32_t>(it - operands_.begin()));
    operands_.push_back(now);
    return fused_operand_arg(static_cast<std::int32_t>(operands_.size() - 1));
  }

  std::int32_t arg_of(FusedGroup& grp, ValueId v) {
    auto it = index_.find(v.node);
    if (it != index_.end()) return it->second;
    const Node& p = g_.node(v.node);
    if (p.kind == OpKind::Full && is_inlined_leaf(g_, p)) {
      auto fit = leaf_.find(v.node);
      if (fit != leaf_.end()) return fit->second;
      grp.ops.push_back(FusedOp{OpKind::Full, {}, p.outputs[0], p.attrs});
      return leaf_[v.node] = static_cast<std::int32_t>(grp.ops.size() - 1);
    }
    if (p.kind == OpKind::BroadcastTo && is_inlined_leaf(g_, p)) return operand(p.inputs[0]);
    return operand(v);
  }

  const GraphImpl& g_;
  const std::vector<std::int32_t>& members_;
  const std::set<ValueId>& read_outside_;
  Rewriter& rw_;
  std::map<std::int32_t, std::int32_t> index_;  // member node -> op index
  std::map<std::int32_t, std::int32_t> leaf_;   // inlined Full node -> op index
  std::vector<ValueId> operands_;               // in the new graph
  std::vector<std::int32_t> outputs_;           // member nodes, by output
};

/// The nodes (and inlined leaves) a group reads from outside, as old node indices.
std::vector<std::int32_t> group_sources(const GraphImpl& g, const std::vector<std::int32_t>& members,
                                        const std::vector<std::int32_t>& group_of, std::int32_t self) {
  std::vector<std::int32_t> out;
  for (std::int32_t m : members)
    for (const ValueId& v : g.node(m).inputs) {
      if (!v.valid() || group_of[static_cast<std::size_t>(v.node)] == self) continue;
      const Node& p = g.node(v.node);
      if (p.kind == OpKind::BroadcastTo && is_inlined_leaf(g, p)) out.push_back(p.inputs[0].node);
      else if (!(p.kind == OpKind::Full && is_inlined_leaf(g, p))) out.push_back(v.node);
    }
  return out;
}

}  // namespace

std::shared_ptr<GraphImpl> fuse_elementwise(const GraphImpl& graph, const std::vector<ValueId>& roots, ValueMap& map,
                                            std::size_t& fused_nodes) {
  Grouping grouping(graph);
  grouping.build();

  // Groups worth a kernel: at least two ops. Others stay as they are. Groups that would
  // close a cycle between them give way, the cheapest first (element count times ops).
  std::vector<std::vector<std::int32_t>> candidates;
  for (const auto& m : grouping.members())
    if (m.size() >= 2) candidates.push_back(m);
  break_group_cycles(graph, candidates, [&](std::size_t i) {
    const auto& m = candidates[i];
    return static_cast<double>(graph.node(m.front()).outputs[0].shape.numel()) * static_cast<double>(m.size());
  });
  std::vector<std::int32_t> group_of(static_cast<std::size_t>(graph.size()), -1);
  std::vector<std::vector<std::int32_t>> groups;
  for (auto& m : candidates)
    if (!m.empty()) {
      for (std::int32_t node : m) group_of[static_cast<std::size_t>(node)] = static_cast<std::int32_t>(groups.size());
      groups.push_back(std::move(m));
    }
  fused_nodes = groups.size();

  std::set<ValueId> read_outside(roots.begin(), roots.end());
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.node(i);
    if (n.dead) continue;
    for (const ValueId& v : n.inputs)
      if (v.valid() && group_of[static_cast<std::size_t>(v.node)] >= 0 &&
          group_of[static_cast<std::size_t>(v.node)] != group_of[static_cast<std::size_t>(i)])
        read_outside.insert(v);
  }

  return contract_groups(
      graph, groups,
      [&](std::size_t i) { return group_sources(graph, groups[i], group_of, static_cast<std::int32_t>(i)); },
      [&](std::size_t i, Rewriter& rw) { GroupBuilder(graph, groups[i], read_outside, rw).build(); }, map);
}

}  // namespace trainrt::detail
