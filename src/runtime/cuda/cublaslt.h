// runtime/cuda/cublaslt.h — cuBLASLt, loaded at run time (DESIGN decision 11), and the GEMMs of
// the CUDA backend through it (runtime/cuda/gemm.h has the row-major to column-major mapping).
//
// A GemmPlan is made once per matmul node when a Program is built: descriptors, layouts and
// the algorithm cuBLASLt's heuristic picks for the workspace allowed. run() only enqueues
// cublasLtMatmul on a stream: no allocation, no host wait.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/gemm.h"

namespace trainrt::detail {

class CublasLt {
 public:
  /// The process-wide cuBLASLt, loaded on first call from the first usable entry of
  /// search_order(). Throws Error(Unsupported) listing every place tried and why. Thread-safe.
  static const CublasLt& get();
  /// $TRAINRT_CUBLASLT (a path) when set, then libcublasLt.so.13 and .so.12 (the loader's
  /// search), then /usr/local/cuda/lib64/libcublasLt.so.13 and $CUDA_HOME/lib64/libcublasLt.so.13.
  static std::vector<std::string> search_order();
  /// Loads `library`. Throws Error(NotFound) when dlopen fails (the loader's message) and
  /// Error(Unsupported) naming the entry points a library lacks (not cuBLASLt, or too old).
  static std::unique_ptr<CublasLt> open(const std::string& library);
  ~CublasLt();
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;

  /// cublasLtGetVersion(): 130100 for 13.1.0.
  std::size_t version() const noexcept { return version_; }
  /// The file it was loaded from.
  const std::string& path() const noexcept { return path_; }
  /// "CUBLAS_STATUS_NOT_INITIALIZED (1): the library was not initialized"; never throws.
  std::string describe(int status) const;

  struct Api;  // the entry points, declared in cublaslt.cpp with cublasLt.h's types
  const Api& api() const noexcept { return *api_; }

 private:
  CublasLt() = default;
  std::unique_ptr<Api> api_;
  std::string path_;
  std::size_t version_ = 0;
};

/// A cuBLASLt handle bound to one device's primary context. Not copyable.
class CublasLtHandle {
 public:
  /// `lib` and `device` are borrowed and must outlive this. Throws Error(Runtime) with
  /// cuBLASLt's status when cublasLtCreate fails.
  CublasLtHandle(const CublasLt& lib, const CudaDevice& device);
  ~CublasLtHandle();
  CublasLtHandle(const CublasLtHandle&) = delete;
  CublasLtHandle& operator=(const CublasLtHandle&) = delete;
  const CublasLt& lib() const noexcept { return lib_; }
  const CudaDevice& device() const noexcept { return device_; }
  void* get() const noexcept { return handle_; }

 private:
  const CublasLt& lib_;
  const CudaDevice& device_;
  void* handle_ = nullptr;
};

class EmulatedGemm;

/// One GEMM's descriptors and algorithm; on the emulated device, its emulated cuBLASLt call
/// (runtime/cuda/emulated_gemm.h) instead.
class GemmPlan {
 public:
  /// Validates `desc` (Error(InvalidArgument)), builds the descriptors and asks cuBLASLt's
  /// heuristic for an algorithm using at most `max_workspace` bytes. Throws Error(Unsupported)
  /// when cuBLASLt has none for this shape, dtype, epilogue and alignment (saying which), and
  /// Error(Runtime) for a failing cuBLASLt call. `handle` must outlive the plan.
  GemmPlan(const CublasLtHandle& handle, const GemmDesc& desc, std::size_t max_workspace);
  ~GemmPlan();
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  const GemmDesc& desc() const noexcept { return desc_; }
  /// Workspace run() needs (planned into the arena with everything else).
  std::size_t workspace_bytes() const noexcept { return workspace_; }
  /// Enqueues C = alpha op(A) op(B) (+ bias, activation) on `stream` (a CUstream; nullptr:
  /// the legacy default stream) and returns. `bias` holds n elements of desc().dtype when the
  /// epilogue has a bias (else nullptr); `workspace` workspace_bytes() bytes. Pointers must
  /// meet desc().alignment. Throws Error(Runtime) when cuBLASLt refuses the launch. One plan
  /// runs from one thread at a time (it sets the bias pointer on its descriptor).
  void run(void* stream, const void* a, const void* b, void* c, const void* bias, void* workspace) const;

 private:
  struct Descriptors;
  const CublasLtHandle& handle_;
  GemmDesc desc_;
  std::unique_ptr<Descriptors> d_;
  std::unique_ptr<EmulatedGemm> emulated_;
  std::size_t workspace_ = 0;
};

}  // namespace trainrt::detail
