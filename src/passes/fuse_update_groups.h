// passes/fuse_update_groups.h — the optimizer update of every parameter in one kernel.
//
// After fuse_elementwise, each parameter's update (and its optimizer state's) is one Fused
// node. This pass merges the update-phase Fused nodes that do not depend on each other into
// one multi-group node: one kernel launch (one task on the CPU, one grid on CUDA) updates
// all parameters, each group keeping its own loop shape. Nodes that depend on another
// update node (those reading the learning rate that the schedule computes in the same
// phase) go into a later merged node. Run right after fuse_elementwise.
#pragma once

#include <memory>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// Returns the rewritten graph; `merged` receives the number of Fused nodes merged away.
std::shared_ptr<GraphImpl> fuse_update_groups(const GraphImpl& graph, ValueMap& map, std::size_t& merged);

}  // namespace trainrt::detail
