#include "passes/recompute_activations.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "core/aligned.h"
#include "core/error.h"
#include "ir/builder.h"
#include "passes/plan_memory.h"
#include "passes/schedule.h"

namespace trainrt::detail {

namespace {

bool cheap(const Node& n, std::int32_t output) {
  if (is_elementwise(n.kind)) return true;
  return output == 0 && (n.kind == OpKind::BatchNormTrain || n.kind == OpKind::LayerNorm);
}

std::size_t arena_of(const GraphImpl& g, const std::vector<ValueId>& roots) {
  const std::vector<std::int32_t> order = schedule_nodes(g);
  return plan_memory(g, order, build_dag(g, order, false, -1), {roots, {}}).arena_bytes;
}

/// The graph with every value of `chosen` recomputed at its first backward reader.
std::shared_ptr<GraphImpl> rewrite(const GraphImpl& g, const std::set<ValueId>& chosen, ValueMap& map,
                                   std::size_t& cloned) {
  std::map<ValueId, ValueId> clone_of;  // chosen value -> its recomputation (new graph)
  cloned = 0;
  std::function<void(ValueId, Rewriter&)> recompute = [&](ValueId v, Rewriter& rw) {
    if (clone_of.contains(v)) return;
    Node n = g.node(v.node);  // copy: appending moves the node array
    for (const ValueId& in : n.inputs)
      if (in.valid() && chosen.contains(in)) recompute(in, rw);
    for (ValueId& in : n.inputs) {
      if (!in.valid()) continue;
      auto it = clone_of.find(in);
      in = it != clone_of.end() ? it->second : map(in);
    }
    n.name.clear();
    const std::int32_t index = rw.target()->append(std::move(n));
    ++cloned;
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(rw.target()->node(index).outputs.size()); ++o)
      if (chosen.contains({v.node, o})) clone_of[{v.node, o}] = {index, o};
  };
  return rewrite_graph(
      g,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = g.node(i);
        if (n.phase == Phase::forward) return false;
        bool reads = false;
        for (const ValueId& in : n.inputs)
          reads = reads || (in.valid() && chosen.contains(in) && !clone_of.contains(in));
        if (!reads) return false;
        for (const ValueId& in : n.inputs)
          if (in.valid() && chosen.contains(in)) recompute(in, rw);
        // From here on, readers of a chosen value read its recomputation: every forward
        // reader came before the first backward one.
        for (const auto& [v, c] : clone_of) map.set(v, c);
        return false;
      },
      map);
}

}  // namespace

RecomputeResult recompute_activations(const std::shared_ptr<GraphImpl>& graph, const std::vector<ValueId>& roots,
                                      std::size_t budget, ValueMap& map) {
  RecomputeResult r;
  r.graph = graph;
  const GraphImpl& g = *graph;
  auto identity = [&] {
    for (std::int32_t i = 0; i < g.size(); ++i)
      for (std::int32_t o = 0; o < static_cast<std::int32_t>(g.node(i).outputs.size()); ++o) map.set({i, o}, {i, o});
  };
  r.arena_before = r.arena_after = arena_of(g, roots);
  if (budget == 0 || r.arena_before <= budget) {
    identity();
    return r;
  }
  // Candidates: forward values of cheap ops that some backward node reads, largest first.
  std::vector<std::pair<std::size_t, ValueId>> candidates;
  std::set<ValueId> seen;
  for (std::int32_t i = 0; i < g.size(); ++i) {
    const Node& n = g.node(i);
    if (n.dead || n.phase == Phase::forward) continue;
    for (const ValueId& in : n.inputs) {
      if (!in.valid() || seen.contains(in)) continue;
      const Node& p = g.node(in.node);
      if (p.phase != Phase::forward || !cheap(p, in.output)) continue;
      if (std::find(roots.begin(), roots.end(), in) != roots.end()) continue;
      seen.insert(in);
      const TensorType& t = g.type(in);
      candidates.emplace_back(static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype), in);
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) { return a.first > b.first; });

  std::set<ValueId> chosen;
  std::shared_ptr<GraphImpl> best = graph;
  std::size_t best_arena = r.arena_before, best_cloned = 0;
  ValueMap best_map;
  for (const auto& [bytes, v] : candidates) {
    if (best_arena <= budget) break;
    chosen.insert(v);
    ValueMap m;
    std::size_t cloned = 0;
    auto trial = rewrite(g, chosen, m, cloned);
    std::vector<ValueId> new_roots;
    new_roots.reserve(roots.size());
    for (const ValueId& root : roots) new_roots.push_back(m(root));
    const std::size_t arena = arena_of(*trial, new_roots);
    if (arena < best_arena) {
      best = trial, best_arena = arena, best_map = m, best_cloned = cloned;
    } else {
      chosen.erase(v);  // no gain (its operands would stay alive instead)
    }
  }
  if (best == graph) {
    identity();
    return r;
  }
  map = best_map;
  r.graph = best;
  r.recomputed = best_cloned;
  r.arena_after = best_arena;
  return r;
}

}  // namespace trainrt::detail
