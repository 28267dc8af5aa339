// runtime/cuda/module.h — a CUBIN (or PTX) image from NVRTC loaded into a device's context,
// and launching the kernels in it (DESIGN decision 2: all device code is NVRTC-compiled).
#pragma once

#include <string>
#include <vector>

#include "runtime/cuda/device_memory.h"

namespace trainrt::detail {

/// Grid and block sizes of a launch.
struct LaunchShape {
  unsigned grid_x = 1, grid_y = 1, grid_z = 1;
  unsigned block_x = 1, block_y = 1, block_z = 1;
  unsigned shared_bytes = 0;
};

/// The image of the CUDA source `source` (`name`: "fused_3.cu") for `device`: NVRTC's for a
/// real device, the host build for the emulated one (compile/cuda_build.h), through the
/// process's kernel cache. Throws as build_cuda_image.
std::string device_image(const CudaDevice& device, const std::string& source, const std::string& name);

class CudaModule {
 public:
  /// Loads `image` (a CUBIN, or PTX the driver compiles for the device) into `device`'s context;
  /// `label` ("fused_3.cu") names it in errors. `device` is borrowed and must outlive this.
  /// Throws Error(Runtime) with the driver's message (an image for another architecture, a
  /// damaged image).
  CudaModule(const CudaDevice& device, const std::string& image, std::string label);
  ~CudaModule();
  CudaModule(const CudaModule&) = delete;
  CudaModule& operator=(const CudaModule&) = delete;

  /// The kernel named `name` (its extern "C" or mangled name). Throws Error(NotFound) naming
  /// the kernel and the module when the image has none by that name.
  void* function(const std::string& name) const;
  /// Enqueues `function` on `stream` (nullptr: the legacy default stream) with `params` (an array
  /// of pointers to each argument, as cuLaunchKernel takes them). Returns without waiting.
  /// `accesses` (optional) are the byte ranges the kernel reads and writes, for the emulated
  /// device's happens-before check (CudaDriver::declare); without them it assumes the first
  /// byte behind each pointer parameter. Throws Error(Runtime) naming the kernel when the
  /// driver refuses the launch.
  void launch(void* function, const LaunchShape& shape, void* stream, void** params,
              const std::vector<CudaAccess>& accesses = {}) const;

 private:
  const CudaDevice& device_;
  std::string label_;
  void* module_ = nullptr;
};

}  // namespace trainrt::detail
