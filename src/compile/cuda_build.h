// compile/cuda_build.h — a CUDA C++ source made into the image a device loads, through the
// kernel cache (DESIGN decisions 2, 4, 11 and 12).
//
// For a real device: NVRTC compiles the source for the device's architecture (a CUBIN, or PTX
// for one newer than NVRTC knows). For the emulated device: NVRTC still compiles it for sm_80
// and sm_90, so that what runs on the CPU is known to build for a GPU (its log and errors are
// the same), and the host compiler builds it with the emulator's prelude
// (codegen/cuda_host_source.h); the image is TRK_EMU_IMAGE_MAGIC, the shared object's size as
// 8 little-endian bytes, and the shared object. Every compile goes through `cache` (memory,
// then disk): NVRTC output as CacheKind::cuda_module, host builds as CacheKind::cpu_module
// (they are host shared objects), keyed by the source, the target, the compiler's identity and
// the prelude, so a warm cache makes no NVRTC or host-compiler call at all.
#pragma once

#include <cstdint>
#include <string>

namespace trainrt::detail {

class KernelCache;

struct CudaTarget {
  int arch = 90;          // compute capability major*10+minor of the device
  bool emulated = false;  // the emulated device: a host build (and NVRTC for sm_80 and sm_90)
};

/// What this process compiled (cache misses) and found in the cache.
struct CudaBuildStats {
  std::int64_t nvrtc_compiles = 0;
  std::int64_t host_compiles = 0;
  std::int64_t cache_hits = 0;
};
CudaBuildStats cuda_build_stats();

/// The image of `source` (`name`, e.g. "fused_3.cu", names it in errors) for `target`.
/// Thread-safe: independent sources compile in parallel. Throws Error(Unsupported) without
/// NVRTC (saying why) or, for the emulated device, without a host compiler; Error(Runtime)
/// with the compiler's log when either fails (a source the emulator cannot run is
/// Error(Unsupported) naming the construct, see emulated_source()).
std::string build_cuda_image(const std::string& source, const std::string& name, const CudaTarget& target,
                             KernelCache& cache);
/// build_cuda_image through KernelCache::global().
std::string build_cuda_image(const std::string& source, const std::string& name, const CudaTarget& target);

}  // namespace trainrt::detail
