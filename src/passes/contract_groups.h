// passes/contract_groups.h — replacing groups of nodes by one node each (the fusion passes).
//
// A group can become one node when no node outside it both depends on a member and is
// depended on by a member: otherwise the new node would have to run both before and after
// that outside node. contract_groups() then rewrites the graph in a topological order of
// the graph with each group contracted to one vertex: every other node is copied, and each
// group is handed to a callback once all the values it reads from outside exist.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// Answers "may these nodes be one node?" for one graph; reuses its scratch between calls.
class ContractionCheck {
 public:
  explicit ContractionCheck(const GraphImpl& graph);
  /// Whether the union of `a` and `b` (node indices, each sorted or not) can be contracted.
  /// `reads_through(node)` may name, for an outside node the group reads without a node of
  /// its own (an inlined leaf), nothing: such leaves are treated as ordinary outside nodes.
  bool contractible(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b);

 private:
  const GraphImpl& g_;
  std::vector<char> in_, mark_;
};

/// Checking groups one at a time against the original graph (ContractionCheck) can still
/// let two groups close a cycle between them: A reads a value of B while B reads a value
/// that depends on A through an outside node, and neither group alone has a path that
/// leaves it and comes back. This clears groups (leaves their members unfused) until the
/// graph with every remaining group contracted is acyclic, taking first the group of least
/// `cost(i)` among those on or between cycles. Returns how many groups it cleared.
std::size_t break_group_cycles(const GraphImpl& graph, std::vector<std::vector<std::int32_t>>& groups,
                               const std::function<double(std::size_t)>& cost);

/// Rewrites `graph` with each group of `groups` (node indices; disjoint, each contractible)
/// replaced by what `emit_group(i, rw)` appends: it must map every member output read
/// outside the group (rw.map_output). `sources(i)` lists the old nodes whose values group i
/// reads (they are emitted first). Dead nodes are dropped.
std::shared_ptr<GraphImpl> contract_groups(const GraphImpl& graph, const std::vector<std::vector<std::int32_t>>& groups,
                                           const std::function<std::vector<std::int32_t>(std::size_t)>& sources,
                                           const std::function<void(std::size_t, Rewriter&)>& emit_group,
                                           ValueMap& map);

}  // namespace trainrt::detail
