// optim/build_optimizer.h — optimizers as graph builders.
//
// The update of every parameter is appended to the training graph (Phase::update) as
// elementwise ops followed by assignments, so it runs inside the step and later passes
// (fusion, precision) treat it like any other code. The learning rate is computed in the
// graph from the step counter and the base rate, both variables, so neither a schedule nor
// set_base_learning_rate() recompiles anything.
#pragma once

#include <memory>
#include <vector>

#include "ir/graph_impl.h"
#include "trainrt/optim.hpp"

namespace trainrt::detail {

inline constexpr const char* kBaseLrVariable = "optim.base_lr";
inline constexpr const char* kLrVariable = "optim.lr";

/// Creates a variable of kind `optimizer` (state the optimizer owns).
Value optimizer_variable(const std::shared_ptr<GraphImpl>& graph, const std::string& name, const Shape& shape,
                         const Init& init, DType dtype);

/// Throws InvalidArgument naming the field when a hyperparameter is out of range.
void validate(const optim::Optimizer& optimizer);

/// Appends the updates of `params` given their `grads`, the learning-rate computation and
/// the increment of `step` (the i64 step counter). With optim::None only the counter moves.
void build_optimizer(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer,
                     const std::vector<Value>& params, const std::vector<Value>& grads, const Value& step);

}  // namespace trainrt::detail
