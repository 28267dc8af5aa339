// compile/cuda_build.cpp — NVRTC and host builds of CUDA sources, through the kernel cache.
#include "compile/cuda_build.h"

#include <atomic>

#include "codegen/cuda_host_source.h"
#include "codegen/emulation/trk_emu_abi.h"
#include "compile/host_compiler.h"
#include "compile/kernel_cache.h"
#include "compile/nvrtc.h"
#include "core/error.h"
#include "core/sha256.h"

namespace trainrt::detail {

namespace {

constexpr const char* kFormat = "libtrainrt cuda image 1";

struct Counters {
  std::atomic<std::int64_t> nvrtc{0}, host{0}, hits{0};
};
Counters& counters() {
  static Counters c;
  return c;
}

Nvrtc& need_nvrtc(const std::string& name) {
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr)
    fail(ErrorKind::Unsupported, cat("cannot compile ", name, " for a CUDA device: ", Nvrtc::unavailable_reason()));
  return *nvrtc;
}

// NVRTC's image for one architecture, from the cache or from NVRTC.
std::string nvrtc_image(const std::string& source, const std::string& name, int arch, KernelCache& cache) {
  Nvrtc& nvrtc = need_nvrtc(name);
  const Digest key = sha256(cat(kFormat, "\nnvrtc\n", nvrtc.version_string(), "\narch ", arch, "\n", source));
  bool made = false;
  auto payload = cache.get_or_make(key, CacheKind::cuda_module, [&] {
    made = true;
    NvrtcOptions options;
    options.arch = arch;
    counters().nvrtc.fetch_add(1, std::memory_order_relaxed);
    return nvrtc.compile(source, name, options).image;
  });
  if (!made) counters().hits.fetch_add(1, std::memory_order_relaxed);
  return *payload;
}

std::string host_image(const std::string& source, const std::string& name, KernelCache& cache) {
  const HostCompiler* cc = HostCompiler::get();
  if (cc == nullptr)
    fail(ErrorKind::Unsupported,
         cat("the emulated CUDA device builds ", name,
             " with the host compiler, and there is none: ", HostCompiler::unavailable_reason()));
  Nvrtc& nvrtc = need_nvrtc(name);  // its headers (cuda_fp16.h, cuda_bf16.h) serve the host build too
  const HostSource host = emulated_source(source, name);
  std::vector<std::string> flags = {"-std=c++20", "-I" + nvrtc.include_dir()};
  // GCC gives the prelude's template statics STB_GNU_UNIQUE binding, which makes a shared
  // object impossible to unload: the next module loaded from the same /proc/self/fd path would
  // then be the old one.
  if (cc->version().find("clang") == std::string::npos) flags.emplace_back("-fno-gnu-unique");
  const Digest key = sha256(cat(kFormat, "\nemulated host build\n", cc->identity(), "\n", flags.back(), " headers ",
                                nvrtc.version_string(), "\n", host.code));
  bool made = false;
  auto payload = cache.get_or_make(key, CacheKind::cpu_module, [&] {
    made = true;
    counters().host.fetch_add(1, std::memory_order_relaxed);
    try {
      return cc->compile(host.code, "trainrt_emulated_" + key.hex().substr(0, 16), flags);
    } catch (const Error& e) {
      fail(ErrorKind::Runtime,
           cat("the CUDA emulator's host build of ", name,
               " failed (a CUDA feature its prelude lacks is named in the compiler's messages): ", e.what()));
    }
  });
  if (!made) counters().hits.fetch_add(1, std::memory_order_relaxed);
  std::string image(TRK_EMU_IMAGE_MAGIC);
  const std::uint64_t size = payload->size();
  for (int i = 0; i < 8; ++i) image.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  image += *payload;
  return image;
}

}  // namespace

CudaBuildStats cuda_build_stats() {
  const Counters& c = counters();
  return {c.nvrtc.load(), c.host.load(), c.hits.load()};
}

std::string build_cuda_image(const std::string& source, const std::string& name, const CudaTarget& target,
                             KernelCache& cache) {
  if (!target.emulated) return nvrtc_image(source, name, target.arch, cache);
  // Known to build for the GPUs we target, then built for the CPU.
  for (const int arch : {80, 90}) (void)nvrtc_image(source, name, arch, cache);
  return host_image(source, name, cache);
}

std::string build_cuda_image(const std::string& source, const std::string& name, const CudaTarget& target) {
  return build_cuda_image(source, name, target, KernelCache::global());
}

}  // namespace trainrt::detail
