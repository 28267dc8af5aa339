// runtime/cuda/device_memory.h — one CUDA device (its primary context) and its memory, through
// the driver loaded at run time (runtime/cuda/driver.h).
#pragma once

#include <cstdint>
#include <string>

#include "compile/cuda_build.h"
#include "runtime/cuda/caching_allocator.h"
#include "runtime/cuda/driver.h"

namespace trainrt::detail {

/// Holds the primary context of device `ordinal` for as long as it lives. Not copyable.
class CudaDevice {
 public:
  /// Throws Error(Unsupported) when there is no usable driver or device (saying why: no
  /// libcuda.so.1, cuInit failed, no device), Error(InvalidArgument) for an ordinal the driver
  /// does not have, Error(Runtime) when the driver refuses the context.
  explicit CudaDevice(int ordinal);
  ~CudaDevice();
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  const CudaDriver& driver() const noexcept { return driver_; }
  void* context() const noexcept { return context_; }
  int ordinal() const noexcept { return ordinal_; }
  /// Compute capability as major*10+minor (90 for an H100), the `arch` NVRTC compiles for.
  int arch() const noexcept { return arch_; }
  /// "cuda:0 (sm_90)".
  std::string name() const;
  /// The driver's name of the device ("NVIDIA H100 80GB HBM3"; the emulated device's says
  /// that it is emulated).
  const std::string& description() const noexcept { return description_; }
  /// What images for this device are built for (compile/cuda_build.h).
  CudaTarget target() const noexcept { return {arch_, driver_.emulated}; }

 private:
  const CudaDriver& driver_;
  int ordinal_;
  int device_ = 0;
  int arch_ = 0;
  void* context_ = nullptr;
  std::string description_;
};

/// For destructors: runs `release` (driver calls that free something of `device`'s) with the
/// device's context current and the caller's restored afterwards. When the context cannot be
/// made current (the driver is shutting down with the process) it does nothing: what would be
/// freed goes with the driver. Never throws.
template <class Release>
void release_in_context(const CudaDevice& device, Release&& release) noexcept {
  try {
    const ScopedContext scope(device.driver(), device.context());
    release(device.driver());
  } catch (...) {  // NOLINT(bugprone-empty-catch): see above
  }
}

/// cuMemAlloc/cuMemFree in a device's context: the segments a CachingAllocator carves up.
class DeviceMemory final : public RawAllocator {
 public:
  /// `device` is borrowed and must outlive this.
  explicit DeviceMemory(const CudaDevice& device) : device_(device) {}
  /// 0 when the device is out of memory; throws Error(Runtime) for any other driver failure.
  std::uint64_t allocate(std::size_t bytes) override;
  void release(std::uint64_t address, std::size_t bytes) override;
  std::string name() const override { return device_.name(); }

 private:
  const CudaDevice& device_;
};

}  // namespace trainrt::detail
