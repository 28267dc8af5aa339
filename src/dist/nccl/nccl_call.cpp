// dist/nccl/nccl_call.cpp — argument checks, dtype mapping and descriptions of collectives.
#include "dist/nccl/nccl_call.h"

#include <nccl.h>

#include <cstdint>

#include "core/error.h"

namespace trainrt::detail {

namespace {

const char* name(dist::ReduceOp op) {
  switch (op) {
    case dist::ReduceOp::sum: return "sum";
    case dist::ReduceOp::max: return "max";
    case dist::ReduceOp::min: return "min";
  }
  return "?";
}

bool reduces(CollectiveKind kind) { return kind == CollectiveKind::AllReduce || kind == CollectiveKind::ReduceScatter; }

// The bytes of `elements` elements of `bytes_per_element`, or throws naming the call.
std::size_t bytes_of(std::size_t elements, std::size_t factor, std::size_t bytes_per_element,
                     const CollectiveCall& call, int size) {
  std::size_t n = 0, bytes = 0;
  if (__builtin_mul_overflow(elements, factor, &n) || __builtin_mul_overflow(n, bytes_per_element, &bytes))
    fail(ErrorKind::InvalidArgument, cat("nccl ", describe(call, size), ": the buffer size overflows (count ",
                                         call.count, " x ", factor, " x ", bytes_per_element, " bytes)"));
  return bytes;
}

bool overlap(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

}  // namespace

const char* name(CollectiveKind kind) noexcept {
  switch (kind) {
    case CollectiveKind::AllReduce: return "all_reduce";
    case CollectiveKind::ReduceScatter: return "reduce_scatter";
    case CollectiveKind::AllGather: return "all_gather";
    case CollectiveKind::Broadcast: return "broadcast";
  }
  return "collective";
}

std::string describe(const CollectiveCall& call, int size) {
  const std::string type(trainrt::name(call.dtype));
  switch (call.kind) {
    case CollectiveKind::AllReduce: return cat("all_reduce of ", call.count, " ", type, " (", name(call.op), ")");
    case CollectiveKind::ReduceScatter:
      return cat("reduce_scatter of ", size, " x ", call.count, " ", type, " (", name(call.op), ")");
    case CollectiveKind::AllGather: return cat("all_gather of ", size, " x ", call.count, " ", type);
    case CollectiveKind::Broadcast: return cat("broadcast of ", call.count, " ", type, " from rank ", call.root);
  }
  return "collective";
}

int nccl_reduce_op(dist::ReduceOp op) noexcept {
  switch (op) {
    case dist::ReduceOp::sum: return ncclSum;
    case dist::ReduceOp::max: return ncclMax;
    case dist::ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

int check_call(const CollectiveCall& call, int rank, int size, std::chrono::milliseconds timeout) {
  const std::string what = cat("nccl ", describe(call, size), " on rank ", rank, " of ", size);
  if (timeout.count() <= 0)
    fail(ErrorKind::InvalidArgument, cat(what, ": the timeout must be positive, got ", timeout.count(), " ms"));
  if (reduces(call.kind) && call.op != dist::ReduceOp::sum && call.op != dist::ReduceOp::max &&
      call.op != dist::ReduceOp::min)
    fail(ErrorKind::InvalidArgument, cat(what, ": unknown reduction ", static_cast<int>(call.op)));

  int dtype = 0;
  switch (call.dtype) {
    case DType::f32: dtype = ncclFloat32; break;
    case DType::f64: dtype = ncclFloat64; break;
    case DType::f16: dtype = ncclFloat16; break;
    case DType::bf16: dtype = ncclBfloat16; break;
    case DType::i32: dtype = ncclInt32; break;
    case DType::i64: dtype = ncclInt64; break;
    case DType::boolean:
      // A bool is one byte holding 0 or 1: max of bytes is a logical or and min a logical and,
      // but a sum of bytes is neither a bool nor a count (it wraps at 256).
      if (reduces(call.kind) && call.op == dist::ReduceOp::sum)
        fail(ErrorKind::InvalidArgument,
             cat(what,
                 ": a sum of bool is not a bool; use max for a logical or, min for a logical and, or reduce "
                 "an i32 copy to count"));
      dtype = ncclUint8;
      break;
    default: fail(ErrorKind::InvalidArgument, cat(what, ": unknown dtype ", static_cast<int>(call.dtype)));
  }

  if (call.kind == CollectiveKind::Broadcast && (call.root < 0 || call.root >= size))
    fail(ErrorKind::InvalidArgument, cat(what, ": root ", call.root, " is not a rank (0 to ", size - 1, ")"));
  if (call.count == 0) return dtype;
  if (call.send == nullptr) fail(ErrorKind::InvalidArgument, cat(what, ": the send buffer is null"));
  if (call.recv == nullptr) fail(ErrorKind::InvalidArgument, cat(what, ": the receive buffer is null"));

  // Bytes of each buffer, and where an in-place call must put `send` relative to `recv`.
  const std::size_t element = size_of(call.dtype);
  const auto ranks = static_cast<std::size_t>(size);
  std::size_t send_bytes = bytes_of(call.count, 1, element, call, size);
  std::size_t recv_bytes = send_bytes;
  const auto* send = static_cast<const char*>(call.send);
  const auto* recv = static_cast<const char*>(call.recv);
  bool in_place = send == recv;
  const std::size_t block = send_bytes * static_cast<std::size_t>(rank);
  if (call.kind == CollectiveKind::ReduceScatter) {
    send_bytes = bytes_of(call.count, ranks, element, call, size);
    in_place = recv == send + block;
  } else if (call.kind == CollectiveKind::AllGather) {
    recv_bytes = bytes_of(call.count, ranks, element, call, size);
    in_place = send == recv + block;
  }
  if (!in_place && overlap(send, send_bytes, recv, recv_bytes))
    fail(ErrorKind::InvalidArgument,
         cat(what, ": the send buffer (", send_bytes, " bytes at ", call.send, ") and the receive buffer (", recv_bytes,
             " bytes at ", call.recv, ") overlap; in place, ",
             call.kind == CollectiveKind::ReduceScatter ? "recv must be send + rank * count elements"
             : call.kind == CollectiveKind::AllGather   ? "send must be recv + rank * count elements"
                                                        : "send and recv must be the same pointer"));
  return dtype;
}

}  // namespace trainrt::detail
