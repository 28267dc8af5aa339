// runtime/cuda/driver.cpp — resolving the driver's entry points from the probed libcuda, and
// its error messages. cuda.h is included only to check that the plain C types of
// driver.h match the driver's ABI.
#include "runtime/cuda/driver.h"

#include <cuda.h>

#include <type_traits>
#include <vector>

#include "core/dynamic_library.h"
#include "core/error.h"
#include "runtime/cuda/emulated/config.h"
#include "runtime/cuda/emulated/emulator.h"
#include "runtime/device.h"

namespace trainrt::detail {

static_assert(sizeof(CUresult) == sizeof(int) && CUDA_SUCCESS == kCudaSuccess);
static_assert(CUDA_ERROR_NOT_READY == kCudaErrorNotReady);
static_assert(CU_STREAM_NON_BLOCKING == kCudaStreamNonBlocking && CU_EVENT_DISABLE_TIMING == kCudaEventDisableTiming);
static_assert(std::is_same_v<CUdevice, int> && std::is_same_v<CUdeviceptr, unsigned long long> &&
              sizeof(CuDevicePtr) == sizeof(CUdeviceptr));
static_assert(std::is_pointer_v<CUcontext> && std::is_pointer_v<CUstream> && std::is_pointer_v<CUevent>);
static_assert(sizeof(CUpointer_attribute) == sizeof(int) && sizeof(CUdevice_attribute) == sizeof(int));
static_assert(CUDA_ERROR_OUT_OF_MEMORY == kCudaErrorOutOfMemory);
static_assert(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == kCudaAttributeCcMajor &&
              CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == kCudaAttributeCcMinor);
static_assert(std::is_pointer_v<CUmodule> && std::is_pointer_v<CUfunction>);
static_assert(std::is_pointer_v<CUgraph> && std::is_pointer_v<CUgraphExec>);
static_assert(CUDA_ERROR_INVALID_VALUE == kCudaErrorInvalidValue &&
              CUDA_ERROR_INVALID_CONTEXT == kCudaErrorInvalidContext &&
              CUDA_ERROR_INVALID_IMAGE == kCudaErrorInvalidImage &&
              CUDA_ERROR_INVALID_HANDLE == kCudaErrorInvalidHandle && CUDA_ERROR_NOT_FOUND == kCudaErrorNotFound &&
              CUDA_ERROR_ILLEGAL_ADDRESS == kCudaErrorIllegalAddress &&
              CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES == kCudaErrorLaunchOutOfResources &&
              CUDA_ERROR_LAUNCH_FAILED == kCudaErrorLaunchFailed && CUDA_ERROR_UNKNOWN == kCudaErrorUnknown &&
              CUDA_ERROR_INVALID_DEVICE == kCudaErrorInvalidDevice &&
              CUDA_ERROR_ILLEGAL_STATE == kCudaErrorIllegalState && CUDA_ERROR_NOT_SUPPORTED == kCudaErrorNotSupported);
static_assert(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED == kCudaErrorCaptureUnsupported &&
              CUDA_ERROR_STREAM_CAPTURE_INVALIDATED == kCudaErrorCaptureInvalidated &&
              CUDA_ERROR_STREAM_CAPTURE_UNMATCHED == kCudaErrorCaptureUnmatched &&
              CUDA_ERROR_STREAM_CAPTURE_UNJOINED == kCudaErrorCaptureUnjoined &&
              CUDA_ERROR_STREAM_CAPTURE_ISOLATION == kCudaErrorCaptureIsolation &&
              CUDA_ERROR_STREAM_CAPTURE_IMPLICIT == kCudaErrorCaptureImplicit);
static_assert(CU_STREAM_CAPTURE_STATUS_NONE == kCudaCaptureStatusNone &&
              CU_STREAM_CAPTURE_STATUS_ACTIVE == kCudaCaptureStatusActive &&
              CU_STREAM_CAPTURE_STATUS_INVALIDATED == kCudaCaptureStatusInvalidated);
static_assert(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL == kCudaCaptureThreadLocal &&
              CU_MEMHOSTALLOC_PORTABLE == kCudaHostAllocPortable && sizeof(CUstreamCaptureMode) == sizeof(int));

namespace {

struct Loaded {
  CudaDriver driver;
  std::string reason;  // why there is no driver; empty when `driver` is usable
};

Loaded load() {
  Loaded out;
  if (const EmulatorConfig& emu = emulator_config(); emu.requested) {
    if (!emu.error.empty()) out.reason = emu.error;
    else out.driver = emulated_driver();
    return out;
  }
  const CudaProbe& probe = probe_cuda();
  if (probe.driver == nullptr || probe.device_count == 0) {
    out.reason = probe.reason.empty() ? std::string("no CUDA driver") : probe.reason;
    return out;
  }
  CudaDriver& d = out.driver;
  d.device_count = probe.device_count;
  // The names are the symbols cuda.h maps the API names to (cuMemAlloc -> cuMemAlloc_v2 ...);
  // the unversioned symbols are the legacy 32-bit ABI.
  std::vector<std::string> missing;
  void* h = probe.driver;
  bind_symbol(h, "cuDeviceGet", d.device_get, missing);
  bind_symbol(h, "cuDevicePrimaryCtxRetain", d.primary_ctx_retain, missing);
  bind_symbol(h, "cuDevicePrimaryCtxRelease_v2", d.primary_ctx_release, missing);
  bind_symbol(h, "cuCtxGetCurrent", d.ctx_get_current, missing);
  bind_symbol(h, "cuCtxSetCurrent", d.ctx_set_current, missing);
  bind_symbol(h, "cuStreamCreate", d.stream_create, missing);
  bind_symbol(h, "cuStreamDestroy_v2", d.stream_destroy, missing);
  bind_symbol(h, "cuStreamQuery", d.stream_query, missing);
  bind_symbol(h, "cuStreamSynchronize", d.stream_synchronize, missing);
  bind_symbol(h, "cuEventCreate", d.event_create, missing);
  bind_symbol(h, "cuEventRecord", d.event_record, missing);
  bind_symbol(h, "cuEventQuery", d.event_query, missing);
  bind_symbol(h, "cuEventDestroy_v2", d.event_destroy, missing);
  bind_symbol(h, "cuMemAlloc_v2", d.mem_alloc, missing);
  bind_symbol(h, "cuMemFree_v2", d.mem_free, missing);
  bind_symbol(h, "cuMemcpyHtoD_v2", d.memcpy_htod, missing);
  bind_symbol(h, "cuMemcpyDtoH_v2", d.memcpy_dtoh, missing);
  bind_symbol(h, "cuMemsetD8_v2", d.memset_d8, missing);
  bind_symbol(h, "cuPointerGetAttribute", d.pointer_get_attribute, missing);
  bind_symbol(h, "cuDeviceGetAttribute", d.device_get_attribute, missing);
  bind_symbol(h, "cuModuleLoadData", d.module_load_data, missing);
  bind_symbol(h, "cuModuleUnload", d.module_unload, missing);
  bind_symbol(h, "cuModuleGetFunction", d.module_get_function, missing);
  bind_symbol(h, "cuLaunchKernel", d.launch_kernel, missing);
  bind_symbol(h, "cuStreamWaitEvent", d.stream_wait_event, missing);
  bind_symbol(h, "cuEventSynchronize", d.event_synchronize, missing);
  bind_symbol(h, "cuMemHostAlloc", d.mem_host_alloc, missing);
  bind_symbol(h, "cuMemFreeHost", d.mem_free_host, missing);
  bind_symbol(h, "cuMemcpyHtoDAsync_v2", d.memcpy_htod_async, missing);
  bind_symbol(h, "cuMemcpyDtoHAsync_v2", d.memcpy_dtoh_async, missing);
  bind_symbol(h, "cuStreamBeginCapture_v2", d.stream_begin_capture, missing);
  bind_symbol(h, "cuStreamEndCapture", d.stream_end_capture, missing);
  bind_symbol(h, "cuGraphInstantiateWithFlags", d.graph_instantiate, missing);
  bind_symbol(h, "cuGraphLaunch", d.graph_launch, missing);
  bind_symbol(h, "cuGraphExecDestroy", d.graph_exec_destroy, missing);
  bind_symbol(h, "cuGraphDestroy", d.graph_destroy, missing);
  bind_symbol(h, "cuGetErrorName", d.get_error_name, missing);
  bind_symbol(h, "cuGetErrorString", d.get_error_string, missing);
  bind_symbol(h, "cuDeviceGetName", d.device_get_name, missing);
  bind_symbol(h, "cuDeviceTotalMem_v2", d.device_total_mem, missing);
  bind_symbol(h, "cuMemGetInfo_v2", d.mem_get_info, missing);
  bind_symbol(h, "cuCtxSynchronize", d.ctx_synchronize, missing);
  bind_symbol(h, "cuLaunchHostFunc", d.launch_host_func, missing);
  bind_symbol(h, "cuStreamIsCapturing", d.stream_is_capturing, missing);
  bind_symbol(h, "cuMemcpyDtoDAsync_v2", d.memcpy_dtod_async, missing);
  bind_symbol(h, "cuMemsetD8Async", d.memset_d8_async, missing);
  if (!missing.empty()) {
    out.reason = cat("the CUDA driver ", loaded_path(h, "libcuda.so.1"), " lacks ", join(missing, ", "),
                     " (a driver for CUDA 11.4 or newer is needed)");
  }
  return out;
}

const Loaded& loaded() {
  static const Loaded l = load();
  return l;
}

}  // namespace

const CudaDriver& CudaDriver::get() {
  const Loaded& l = loaded();
  if (!l.reason.empty()) fail(ErrorKind::Unsupported, cat("no usable CUDA device: ", l.reason));
  return l.driver;
}

std::string CudaDriver::describe(int status) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (get_error_name == nullptr || get_error_name(status, &name) != kCudaSuccess) name = nullptr;
  if (get_error_string == nullptr || get_error_string(status, &text) != kCudaSuccess) text = nullptr;
  return cat(name ? name : "CUDA error", " (", status, ")", text ? cat(": ", text) : std::string());
}

void CudaDriver::check(int status, std::string_view what) const {
  if (status != kCudaSuccess) fail(ErrorKind::Runtime, cat(what, " failed: ", describe(status)));
}

ScopedContext::ScopedContext(const CudaDriver& driver, void* ctx) : driver_(driver) {
  driver_.check(driver_.ctx_get_current(&previous_), "cuCtxGetCurrent");
  if (previous_ != ctx) {
    driver_.check(driver_.ctx_set_current(ctx), "cuCtxSetCurrent");
    switched_ = true;
  }
}

ScopedContext::~ScopedContext() {
  // Restoring can only fail when the driver itself is gone; the caller's own calls report that.
  if (switched_) (void)driver_.ctx_set_current(previous_);
}

}  // namespace trainrt::detail
