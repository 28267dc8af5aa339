#include "runtime/device.h"

#include <dlfcn.h>

#include "core/error.h"
#include "runtime/cuda/emulated/config.h"
#include "trainrt/program.hpp"

namespace trainrt {

namespace detail {

namespace {

// The three driver entry points used here, with the driver API's C signatures (CUresult is
// an int-sized enum; 0 is CUDA_SUCCESS). Declared here so that the probe needs no toolkit.
using CuInit = int (*)(unsigned int);
using CuDeviceGetCount = int (*)(int*);
using CuGetErrorString = int (*)(int, const char**);

CudaProbe run_probe() {
  CudaProbe p;
  // TRAINRT_CUDA_DEVICE=emulated: the emulated device stands in for the driver (decision 12).
  if (const EmulatorConfig& emu = emulator_config(); emu.requested) {
#if defined(TRAINRT_WITH_CUDA)
    if (emu.error.empty()) p.device_count = emu.devices;
    else p.reason = emu.error;
#else
    p.reason =
        "TRAINRT_CUDA_DEVICE asks for the emulated CUDA device, but this libtrainrt was built without CUDA "
        "support (the CUDA toolkit's headers were not found when it was configured)";
#endif
    return p;
  }
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    p.reason = cat("the CUDA driver library libcuda.so.1 could not be loaded (", err ? err : "unknown error", ")");
    return p;
  }
  auto init = reinterpret_cast<CuInit>(dlsym(lib, "cuInit"));
  auto count = reinterpret_cast<CuDeviceGetCount>(dlsym(lib, "cuDeviceGetCount"));
  auto message = reinterpret_cast<CuGetErrorString>(dlsym(lib, "cuGetErrorString"));
  if (!init || !count) {
    p.reason = "libcuda.so.1 lacks cuInit/cuDeviceGetCount";
    return p;
  }
  auto describe = [&](int status) {
    const char* text = nullptr;
    if (message) message(status, &text);
    return cat("error ", status, text ? cat(" (", text, ")") : std::string());
  };
  if (const int status = init(0); status != 0) {
    p.reason = cat("cuInit failed: ", describe(status));
    return p;
  }
  int n = 0;
  if (const int status = count(&n); status != 0) {
    p.reason = cat("cuDeviceGetCount failed: ", describe(status));
    return p;
  }
  p.device_count = n;
  p.driver = lib;
  if (n == 0) p.reason = "the driver reports no CUDA device";
  // The library stays loaded: a later CUDA backend uses the same handle.
  return p;
}

}  // namespace

const CudaProbe& probe_cuda() {
  static const CudaProbe probe = run_probe();
  return probe;
}

}  // namespace detail

int cuda_device_count() { return detail::probe_cuda().device_count; }

}  // namespace trainrt
