// runtime/device.h — finding CUDA devices without linking CUDA (DESIGN decision 11).
#pragma once

#include <string>

namespace trainrt::detail {

struct CudaProbe {
  int device_count = 0;
  std::string reason;      // why there is no device, when device_count == 0
  void* driver = nullptr;  // the dlopen handle of libcuda.so.1 once cuInit succeeded; it stays loaded
};

/// Loads the CUDA driver (libcuda.so.1) with dlopen and counts devices; with
/// TRAINRT_CUDA_DEVICE=emulated[:N] it counts the emulated devices instead (driver stays
/// nullptr: CudaDriver::get() serves the emulator's table). Never throws:
/// "no driver" and "no device" are ordinary answers. The result is computed once. Code that
/// calls the driver (the NCCL communicator) resolves its entry points from `driver`.
const CudaProbe& probe_cuda();

}  // namespace trainrt::detail
