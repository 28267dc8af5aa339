// ir/op_matmul.cpp — batched matrix product with numpy semantics.
#include "core/error.h"
#include "ir/builder.h"
#include "trainrt/ops.hpp"

namespace trainrt {

using namespace detail;

Value matmul(const Value& a, const Value& b, const MatmulOptions& options, Loc loc) {
  if (!a.valid() || !b.valid())
    fail(ErrorKind::InvalidArgument, cat("matmul at ", where(loc), ": an operand is absent"));
  if (a.rank() == 0 || b.rank() == 0)
    fail(ErrorKind::ShapeMismatch, cat("matmul at ", where(loc), ": operands must have rank >= 1 (operands: ",
                                       a.to_string(), ", ", b.to_string(), ")"));
  // numpy: a vector operand becomes a matrix whose extra axis is dropped from the result.
  const bool a_vec = a.rank() == 1, b_vec = b.rank() == 1;
  const Value a2 = a_vec ? unsqueeze(a, 0, loc) : a;
  const Value b2 = b_vec ? unsqueeze(b, 1, loc) : b;
  MatmulAttrs attrs{options.transpose_a && !a_vec, options.transpose_b && !b_vec};
  Value r = add_op1(OpKind::Matmul, {a2, b2}, attrs, loc);
  if (a_vec) r = squeeze(r, -2, loc);
  if (b_vec) r = squeeze(r, -1, loc);
  return r;
}

namespace detail {

std::vector<TensorType> infer_matmul(const InferContext& ctx) {
  const TensorType& a = ctx.in(0);
  const TensorType& b = ctx.in(1);
  const auto& t = ctx.attrs<MatmulAttrs>();
  if (a.dtype != b.dtype) ctx.fail(ErrorKind::DTypeMismatch, "operands must have the same dtype");
  if (!is_floating(a.dtype)) ctx.fail(ErrorKind::DTypeMismatch, cat("needs a floating dtype, got ", name(a.dtype)));
  if (a.shape.rank() < 2 || b.shape.rank() < 2) ctx.fail(ErrorKind::ShapeMismatch, "operands must have rank >= 2");
  const std::int64_t ra = a.shape.rank(), rb = b.shape.rank();
  const std::int64_t m = t.transpose_a ? a.shape[ra - 1] : a.shape[ra - 2];
  const std::int64_t ka = t.transpose_a ? a.shape[ra - 2] : a.shape[ra - 1];
  const std::int64_t kb = t.transpose_b ? b.shape[rb - 1] : b.shape[rb - 2];
  const std::int64_t n = t.transpose_b ? b.shape[rb - 2] : b.shape[rb - 1];
  if (ka != kb)
    ctx.fail(ErrorKind::ShapeMismatch, cat("contracting dimensions differ: ", ka, " (a", t.transpose_a ? "^T" : "",
                                           ") vs ", kb, " (b", t.transpose_b ? "^T" : "", ")"));
  std::vector<std::int64_t> ba(a.shape.dims().begin(), a.shape.dims().end() - 2);
  std::vector<std::int64_t> bb(b.shape.dims().begin(), b.shape.dims().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes(Shape(ba), Shape(bb));
  } catch (const Error&) {
    ctx.fail(ErrorKind::ShapeMismatch, "batch dimensions do not broadcast");
  }
  std::vector<std::int64_t> dims = batch.dims();
  dims.push_back(m);
  dims.push_back(n);
  return {TensorType{a.dtype, Shape(dims)}};
}

}  // namespace detail
}  // namespace trainrt
