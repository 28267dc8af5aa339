// passes/fuse_elementwise.h — one kernel for each maximal group of elementwise ops.
//
// Elementwise ops (unary, binary, ternary, casts, activation backwards) whose results have
// the same shape join one group when the group stays a single step of the graph: no value
// leaves the group and comes back into it through another op. Scalar fills (Full) and
// broadcasts (BroadcastTo) that feed a group are read by the group directly, so they cost no
// kernel and no memory of their own. A group of two or more ops becomes one Fused node
// (ir/fused.h) whose outputs are the group's values read outside it (or kept as roots);
// values used only inside the group are never written to memory. Fusion never crosses a
// library call (matmul, convolution, attention, norms, pooling, losses): those are not
// elementwise.
//
// Dtypes: groups hold f32, f64, i32, i64 and bool values (the dtypes the CPU computes after
// legalize_dtypes); an op on another dtype stays unfused. Random ops (dropout) stay unfused.
//
// Run after legalize_dtypes and recompute_activations, before scheduling. Then
// fuse_update_groups (passes/fuse_update_groups.h) puts the optimizer's groups in one node.
#pragma once

#include <memory>
#include <vector>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// Returns the fused graph; `map` receives each old value's new counterpart (values only
/// read inside a group have none, unless they are `roots`). `fused_nodes` receives the
/// number of Fused nodes made.
std::shared_ptr<GraphImpl> fuse_elementwise(const GraphImpl& graph, const std::vector<ValueId>& roots, ValueMap& map,
                                            std::size_t& fused_nodes);

/// Whether the fusion passes can hold a value of this dtype.
bool fusible_dtype(DType dtype) noexcept;

}  // namespace trainrt::detail
