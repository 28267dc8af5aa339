// dist/nccl/nccl_call.h — one collective call of the NCCL communicator: checking its arguments
// against the communicator, mapping its dtype and reduction to NCCL's, and describing it in
// error messages. Pure functions: they need neither NCCL nor a device, so they are tested on
// any machine.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "trainrt/dist.hpp"

namespace trainrt::detail {

enum class CollectiveKind { AllReduce, ReduceScatter, AllGather, Broadcast };

/// One collective as NCCL takes it (out of place; send == recv where the interface is in place).
struct CollectiveCall {
  CollectiveKind kind = CollectiveKind::AllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  /// all_reduce, broadcast: elements of each buffer; reduce_scatter: elements received
  /// (send holds size * count); all_gather: elements sent (recv holds size * count).
  std::size_t count = 0;
  DType dtype = DType::f32;
  dist::ReduceOp op = dist::ReduceOp::sum;  // all_reduce, reduce_scatter
  int root = 0;                             // broadcast
};

/// "all_reduce", "reduce_scatter", "all_gather", "broadcast".
const char* name(CollectiveKind kind) noexcept;

/// "all_reduce of 1024 f32 (sum)", "reduce_scatter of 2 x 512 f16 (max)", "all_gather of 2 x
/// 512 bf16", "broadcast of 1024 i64 from rank 1"; `size` is the number of ranks.
std::string describe(const CollectiveCall& call, int size);

/// Checks `call` for rank `rank` of `size` ranks and returns its ncclDataType_t. Throws
/// Error(InvalidArgument) naming the operation and the offending argument for: a timeout that
/// is not positive; a dtype NCCL cannot reduce as asked (sum of bool: use max for a logical
/// or, min for a logical and); a null buffer with count > 0; a root outside [0, size); a byte
/// size that overflows size_t; buffers that overlap other than in NCCL's in-place layouts
/// (send == recv for all_reduce and broadcast, recv == send + rank * count elements for
/// reduce_scatter, send == recv + rank * count elements for all_gather).
int check_call(const CollectiveCall& call, int rank, int size, std::chrono::milliseconds timeout);

/// The ncclRedOp_t of `op` (ncclSum, ncclMax, ncclMin).
int nccl_reduce_op(dist::ReduceOp op) noexcept;

}  // namespace trainrt::detail
