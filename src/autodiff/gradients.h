// autodiff/gradients.h — reverse-mode differentiation over the static graph.
#pragma once

#include <memory>
#include <vector>

#include "ir/graph_impl.h"
#include "trainrt/graph.hpp"

namespace trainrt::detail {

/// Appends the gradient of the scalar `loss` with respect to each of `wrt` to `graph`
/// (nodes in Phase::backward, located at the forward op they differentiate) and returns
/// them in order. Values `loss` does not depend on get zeros. Only nodes on a path from
/// some `wrt` to `loss` are differentiated; contributions to one value are summed in a
/// fixed order, so the graph built is deterministic.
std::vector<Value> build_gradients(const std::shared_ptr<GraphImpl>& graph, ValueId loss,
                                   const std::vector<ValueId>& wrt);

}  // namespace trainrt::detail
