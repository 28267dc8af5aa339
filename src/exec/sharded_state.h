// exec/sharded_state.h — the optimizer state of a Program with sharded state
// (DataParallel::shard_optimizer_state), seen per parameter.
//
// Sharded, rank r holds one block of each bucket's flattened state ("optim.shard<b>.exp_avg"
// of `block` elements; optim/build_optimizer.h). Program::variables, get and set show the
// unsharded names instead ("fc1.weight.exp_avg"), so checkpoints move between sharded and
// unsharded runs: get() gathers the blocks from every rank (a collective: every rank calls
// it, in the same order), set() keeps the part of the full tensor this rank owns.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exec/variables.h"
#include "optim/build_optimizer.h"
#include "trainrt/dist.hpp"

namespace trainrt::detail {

class ShardedState {
 public:
  /// The layout of `source`'s parameters (the user's graph, in node order) over `comm`.
  ShardedState(const std::shared_ptr<GraphImpl>& source, std::shared_ptr<dist::Communicator> comm,
               std::size_t bucket_bytes);

  /// `names` (of the VariableStore) with every block replaced by the per-parameter names.
  std::vector<std::string> expand(const std::vector<std::string>& names) const;
  /// The full state tensor `name` ("<param>.<suffix>") gathered from every rank, or nullopt
  /// when `name` is not a sharded state. Collective.
  std::optional<Tensor> get(const VariableStore& vars, std::string_view name) const;
  /// Stores this rank's part of `value` as state `name`; false when `name` is not a sharded
  /// state. Throws on a shape or dtype that differs from the parameter's.
  bool set(VariableStore& vars, std::string_view name, const Tensor& value) const;

 private:
  struct Param {
    std::string name;
    TensorType type;
    std::size_t bucket = 0;
    std::int64_t offset = 0;  // in the bucket's flat layout
  };
  /// The parameter and the block variable behind "<param>.<suffix>", if it is one.
  std::optional<std::pair<const Param*, const VariableEntry*>> resolve(const VariableStore& vars,
                                                                       std::string_view name) const;

  std::shared_ptr<dist::Communicator> comm_;
  std::vector<ShardBucket> layout_;
  std::vector<Param> params_;
};

}  // namespace trainrt::detail
