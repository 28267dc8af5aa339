// passes/schedule.h — the order in which a step runs the graph's nodes.
//
// Live nodes run in index order (a topological order), except assignments, which run last:
// every read of a variable's old value then happens before it is overwritten, and a step
// stopped by the finite-loss check leaves every variable untouched. Issue 4's parallel
// executor turns this order into a DAG; the sequential CPU executor runs it as is.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

std::vector<std::int32_t> schedule_nodes(const GraphImpl& graph);

}  // namespace trainrt::detail
