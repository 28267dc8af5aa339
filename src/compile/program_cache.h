// compile/program_cache.h — compiled graphs kept in the kernel cache, so that a warm process
// runs no passes (DESIGN decision 4).
//
// The key is the SHA-256 of: libtrainrt's version and the graph format, the user's graph as
// compiled (compile/serialize_graph.h: every node, attribute, name and source location),
// and everything else that shapes the result (the loss and outputs, the optimizer and its
// schedule, the seed, the memory budget, fusion on or off; for evaluation the fetches). The
// entry is the serialized ScheduledGraph (CacheKind::program); a damaged or foreign entry
// is a logged miss and the passes run. The generated kernels are found by their own keys
// (compile/kernel_builder.h), which the graph determines.
#pragma once

#include <vector>

#include "core/sha256.h"
#include "passes/pipeline.h"

namespace trainrt::detail {

class KernelCache;

/// compile_training_graph(source, request), or its cached result. `hit` tells which.
ScheduledGraph cached_training_graph(const GraphImpl& source, const TrainingRequest& request, KernelCache& cache,
                                     bool& hit);

/// The cache key of cached_training_graph(source, request): a fingerprint of everything that
/// shapes the training step (data-parallel ranks compare theirs at compile()).
Digest training_graph_key(const GraphImpl& source, const TrainingRequest& request);

/// compile_evaluation_graph(source, fetches, fuse, autocast, target), or its cached result.
ScheduledGraph cached_evaluation_graph(const GraphImpl& source, const std::vector<ValueId>& fetches, bool fuse,
                                       DType autocast, CompileTarget target, KernelCache& cache, bool& hit);

}  // namespace trainrt::detail
