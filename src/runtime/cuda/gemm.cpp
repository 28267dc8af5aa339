// runtime/cuda/gemm.cpp — checking a GemmDesc and mapping it to cuBLASLt's column-major call.
#include "runtime/cuda/gemm.h"

#include <cstdint>
#include <limits>

#include "core/error.h"

namespace trainrt::detail {

namespace {

[[noreturn]] void refuse(const std::string& what) { fail(ErrorKind::InvalidArgument, cat("GEMM: ", what)); }

}  // namespace

void validate(const GemmDesc& d) {
  if (d.dtype != DType::f32 && d.dtype != DType::f16 && d.dtype != DType::bf16)
    refuse(cat("dtype ", name(d.dtype), " (cuBLASLt runs f32, f16 and bf16)"));
  constexpr std::int64_t kMax = std::numeric_limits<std::int32_t>::max();
  for (const auto& [field, v] : {std::pair{"m", d.m}, std::pair{"n", d.n}, std::pair{"k", d.k}})
    if (v < 1 || v > kMax) refuse(cat(field, " = ", v, " (must be in 1 .. ", kMax, ")"));
  if (d.batch < 1) refuse(cat("batch = ", d.batch, " (must be >= 1)"));
  if (d.stride_a != 0 && d.stride_a < d.m * d.k)
    refuse(cat("stride_a = ", d.stride_a, " is below the ", d.m * d.k, " elements of A (0 shares one A)"));
  if (d.stride_b != 0 && d.stride_b < d.k * d.n)
    refuse(cat("stride_b = ", d.stride_b, " is below the ", d.k * d.n, " elements of B (0 shares one B)"));
  if (d.tf32 && d.dtype != DType::f32) refuse(cat("TF32 asked for ", name(d.dtype), " operands (f32 only)"));
  if (d.alignment < 2 || (d.alignment & (d.alignment - 1)) != 0)
    refuse(cat("alignment = ", d.alignment, " (a power of two, in bytes)"));
}

GemmLayout gemm_layout(const GemmDesc& d) {
  validate(d);
  GemmLayout l;
  l.m = d.n;
  l.n = d.m;
  l.k = d.k;
  // cuBLASLt's first operand, op(first) m x k = op(B)^T: B stored row-major k x n is column-major
  // n x k (no transpose); stored n x k (transpose_b) it is column-major k x n, transposed.
  l.first =
      d.transpose_b ? GemmOperand{d.k, d.n, d.k, d.stride_b, true} : GemmOperand{d.n, d.k, d.n, d.stride_b, false};
  // Its second, op(second) k x n = op(A)^T: A stored m x k is column-major k x m; stored k x m
  // (transpose_a) it is column-major m x k, transposed.
  l.second =
      d.transpose_a ? GemmOperand{d.m, d.k, d.m, d.stride_a, true} : GemmOperand{d.k, d.m, d.k, d.stride_a, false};
  l.out = GemmOperand{d.n, d.m, d.n, d.m * d.n, false};
  return l;
}

}  // namespace trainrt::detail
