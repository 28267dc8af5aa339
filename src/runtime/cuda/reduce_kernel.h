// runtime/cuda/reduce_kernel.h — the CUDA kernel of a reduction node (sum, mean or max over any
// subset of axes), as CUDA C++ source for NVRTC (decision 11: no .cu files), its shapes
// compiled in as constants.
//
// One block per output element, kReduceBlock threads: thread t folds the reduced elements
// t, t + kReduceBlock, ... in that order (f32 accumulation), then a fixed tree in shared
// memory combines the threads. The order depends on the shapes alone, so every run gives the
// same bits. Max propagates NaN, as the CPU backend's does.
#pragma once

#include <cstdint>
#include <string>

#include "ir/graph_impl.h"

namespace trainrt::detail {

inline constexpr int kReduceBlock = 256;

/// Whether reduce_kernel_source() can express node `node` of `graph` (a ReduceSum, ReduceMean
/// or ReduceMax over f32, f16 or bf16); when not, `why` says why.
bool cuda_reducible(const GraphImpl& graph, std::int32_t node, std::string& why);
/// The translation unit of node `node`'s kernel, `extern "C" __global__ void <name>(const void*
/// in, void* out)`, launched as <<<outputs, kReduceBlock>>>.
std::string reduce_kernel_source(const GraphImpl& graph, std::int32_t node, const std::string& name);

}  // namespace trainrt::detail
