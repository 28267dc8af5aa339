// compile/kernel_builder.h — the compiled kernels of a Program's fused nodes, from the cache
// or from the host compiler.
//
// Each fused node's code (codegen/emit_kernel.h) gets a kernel key: SHA-256 of its code,
// the target, the compiler's identity (path, version, flags) and libtrainrt's version. The
// symbol is named after the key, so equal kernels are one kernel. Lookup goes: kernels
// already loaded in this process, then modules in the kernel cache (memory, then disk),
// then the compiler. Kernels still missing are put into a few modules (one translation
// unit each, about 8 kernels per module: one compiler process costs ~0.6 s however small
// its input) that compile in parallel on TBB. A module's cache key is the SHA-256 of its
// source and the compiler identity, and the partition depends only on the set of missing
// kernels, so a new process compiling the same Program looks for the same modules.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

class KernelCache;
class LoadedModule;

using CpuKernelFn = void (*)(void* const* buffers, std::int64_t group, std::int64_t begin, std::int64_t end);

struct CpuKernel {
  std::shared_ptr<LoadedModule> module;  // keeps fn valid
  CpuKernelFn fn = nullptr;
  std::string name;  // the symbol, "trk_<key prefix>"
};

/// What one build did.
struct KernelBuildReport {
  std::size_t kernels = 0;               // fused nodes
  std::size_t loaded = 0;                // found loaded in this process
  std::size_t modules = 0;               // modules looked up in the cache
  std::size_t modules_compiled = 0;      // of which compiled now
  double seconds = 0;                    // wall time of the whole build
  std::vector<std::string> module_keys;  // hex, of every module looked up
};

/// The kernel of every fused node of `graph` (indexed by node; empty for other nodes).
/// Returns nullopt when a kernel is in no cache and there is no host compiler (the caller
/// then compiles without fusion). Throws Error when the compiler fails.
std::optional<std::vector<CpuKernel>> build_cpu_kernels(const GraphImpl& graph, KernelCache& cache,
                                                        KernelBuildReport& report);

}  // namespace trainrt::detail
