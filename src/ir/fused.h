// ir/fused.h — the body of a fused node (OpKind::Fused), made by the fusion passes.
//
// A fused node computes several groups of elementwise ops in one kernel. Each group has a
// loop shape: every op of the group produces a value of that shape, reading the node's
// operands broadcast to it (numpy rules, right-aligned) or earlier ops of the group. A group
// may end in reductions over the same axes of its loop shape (sum, mean or max): their
// results have the reduced shape and are read by nothing inside the group. Groups are
// independent of each other (the multi-tensor optimizer update puts every parameter's
// update in one node, one group each).
//
// The node's operands are the values the groups read from outside; its outputs are the
// values read outside the node (listed in FusedBody::outputs). The code generator
// (codegen/) writes one kernel from this description.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/attrs.h"
#include "ir/node.h"

namespace trainrt::detail {

/// One op of a group. args[k] >= 0 is op args[k] of the same group (an earlier one);
/// args[k] < 0 is the node's operand -(args[k] + 1).
struct FusedOp {
  OpKind kind{};
  std::vector<std::int32_t> args;
  TensorType type;  // the op's result (the loop shape, or the reduced shape for reductions)
  Attrs attrs;      // as the unfused op had them (GeluAttrs, ScalarAttrs of Full, ReduceAttrs, ...)
};

struct FusedGroup {
  Shape loop;                             // the iteration space
  std::vector<FusedOp> ops;               // in dependency order
  std::vector<std::int64_t> reduce_axes;  // axes of `loop` the group's reductions reduce (sorted; empty: none)
};

struct FusedOutput {
  std::int32_t group = 0, op = 0;
};

struct FusedBody {
  std::vector<FusedGroup> groups;
  std::vector<FusedOutput> outputs;  // one per node output, in order
};

/// Operand k as seen by the groups: its operand index, -(k+1) <-> k.
constexpr std::int32_t fused_operand_arg(std::int32_t k) noexcept { return -(k + 1); }
constexpr std::int32_t fused_arg_operand(std::int32_t arg) noexcept { return -arg - 1; }

}  // namespace trainrt::detail

namespace trainrt::detail {

class GraphImpl;

/// The body of a Fused node (throws Internal for another kind).
const FusedBody& fused_body(const Node& node);

/// Whether output `out` of `node` may be written over operand `operand`'s buffer while the
/// node runs (in place), element by element: true for an elementwise op whose operand has
/// the output's type; for a fused node, when every read of the operand is by the group that
/// writes `out`, at the same element (the operand has the loop shape and the output's dtype,
/// and the group has no reductions).
bool may_write_over_operand(const GraphImpl& graph, std::int32_t node, std::int32_t out, std::size_t operand);

}  // namespace trainrt::detail
