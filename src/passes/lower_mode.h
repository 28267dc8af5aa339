// passes/lower_mode.h — choose the training or evaluation form of mode-dependent ops.
//
// Training: batch_norm becomes batch_norm_train (batch statistics) plus updates of its
// running statistics (assigned at the end of the step); dropout becomes dropout_apply with
// its key mixed with the seed and the step counter as operand.
// Evaluation: batch_norm becomes batch_norm_eval over the running statistics (or the
// training form when it has none); dropout becomes the identity.
// Run first in both pipelines. The training form needs the step counter variable
// kStepVariable to exist in the graph.
#pragma once

#include <cstdint>
#include <memory>

#include "passes/rewrite.h"

namespace trainrt::detail {

inline constexpr const char* kStepVariable = "optim.step";

std::shared_ptr<GraphImpl> lower_for_training(const GraphImpl& graph, std::uint64_t seed, ValueMap& map);
std::shared_ptr<GraphImpl> lower_for_evaluation(const GraphImpl& graph, ValueMap& map);

}  // namespace trainrt::detail
