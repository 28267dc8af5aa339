// optim/build_optimizer.h — optimizers as graph builders.
//
// The update of every parameter is appended to the training graph (Phase::update) as
// elementwise ops followed by assignments, so it runs inside the step and later passes
// (fusion, precision) treat it like any other code. The learning rate is computed in the
// graph from the step counter and the base rate, both variables, so neither a schedule nor
// set_base_learning_rate() recompiles anything.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph_impl.h"
#include "trainrt/optim.hpp"

namespace trainrt::detail {

inline constexpr const char* kBaseLrVariable = "optim.base_lr";
inline constexpr const char* kLrVariable = "optim.lr";
/// Updates applied (steps not skipped), with loss scaling: the optimizers' own step count.
inline constexpr const char* kAppliedStepsVariable = "optim.applied_steps";

/// Creates a variable of kind `optimizer` (state the optimizer owns).
Value optimizer_variable(const std::shared_ptr<GraphImpl>& graph, const std::string& name, const Shape& shape,
                         const Init& init, DType dtype);

/// Throws InvalidArgument naming the field when a hyperparameter is out of range.
void validate(const optim::Optimizer& optimizer);

/// Appends the updates of `params` given their `grads`, the learning-rate computation and
/// the increment of `step` (the i64 step counter). With optim::None only the counter moves.
/// `skip` (a bool scalar, optional: optim/gradient_guard.h) keeps every parameter and piece
/// of optimizer state as it was when true; the step counter and the schedule still advance.
void build_optimizer(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer,
                     const std::vector<Value>& params, const std::vector<Value>& grads, const Value& step,
                     const Value& skip = {});

/// One bucket of optimizer-state sharding: parameters `members` (indices into the parameter
/// list) flattened one after another (`offsets`, `total` elements), zero-padded to
/// `block` * world; rank r owns elements [r * block, (r + 1) * block).
struct ShardBucket {
  std::vector<std::size_t> members;
  std::vector<std::int64_t> offsets;
  std::int64_t total = 0;
  std::int64_t block = 0;
};
/// The buckets of `params` (in the gradient buckets' order: passes/bucket_gradients.h).
std::vector<ShardBucket> shard_layout(const std::vector<Value>& params, std::int64_t world, std::size_t bucket_bytes);
/// The name prefix of bucket `bucket`'s state blocks: "optim.shard<b>" ("optim.shard0.exp_avg").
std::string shard_state_owner(std::size_t bucket);

/// The update with sharded optimizer state over `world` ranks, for rank `rank`: each
/// bucket's gradients are reduce-scattered (averaged), this rank updates its block of the
/// bucket's parameters with state tensors of the block's size, and the blocks are
/// all-gathered back into every parameter. Optimizer memory per rank is 1/world. Throws
/// Unsupported for optim::LAMB, whose trust ratio needs each whole parameter's norm.
void build_sharded_optimizer(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer,
                             const std::vector<Value>& params, const std::vector<Value>& grads, const Value& step,
                             std::int64_t world, std::int64_t rank, std::size_t bucket_bytes);

}  // namespace trainrt::detail
