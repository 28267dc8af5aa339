// runtime/cuda/driver.h — the CUDA driver entry points the CUDA backend and the NCCL
// communicator call, resolved at run time from the driver that probe_cuda() loaded (DESIGN
// decision 11: no CUDA library is linked). Declared with plain C types so that this header
// needs no CUDA header: CUresult is an int (0 = CUDA_SUCCESS), CUdevice an int, CUdeviceptr a
// 64-bit integer, contexts, streams, events, modules and functions opaque pointers; driver.cpp
// checks these against cuda.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace trainrt::detail {

using CuDevicePtr = std::uint64_t;  // CUdeviceptr
inline constexpr int kCudaSuccess = 0;
inline constexpr int kCudaErrorNotReady = 600;              // CUDA_ERROR_NOT_READY
inline constexpr unsigned kCudaStreamNonBlocking = 1;       // CU_STREAM_NON_BLOCKING
inline constexpr unsigned kCudaEventDisableTiming = 2;      // CU_EVENT_DISABLE_TIMING
inline constexpr int kCudaErrorOutOfMemory = 2;             // CUDA_ERROR_OUT_OF_MEMORY
inline constexpr int kCudaAttributeCcMajor = 75;            // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
inline constexpr int kCudaAttributeCcMinor = 76;            // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
inline constexpr int kCudaCaptureThreadLocal = 1;           // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
inline constexpr unsigned kCudaHostAllocPortable = 1;       // CU_MEMHOSTALLOC_PORTABLE
inline constexpr int kCudaErrorInvalidValue = 1;            // CUDA_ERROR_INVALID_VALUE
inline constexpr int kCudaErrorInvalidDevice = 101;         // CUDA_ERROR_INVALID_DEVICE
inline constexpr int kCudaErrorInvalidContext = 201;        // CUDA_ERROR_INVALID_CONTEXT
inline constexpr int kCudaErrorIllegalState = 401;          // CUDA_ERROR_ILLEGAL_STATE
inline constexpr int kCudaErrorNotSupported = 801;          // CUDA_ERROR_NOT_SUPPORTED
inline constexpr int kCudaErrorInvalidImage = 200;          // CUDA_ERROR_INVALID_IMAGE
inline constexpr int kCudaErrorInvalidHandle = 400;         // CUDA_ERROR_INVALID_HANDLE
inline constexpr int kCudaErrorNotFound = 500;              // CUDA_ERROR_NOT_FOUND
inline constexpr int kCudaErrorIllegalAddress = 700;        // CUDA_ERROR_ILLEGAL_ADDRESS
inline constexpr int kCudaErrorLaunchOutOfResources = 701;  // CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
inline constexpr int kCudaErrorLaunchFailed = 719;          // CUDA_ERROR_LAUNCH_FAILED
inline constexpr int kCudaErrorCaptureUnsupported = 900;    // CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
inline constexpr int kCudaErrorCaptureInvalidated = 901;    // CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
inline constexpr int kCudaErrorCaptureUnmatched = 903;      // CUDA_ERROR_STREAM_CAPTURE_UNMATCHED
inline constexpr int kCudaErrorCaptureUnjoined = 904;       // CUDA_ERROR_STREAM_CAPTURE_UNJOINED
inline constexpr int kCudaErrorCaptureIsolation = 905;      // CUDA_ERROR_STREAM_CAPTURE_ISOLATION
inline constexpr int kCudaErrorCaptureImplicit = 906;       // CUDA_ERROR_STREAM_CAPTURE_IMPLICIT
inline constexpr int kCudaErrorUnknown = 999;               // CUDA_ERROR_UNKNOWN
inline constexpr int kCudaCaptureStatusNone = 0;            // CU_STREAM_CAPTURE_STATUS_NONE
inline constexpr int kCudaCaptureStatusActive = 1;          // CU_STREAM_CAPTURE_STATUS_ACTIVE
inline constexpr int kCudaCaptureStatusInvalidated = 2;     // CU_STREAM_CAPTURE_STATUS_INVALIDATED

/// One byte range that an enqueued operation reads or writes, as declared for the emulated
/// device's happens-before check (CudaDriver::declare_accesses).
struct CudaAccess {
  CuDevicePtr address = 0;
  std::size_t bytes = 0;
  bool write = false;
};

