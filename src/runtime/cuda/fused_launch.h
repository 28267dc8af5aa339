// runtime/cuda/fused_launch.h — launching a fused node's generated CUDA kernel
// (codegen/emit_kernel.h: `extern "C" __global__ void <name>(<name>_buffers)`, one struct of
// the node's operand and output addresses, passed by value).
#pragma once

#include <cstdint>
#include <vector>

#include "codegen/emit_kernel.h"
#include "runtime/cuda/module.h"

namespace trainrt::detail {

/// Enqueues `function` (from `module`) over `launch`'s grid on `stream` with `buffers`: the
/// device addresses of the node's operands, then of its outputs (exactly as many as the
/// kernel's struct holds: the spec's operands plus outputs). Returns without waiting. Throws
/// Error(Internal) for a buffer count that does not match, Error(Runtime) as CudaModule::launch.
void launch_fused(const CudaModule& module, void* function, const KernelSpec& spec, const CudaLaunch& launch,
                  const std::vector<std::uint64_t>& buffers, void* stream);

}  // namespace trainrt::detail
