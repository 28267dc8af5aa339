// passes/recompute_activations.h — trade compute for memory: recompute cheap forward values
// in the backward pass instead of keeping them alive between the two.
//
// A candidate is a forward value that backward nodes read, made by a cheap op: an
// elementwise op, or the normalized output of batch_norm_train / layer_norm (their saved
// statistics are small and stay). At the first backward reader, the producer is cloned —
// recursively, when its own operands are recomputed too (relu(batch_norm(x)) keeps only x)
// — and every later reader uses the clone; the forward value then dies with its last
// forward reader. The same kernels on the same operands give the same bits, so training is
// unchanged. Values are picked largest first, each kept only if the planned arena shrinks,
// until the plan fits the budget or no candidate helps. Run after legalization, before
// scheduling; the arena estimate ignores kernels' scratch space (the executor adds it).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "passes/rewrite.h"

namespace trainrt::detail {

struct RecomputeResult {
  std::shared_ptr<GraphImpl> graph;               // the input graph when nothing was recomputed
  std::size_t recomputed = 0;                     // nodes cloned into the backward pass
  std::size_t arena_before = 0, arena_after = 0;  // estimates, without scratch
};

/// `roots` are kept alive to the end (the loss, fetched outputs). `map` receives the value
/// map into the result (identity when nothing changed).
RecomputeResult recompute_activations(const std::shared_ptr<GraphImpl>& graph, const std::vector<ValueId>& roots,
                                      std::size_t budget, ValueMap& map);

}  // namespace trainrt::detail