/// The driver's entry points (each one the versioned symbol cuda.h maps its name to).
/// Immutable once loaded; every member may be called from any thread.
struct CudaDriver {
  int (*device_get)(int* device, int ordinal) = nullptr;
  int (*primary_ctx_retain)(void** ctx, int device) = nullptr;
  int (*primary_ctx_release)(int device) = nullptr;
  int (*ctx_get_current)(void** ctx) = nullptr;
  int (*ctx_set_current)(void* ctx) = nullptr;
  int (*stream_create)(void** stream, unsigned flags) = nullptr;
  int (*stream_destroy)(void* stream) = nullptr;
  int (*stream_query)(void* stream) = nullptr;
  int (*stream_synchronize)(void* stream) = nullptr;
  int (*event_create)(void** event, unsigned flags) = nullptr;
  int (*event_record)(void* event, void* stream) = nullptr;
  int (*event_query)(void* event) = nullptr;
  int (*event_destroy)(void* event) = nullptr;
  int (*mem_alloc)(CuDevicePtr* ptr, std::size_t bytes) = nullptr;
  int (*mem_free)(CuDevicePtr ptr) = nullptr;
  int (*memcpy_htod)(CuDevicePtr dst, const void* src, std::size_t bytes) = nullptr;
  int (*memcpy_dtoh)(void* dst, CuDevicePtr src, std::size_t bytes) = nullptr;
  int (*memset_d8)(CuDevicePtr dst, unsigned char value, std::size_t bytes) = nullptr;
  int (*pointer_get_attribute)(void* data, int attribute, CuDevicePtr ptr) = nullptr;
  int (*device_get_attribute)(int* value, int attribute, int device) = nullptr;
  int (*module_load_data)(void** module, const void* image) = nullptr;
  int (*module_unload)(void* module) = nullptr;
  int (*module_get_function)(void** function, void* module, const char* name) = nullptr;
  int (*launch_kernel)(void* function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                       unsigned block_y, unsigned block_z, unsigned shared_bytes, void* stream, void** params,
                       void** extra) = nullptr;
  int (*stream_wait_event)(void* stream, void* event, unsigned flags) = nullptr;
  int (*event_synchronize)(void* event) = nullptr;
  int (*mem_host_alloc)(void** ptr, std::size_t bytes, unsigned flags) = nullptr;
  int (*mem_free_host)(void* ptr) = nullptr;
  int (*memcpy_htod_async)(CuDevicePtr dst, const void* src, std::size_t bytes, void* stream) = nullptr;
  int (*memcpy_dtoh_async)(void* dst, CuDevicePtr src, std::size_t bytes, void* stream) = nullptr;
  int (*stream_begin_capture)(void* stream, int mode) = nullptr;
  int (*stream_end_capture)(void* stream, void** graph) = nullptr;
  int (*graph_instantiate)(void** exec, void* graph, unsigned long long flags) = nullptr;
  int (*graph_launch)(void* exec, void* stream) = nullptr;
  int (*graph_exec_destroy)(void* exec) = nullptr;
  int (*graph_destroy)(void* graph) = nullptr;
  int (*get_error_name)(int status, const char** name) = nullptr;
  int (*get_error_string)(int status, const char** text) = nullptr;
  int (*device_get_name)(char* name, int length, int device) = nullptr;
  int (*device_total_mem)(std::size_t* bytes, int device) = nullptr;
  int (*mem_get_info)(std::size_t* free, std::size_t* total) = nullptr;
  int (*ctx_synchronize)() = nullptr;
  int (*launch_host_func)(void* stream, void (*fn)(void* data), void* data) = nullptr;
  int (*stream_is_capturing)(void* stream, int* status) = nullptr;
  int (*memcpy_dtod_async)(CuDevicePtr dst, CuDevicePtr src, std::size_t bytes, void* stream) = nullptr;
  int (*memset_d8_async)(CuDevicePtr dst, unsigned char value, std::size_t bytes, void* stream) = nullptr;
  /// (optional: the emulated device in checking mode; nullptr otherwise, and callers skip it)
  /// Declares the byte ranges that the next operation this thread enqueues on `stream` reads
  /// and writes, and names it (`what`: "kernel axpy"), for the happens-before check. Copies
  /// and memsets declare their own ranges; kernels and host functions need this.
  int (*declare_accesses)(void* stream, const CudaAccess* accesses, std::size_t count, const char* what) = nullptr;
  int device_count = 0;   // as probe_cuda() counted them
  bool emulated = false;  // the emulated device (DESIGN decision 12): images are host builds

  /// The process-wide driver table: the emulated device's when TRAINRT_CUDA_DEVICE names it
  /// (runtime/cuda/emulated/config.h), else resolved on first call from the libcuda.so.1 that
  /// probe_cuda() loaded and initialized. Throws Error(Unsupported) saying why there is none:
  /// the driver library could not be loaded (with the loader's message), cuInit failed, the
  /// driver reports no device, or it lacks an entry point (named). Thread-safe.
  static const CudaDriver& get();

  /// "CUDA_ERROR_NOT_READY (600): device not ready"; never throws.
  std::string describe(int status) const;
  /// Throws Error(Runtime) "<what> failed: <describe(status)>" unless status is CUDA_SUCCESS.
  void check(int status, std::string_view what) const;
  /// declare_accesses when the driver has it (the emulated device in checking mode); nothing
  /// otherwise. Throws as check() when the emulator refuses the declaration.
  void declare(void* stream, const CudaAccess* accesses, std::size_t count, const char* what) const {
    if (declare_accesses != nullptr) check(declare_accesses(stream, accesses, count, what), "declaring accesses");
  }
};

/// Makes `ctx` the calling thread's current context for a scope and restores the one that was
/// current before (NCCL and the driver calls act on the current context; the caller's thread
/// keeps its own). Throws Error(Runtime) when the driver refuses; the restore never throws.
class ScopedContext {
 public:
  ScopedContext(const CudaDriver& driver, void* ctx);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  const CudaDriver& driver_;
  void* previous_ = nullptr;
  bool switched_ = false;
};

}  // namespace trainrt::detail
