// ir/graph_impl.h — the IR graph behind trainrt::Graph.
//
// Nodes are appended and never renumbered: node i only uses values of nodes < i, so index
// order is a topological order. Passes that only remove mark nodes dead; passes that
// restructure copy the graph node by node into a new one (passes/rewrite.h) and return a
// map from old values to new ones.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/node.h"

namespace trainrt::detail {

class GraphImpl {
 public:
  GraphImpl();
  GraphImpl(const GraphImpl&) = delete;
  GraphImpl& operator=(const GraphImpl&) = delete;
  /// Frees the nodes.
  ~GraphImpl() = default;

  /// Process-unique identity, used to detect values of different graphs combined.
  std::uint64_t id() const noexcept { return id_; }

  /// Appends a node whose output types are already set; returns its index. Named nodes must
  /// have unique names (throws InvalidArgument otherwise). New nodes take the current phase.
  std::int32_t append(Node node);
  std::int32_t size() const noexcept { return static_cast<std::int32_t>(nodes_.size()); }
  const Node& node(std::int32_t i) const { return nodes_[static_cast<std::size_t>(i)]; }
  Node& node(std::int32_t i) { return nodes_[static_cast<std::size_t>(i)]; }
  const TensorType& type(ValueId v) const { return node(v.node).outputs[static_cast<std::size_t>(v.output)]; }
  const std::vector<Node>& nodes() const noexcept { return nodes_; }

  /// Index of the named node, or -1.
  std::int32_t find(std::string_view name) const;

  /// A deep copy with a new identity (compile() works on one).
  std::shared_ptr<GraphImpl> clone() const;

  /// The phase given to nodes appended from now on.
  Phase phase() const noexcept { return phase_; }
  void set_phase(Phase p) noexcept { phase_ = p; }
  /// While set (file non-null), appended nodes take this source location instead of their
  /// own: gradient nodes point at the forward op they differentiate.
  void set_location_override(SourceLoc loc) noexcept { loc_override_ = loc; }
  SourceLoc location_override() const noexcept { return loc_override_; }

 private:
  std::uint64_t id_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, std::int32_t> names_;
  Phase phase_ = Phase::forward;
  SourceLoc loc_override_;
};

}  // namespace trainrt::detail
