// passes/eliminate_common_subexpressions.h — merge nodes that compute the same value.
//
// Two live nodes with the same kind, the same operands (after the merges made earlier in
// the same walk), equal attributes (ir/attrs.h attrs_equal) and equal output types compute
// the same value: the first is kept and every use of the second reads the first instead.
// Nodes are looked up in a hash map keyed by (kind, operands, attributes, output types),
// and a full comparison confirms a hit, so a hash collision never merges anything.
//
// Never merged: inputs and variables (each names its own storage), assignments (side
// effects). Constants merge only when their tensors are byte-equal. dropout/dropout_apply
// merge only with equal key, p and operands: the mask is a pure function of (key, element,
// step) (runtime/cpu/dropout.cpp, DESIGN decision 10), so equal keys and operands mean the
// same mask and the same output; different dropout calls get different keys (ir/op_nn.cpp)
// and stay apart. Every other op is a pure function of its operands and attributes.
//
// Merging a backward node into an identical forward one keeps the forward value alive
// until the backward use: values are unchanged; memory is the planner's concern.
#pragma once

#include <memory>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// Replaces `graph` by a copy with common subexpressions merged (dead nodes dropped) and
/// fills `map` with the new value of every live value of the old graph (a merged value maps
/// to the one it was merged into). Returns true if two nodes were merged. Throws only on
/// internal errors.
bool eliminate_common_subexpressions(std::shared_ptr<GraphImpl>& graph, ValueMap& map);

}  // namespace trainrt::detail
