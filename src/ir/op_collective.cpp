// ir/op_collective.cpp — collectives of data-parallel training, with inference.
//
// all_reduce:     N tensors of one dtype -> N tensors, each the combination over the ranks
//                 times `scale` (1/world averages).
// reduce_scatter: N tensors of one dtype, flattened and concatenated (zero-padded to a multiple
//                 of world) -> this rank's block [S], S = ceil(total / world), times `scale`.
// all_gather:     [S] -> [S * world], every rank's block in rank order.
// The ranks' order of issue is `bucket` (the executor chains collectives in that order).
#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<Value> all_reduce(const std::vector<Value>& tensors, const CollectiveAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::AllReduce, tensors, attrs, loc);
}

Value reduce_scatter(const std::vector<Value>& tensors, const CollectiveAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::ReduceScatter, tensors, attrs, loc).front();
}

Value all_gather(const Value& shard, const CollectiveAttrs& attrs, const Loc& loc) {
  return add_op(OpKind::AllGather, {shard}, attrs, loc).front();
}

std::int64_t collective_block(std::int64_t total, std::int64_t world) { return (total + world - 1) / world; }

std::vector<TensorType> infer_collective(const InferContext& ctx) {
  const auto& a = std::get<CollectiveAttrs>(ctx.node().attrs);
  if (a.world < 1) ctx.fail(ErrorKind::InvalidArgument, cat("the world size must be >= 1, got ", a.world));
  const std::size_t n = ctx.node().inputs.size();
  if (n == 0) ctx.fail(ErrorKind::InvalidArgument, "a collective needs at least one tensor");
  const DType dtype = ctx.in(0).dtype;
  std::int64_t total = 0;
  std::vector<TensorType> types;
  for (std::size_t i = 0; i < n; ++i) {
    if (!ctx.has(i)) ctx.fail(ErrorKind::InvalidArgument, "a collective's tensors must all be present");
    if (ctx.in(i).dtype != dtype) ctx.fail(ErrorKind::DTypeMismatch, "a collective's tensors must have one dtype");
    total += ctx.in(i).shape.numel();
    types.push_back(ctx.in(i));
  }
  switch (ctx.kind()) {
    case OpKind::AllReduce: return types;
    case OpKind::ReduceScatter: return {TensorType{dtype, Shape{collective_block(total, a.world)}}};
    case OpKind::AllGather:
      if (n != 1 || ctx.in(0).shape.rank() != 1) ctx.fail(ErrorKind::ShapeMismatch, "all_gather takes one 1-D block");
      return {TensorType{dtype, Shape{ctx.in(0).shape[0] * a.world}}};
    default: break;
  }
  check_internal(false, "infer_collective: not a collective");
  return {};
}

}  // namespace trainrt::detail
