// codegen/emit_kernel.h — C++ source of a fused node's kernel, for the CPU and for CUDA.
//
// One emitter writes each group's body once, as device-agnostic C++: a function from one
// element's indices (the output index, and one index per operand, broadcast already
// resolved) to the group's outputs at that element. Both wrappers include the same body:
//  - CPU: `extern "C" void <name>(void* const* buffers, int64_t group, int64_t begin,
//    int64_t end)` runs elements [begin, end) of one group, walking rows of the merged
//    broadcast shape so the inner loop is contiguous (the host compiler vectorizes it). The
//    runtime splits [0, numel) of each group with tbb::parallel_for (runtime/cpu/fused.cpp)
//    and calls it for each piece.
//  - CUDA: `extern "C" __global__ void <name>(Buffers)`: the groups' blocks follow each
//    other (block ranges in cuda_launch()), a grid-stride loop inside each group, 16-bit
//    floats loaded through cuda_fp16/cuda_bf16 and computed in f32.
// Buffers are the node's operands followed by its outputs. Values are computed in their
// dtype (f16/bf16 in f32). Floating constants are written exactly (hex floats).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/fused.h"

namespace trainrt::detail {

/// Everything the emitter needs to know about one fused node.
struct KernelSpec {
  const FusedBody* body = nullptr;
  std::vector<TensorType> operands;  // the node's operand types
  std::vector<TensorType> outputs;   // the node's output types
};

/// The spec of a fused node of `graph`.
KernelSpec kernel_spec(const GraphImpl& graph, std::int32_t node);

/// The device-agnostic bodies (one function per group), with the symbol prefix `name`.
std::string emit_kernel_body(const KernelSpec& spec, const std::string& name);

/// What every CPU / CUDA translation unit starts with (includes, types, helpers). Several
/// kernels' code may follow one prelude (a module).
std::string cpu_prelude();
std::string cuda_prelude();

/// One kernel's body and wrapper, to follow the prelude; `name` is its symbol.
std::string cpu_kernel_code(const KernelSpec& spec, const std::string& name);
std::string cuda_kernel_code(const KernelSpec& spec, const std::string& name);

/// A complete translation unit for the host compiler (prelude, body, CPU wrapper).
std::string cpu_kernel_source(const KernelSpec& spec, const std::string& name);

/// A complete translation unit for NVRTC (prelude, body, CUDA wrapper).
std::string cuda_kernel_source(const KernelSpec& spec, const std::string& name);

/// Threads per block and blocks per group of the CUDA kernel: the grid is the sum.
struct CudaLaunch {
  int block = 256;
  std::vector<std::int64_t> group_blocks;
  std::int64_t grid() const;
};
CudaLaunch cuda_launch(const KernelSpec& spec);

/// The merged broadcast loop of a group: dims (outermost first, the last is contiguous) and
/// each operand's element stride per dim (0 where broadcast). Used by both wrappers.
struct LoopNest {
  std::vector<std::int64_t> dims;
  std::vector<std::vector<std::int64_t>> strides;  // [operand][dim]
  std::int64_t numel = 1;
};
LoopNest loop_nest(const Shape& loop, const std::vector<Shape>& operands);

}  // namespace trainrt::detail
