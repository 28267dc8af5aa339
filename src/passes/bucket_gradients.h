// passes/bucket_gradients.h — data-parallel gradient synchronization, as graph ops.
//
// The gradients are grouped into buckets of about `bucket_bytes` (one dtype per bucket), in
// the reverse of the parameters' creation order — roughly the order backward produces them,
// as in PyTorch's DistributedDataParallel — and each bucket becomes one collective node whose
// operands are its gradients. The executor runs a collective as soon as its last gradient
// exists (and the bucket before it is done: every rank issues them in one order), while the
// rest of backward goes on.
#pragma once

#include <cstddef>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

/// Buckets of indices into `grads`: reverse order, one dtype per bucket, each closed once it
/// holds at least `bucket_bytes` (a tensor larger than that is a bucket of its own).
std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<Value>& grads, std::size_t bucket_bytes);

/// Replaces every gradient by its average over `world` ranks: one all_reduce per bucket.
/// Returns the new gradients, in the order of `grads`.
std::vector<Value> average_gradients(const std::vector<Value>& grads, std::int64_t world, std::size_t bucket_bytes);

}  // namespace trainrt::detail
