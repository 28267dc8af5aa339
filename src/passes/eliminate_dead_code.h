// passes/eliminate_dead_code.h — mark nodes whose results nothing needs as dead.
#pragma once

#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

/// Keeps the producers of `roots`, every assign (a side effect) and everything they need,
/// and every variable (persistent storage outlives any one graph). Returns true if a node
/// was marked dead.
bool eliminate_dead_code(GraphImpl& graph, const std::vector<ValueId>& roots);

}  // namespace trainrt::detail
