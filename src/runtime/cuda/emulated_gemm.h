// runtime/cuda/emulated_gemm.h — cuBLASLt's matmul as the emulated device runs it (DESIGN
// decision 12): the same column-major call that GemmPlan hands to cuBLASLt (gemm_layout), read
// the way cuBLASLt reads it (operands as column-major matrices with leading dimensions, batch
// strides and transposes; the bias along its rows; f32 accumulation; TF32 rounding of f32
// inputs when asked) and computed with oneDNN's sgemm on the host, enqueued on the stream as
// a host function. It refuses what cuBLASLt refuses at run time: pointers below the plan's
// alignment, a missing bias or workspace, memory that is not the device's.
//
// Only cublasLtMatmul itself is not exercised this way; everything our code tells it is.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/gemm.h"

namespace trainrt::detail {

class EmulatedGemm {
 public:
  /// Validates `desc` (Error(InvalidArgument)) and takes a workspace of at most
  /// `max_workspace` bytes (1 MiB when allowed), which run() requires as cuBLASLt would.
  EmulatedGemm(const GemmDesc& desc, std::size_t max_workspace);
  ~EmulatedGemm();
  EmulatedGemm(const EmulatedGemm&) = delete;
  EmulatedGemm& operator=(const EmulatedGemm&) = delete;
  std::size_t workspace_bytes() const noexcept { return workspace_; }

  /// Enqueues C = alpha op(A) op(B) (+ bias, activation) on `stream` of `device` (GemmPlan::run's
  /// contract), declaring what it reads and writes. Throws Error(Runtime) for a pointer below
  /// the alignment, a missing bias or workspace (CUBLAS_STATUS_INVALID_VALUE, as cuBLASLt).
  void run(const CudaDevice& device, void* stream, const void* a, const void* b, void* c, const void* bias,
           void* workspace) const;

  /// The computation alone, on host memory: D (column-major `layout.out`) = alpha op(first)
  /// op(second), then the epilogue with `bias` along D's rows, in `desc`'s dtype with f32
  /// accumulation. Exposed for tests.
  static void compute(const GemmDesc& desc, const GemmLayout& layout, const void* first, const void* second, void* out,
                      const void* bias);

 private:
  struct Call;
  GemmDesc desc_;
  GemmLayout layout_;
  std::size_t workspace_ = 0;
  // Host-function data must outlive every replay of a captured graph that calls it: one record
  // per distinct set of pointers, kept for the plan's life (a step reuses the same arena).
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Call>> calls_;
};

}  // namespace trainrt::detail
