#include "passes/contract_groups.h"

#include <algorithm>

namespace trainrt::detail {

ContractionCheck::ContractionCheck(const GraphImpl& graph)
    : g_(graph), in_(static_cast<std::size_t>(graph.size()), 0), mark_(in_.size(), 0) {}

bool ContractionCheck::contractible(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  std::int32_t lo = g_.size(), hi = -1;
  for (const auto* v : {&a, &b})
    for (std::int32_t m : *v) {
      in_[static_cast<std::size_t>(m)] = 1;
      lo = std::min(lo, m);
      hi = std::max(hi, m);
    }
  // Forward sweep: mark_[x] for outside nodes that depend on a member; a member reading a
  // marked node closes a cycle.
  bool ok = true;
  for (std::int32_t x = lo; x <= hi && ok; ++x) {
    const Node& n = g_.node(x);
    if (n.dead) continue;
    const bool member = in_[static_cast<std::size_t>(x)] != 0;
    bool reaches = false;
    for (const ValueId& v : n.inputs) {
      if (!v.valid() || v.node < lo) continue;
      const bool from_member = in_[static_cast<std::size_t>(v.node)] != 0;
      const bool from_marked = mark_[static_cast<std::size_t>(v.node)] != 0;
      if (member && !from_member && from_marked) ok = false;
      if (!member && (from_member || from_marked)) reaches = true;
    }
    mark_[static_cast<std::size_t>(x)] = reaches ? 1 : 0;
  }
  for (std::int32_t x = lo; x <= hi; ++x) mark_[static_cast<std::size_t>(x)] = in_[static_cast<std::size_t>(x)] = 0;
  return ok;
}

std::size_t break_group_cycles(const GraphImpl& graph, std::vector<std::vector<std::int32_t>>& groups,
                               const std::function<double(std::size_t)>& cost) {
  const auto nodes = static_cast<std::size_t>(graph.size());
  const std::size_t count = groups.size();
  std::size_t cleared = 0;
  for (;;) {
    // Vertices: one per group, then one per node outside the groups.
    std::vector<std::size_t> vertex(nodes);
    for (std::size_t i = 0; i < nodes; ++i) vertex[i] = count + i;
    for (std::size_t g = 0; g < count; ++g)
      for (std::int32_t m : groups[g]) vertex[static_cast<std::size_t>(m)] = g;
    const std::size_t vertices = count + nodes;
    std::vector<std::vector<std::size_t>> succ(vertices);
    std::vector<std::size_t> indeg(vertices, 0), outdeg(vertices, 0);
    for (std::size_t i = 0; i < nodes; ++i) {
      const Node& n = graph.node(static_cast<std::int32_t>(i));
      if (n.dead) continue;
      for (const ValueId& v : n.inputs) {
        if (!v.valid() || graph.node(v.node).dead) continue;
        const std::size_t from = vertex[static_cast<std::size_t>(v.node)], to = vertex[i];
        if (from == to) continue;
        succ[from].push_back(to);
        ++indeg[to];
        ++outdeg[from];
      }
    }
    // Peel vertices with no remaining predecessor, then those with no remaining successor:
    // what is left lies on a cycle or between two.
    std::vector<char> gone(vertices, 0);
    std::vector<std::size_t> ready;
    for (std::size_t v = 0; v < vertices; ++v)
      if (indeg[v] == 0) ready.push_back(v);
    while (!ready.empty()) {
      const std::size_t v = ready.back();
      ready.pop_back();
      gone[v] = 1;
      for (std::size_t w : succ[v])
        if (--indeg[w] == 0) ready.push_back(w);
    }
    std::vector<std::vector<std::size_t>> pred(vertices);
    for (std::size_t v = 0; v < vertices; ++v) {
      if (gone[v]) continue;
      outdeg[v] = 0;
      for (std::size_t w : succ[v])
        if (!gone[w]) {
          ++outdeg[v];
          pred[w].push_back(v);
        }
    }
    for (std::size_t v = 0; v < vertices; ++v)
      if (!gone[v] && outdeg[v] == 0) ready.push_back(v);
    while (!ready.empty()) {
      const std::size_t v = ready.back();
      ready.pop_back();
      gone[v] = 1;
      for (std::size_t u : pred[v])
        if (!gone[u] && --outdeg[u] == 0) ready.push_back(u);
    }
    std::size_t pick = count;
    for (std::size_t g = 0; g < count; ++g)
      if (!gone[g] && !groups[g].empty() && (pick == count || cost(g) < cost(pick))) pick = g;
    if (pick == count) return cleared;
    groups[pick].clear();
    ++cleared;
  }
}

std::shared_ptr<GraphImpl> contract_groups(const GraphImpl& graph, const std::vector<std::vector<std::int32_t>>& groups,
                                           const std::function<std::vector<std::int32_t>(std::size_t)>& sources,
                                           const std::function<void(std::size_t, Rewriter&)>& emit_group,
                                           ValueMap& map) {
  std::vector<std::int32_t> group_of(static_cast<std::size_t>(graph.size()), -1);
  for (std::size_t i = 0; i < groups.size(); ++i)
    for (std::int32_t m : groups[i]) group_of[static_cast<std::size_t>(m)] = static_cast<std::int32_t>(i);
  auto target = std::make_shared<GraphImpl>();
  Rewriter rw(graph, target, map);
  std::vector<char> done(static_cast<std::size_t>(graph.size()), 0), done_group(groups.size(), 0);
  // Depth-first: a node after the nodes it reads; a group after everything it reads.
  std::function<void(std::int32_t)> emit = [&](std::int32_t node) {
    if (done[static_cast<std::size_t>(node)] || graph.node(node).dead) return;
    const std::int32_t grp = group_of[static_cast<std::size_t>(node)];
    if (grp < 0) {
      done[static_cast<std::size_t>(node)] = 1;
      for (const ValueId& v : graph.node(node).inputs)
        if (v.valid()) emit(v.node);
      target->set_location_override(graph.node(node).loc);
      rw.copy(node);
      target->set_location_override({});
      return;
    }
    if (done_group[static_cast<std::size_t>(grp)]) return;
    done_group[static_cast<std::size_t>(grp)] = 1;
    for (std::int32_t m : groups[static_cast<std::size_t>(grp)]) done[static_cast<std::size_t>(m)] = 1;
    for (std::int32_t src : sources(static_cast<std::size_t>(grp))) emit(src);
    emit_group(static_cast<std::size_t>(grp), rw);
  };
  for (std::int32_t i = 0; i < graph.size(); ++i) emit(i);
  target->set_phase(Phase::forward);
  return target;
}

}  // namespace trainrt::detail
