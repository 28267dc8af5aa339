// runtime/cuda/device_memory.cpp — a device's primary context and cuMemAlloc/cuMemFree.
#include "runtime/cuda/device_memory.h"

#include "core/error.h"

namespace trainrt::detail {

CudaDevice::CudaDevice(int ordinal) : driver_(CudaDriver::get()), ordinal_(ordinal) {
  const CudaDriver& d = driver_;
  if (ordinal < 0 || ordinal >= d.device_count)
    fail(ErrorKind::InvalidArgument,
         cat("CUDA device ", ordinal, " does not exist: the driver reports ", d.device_count, " device(s)"));
  d.check(d.device_get(&device_, ordinal), cat("cuDeviceGet(", ordinal, ")"));
  int major = 0, minor = 0;
  d.check(d.device_get_attribute(&major, kCudaAttributeCcMajor, device_), "cuDeviceGetAttribute(major)");
  d.check(d.device_get_attribute(&minor, kCudaAttributeCcMinor, device_), "cuDeviceGetAttribute(minor)");
  arch_ = major * 10 + minor;
  char text[256] = {};
  d.check(d.device_get_name(text, static_cast<int>(sizeof(text)), device_), "cuDeviceGetName");
  description_ = text;
  d.check(d.primary_ctx_retain(&context_, device_), cat("cuDevicePrimaryCtxRetain(device ", ordinal, ")"));
}

CudaDevice::~CudaDevice() { (void)driver_.primary_ctx_release(device_); }

std::string CudaDevice::name() const { return cat("cuda:", ordinal_, " (sm_", arch_, ")"); }

std::uint64_t DeviceMemory::allocate(std::size_t bytes) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  CuDevicePtr ptr = 0;
  const int status = d.mem_alloc(&ptr, bytes);
  if (status == kCudaErrorOutOfMemory) return 0;
  d.check(status, cat("cuMemAlloc(", bytes, " bytes) on ", device_.name()));
  return ptr;
}

void DeviceMemory::release(std::uint64_t address, std::size_t bytes) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  d.check(d.mem_free(address), cat("cuMemFree(", bytes, " bytes) on ", device_.name()));
}

}  // namespace trainrt::detail
