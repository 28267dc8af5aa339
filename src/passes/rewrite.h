// passes/rewrite.h — copying a graph node by node while replacing some nodes.
//
// Passes that restructure (lowering, dtype legalization) use rewrite_graph(): nodes are
// visited in order; the callback either returns false (the node is copied with remapped
// operands) or builds replacement ops in the new graph and maps each old output to a new
// value. Names, phases and locations carry over. The returned ValueMap translates values of
// the old graph (a user's fetches, the loss) into the new one.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "ir/graph_impl.h"
#include "trainrt/graph.hpp"

namespace trainrt::detail {

class ValueMap {
 public:
  void set(ValueId from, ValueId to) { map_[from] = to; }
  /// The new value for `from`; throws Internal when `from` was removed.
  ValueId operator()(ValueId from) const;
  bool contains(ValueId from) const { return map_.contains(from); }
  /// Composes: first this map, then `next`.
  ValueMap then(const ValueMap& next) const;
  /// Every mapping, ordered by source value (serialization reads the map through this).
  const std::map<ValueId, ValueId>& entries() const noexcept { return map_; }

 private:
  std::map<ValueId, ValueId> map_;
};

class Rewriter {
 public:
  Rewriter(const GraphImpl& source, std::shared_ptr<GraphImpl> target, ValueMap& map)
      : source_(source), target_(std::move(target)), map_(map) {}
  const GraphImpl& source() const noexcept { return source_; }
  const std::shared_ptr<GraphImpl>& target() const noexcept { return target_; }
  /// The new graph's value for an old value (absent for an absent operand).
  Value value(ValueId old) const;
  /// Operand i of old node `node`, in the new graph.
  Value operand(std::int32_t node, std::size_t i) const { return value(source_.node(node).inputs[i]); }
  /// Records that old output `out` of node `node` is now `v`.
  void map_output(std::int32_t node, std::int32_t out, const Value& v);
  /// Copies old node `node` unchanged (with remapped operands).
  void copy(std::int32_t node);

 private:
  const GraphImpl& source_;
  std::shared_ptr<GraphImpl> target_;
  ValueMap& map_;
};

/// Returns the rewritten graph; `map` receives every old value that still has a counterpart.
/// Dead nodes of `source` are dropped.
std::shared_ptr<GraphImpl> rewrite_graph(const GraphImpl& source,
                                         const std::function<bool(std::int32_t, Rewriter&)>& fn, ValueMap& map);

}  // namespace trainrt::detail
