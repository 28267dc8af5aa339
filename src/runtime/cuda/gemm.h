// runtime/cuda/gemm.h — a matmul node as the CUDA backend hands it to cuBLASLt (DESIGN
// decision 3: GEMM through cuBLASLt, with bias and ReLU/GELU epilogues).
//
// libtrainrt's tensors are row-major; cuBLASLt's matrices are column-major. A row-major X of
// r x c with leading dimension c is, read column-major, X^T (c x r) with the same leading
// dimension, so C = op(A) op(B) (row-major, m x n) is computed as C^T = op(B)^T op(A)^T:
// cuBLASLt's first operand is our B, its second our A, its m and n are our n and m, and each
// transpose flag keeps its meaning. The bias of the epilogue runs along cuBLASLt's rows, which
// are our columns: one value per output feature, as nn::Linear has it. gemm_layout() is that
// mapping alone (no CUDA needed, tested on every machine); runtime/cuda/cublaslt.h runs it.
#pragma once

#include <cstdint>

#include "trainrt/dtype.hpp"

namespace trainrt::detail {

enum class GemmEpilogue : std::uint8_t { none, bias, bias_relu, bias_gelu_tanh };

/// Row-major, batched: C[b] (m x n) = alpha * op(A[b]) op(B[b]) (+ bias[n], then the
/// activation), with op(A) m x k and op(B) k x n.
struct GemmDesc {
  DType dtype = DType::f32;  // of A, B, C and the bias: f32, f16 or bf16 (f32 accumulation)
  std::int64_t batch = 1, m = 0, n = 0, k = 0;
  bool transpose_a = false;  // A is stored k x m
  bool transpose_b = false;  // B is stored n x k
  /// Elements between consecutive matrices of a batch; 0 reuses one matrix for every batch
  /// (a weight shared by the batch). C is always dense: stride m * n.
  std::int64_t stride_a = 0, stride_b = 0;
  GemmEpilogue epilogue = GemmEpilogue::none;
  bool tf32 = false;  // f32 only: TF32 tensor cores (about 10 mantissa bits)
  float alpha = 1.0f;
  std::int64_t alignment = 256;  // bytes every pointer is aligned to (cuBLASLt picks kernels by it)
};

/// Throws Error(InvalidArgument) naming the field for a GemmDesc cuBLASLt cannot run: a dtype
/// other than f32/f16/bf16, sizes < 1 (or beyond int32 for m, n, k), a stride smaller than
/// its matrix and not 0, TF32 for a 16-bit dtype, an alignment that is not a power of two >= 2.
void validate(const GemmDesc& desc);

/// One cuBLASLt operand: column-major rows x cols, leading dimension ld, batch stride.
struct GemmOperand {
  std::int64_t rows = 0, cols = 0, ld = 0, stride = 0;
  bool transpose = false;
};

/// What cuBLASLt is called with: D (m x n, column-major) = op(first) op(second).
struct GemmLayout {
  std::int64_t m = 0, n = 0, k = 0;  // cuBLASLt's
  GemmOperand first, second;         // our B, our A
  GemmOperand out;                   // our C
};

/// The column-major call for a row-major GemmDesc (validated first).
GemmLayout gemm_layout(const GemmDesc& desc);

}  // namespace trainrt::detail
