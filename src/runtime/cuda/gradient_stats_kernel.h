// runtime/cuda/gradient_stats_kernel.h — the CUDA kernels of gradient_stats
// (ir/op_multi_tensor.cpp): one pass over every gradient for the loss scaler's found-inf flag
// and the clipping norm (DESIGN decision 5), as CUDA C++ source that NVRTC compiles at run time
// (decision 11: no .cu files).
//
// Launch plan, for N chunks of at most kGradientStatsChunk elements (each tensor in turn, cut
// in order; fixed by the shapes alone, as the CPU kernel's chunks are):
//   1. trainrt_gradient_stats_partial<<<N, kGradientStatsBlock>>>(chunks, partials)
//      chunks: N GradientStatsChunk in device memory (a table made once per Program);
//      partials: N GradientStatsPartial in the planned arena.
//   2. trainrt_gradient_stats_finish<<<1, kGradientStatsBlock>>>(partials, N, found, squares)
//      found: one byte (0 or 1); squares: one f32.
// Both reduce in a fixed order (a fixed chunk cut, fixed tree reductions), so the result has
// the same bits on every run. Squares are added in f64; an infinity or NaN in a chunk sets its
// flag. Neither kernel reads anything back to the host.
#pragma once

#include <cstdint>

namespace trainrt::detail {

inline constexpr std::int64_t kGradientStatsChunk = std::int64_t{1} << 16;
inline constexpr int kGradientStatsBlock = 256;

/// dtype codes of GradientStatsChunk::dtype.
enum class GradientStatsDType : std::int32_t { f32 = 0, f16 = 1, bf16 = 2, f64 = 3 };

/// One chunk of one tensor, as the kernel reads it (the same layout on host and device).
struct GradientStatsChunk {
  std::uint64_t data;  // device address of the tensor's first element
  std::int64_t begin;  // first element of the chunk
  std::int32_t count;  // elements in the chunk, 1 .. kGradientStatsChunk
  std::int32_t dtype;  // GradientStatsDType
};
static_assert(sizeof(GradientStatsChunk) == 24);

struct GradientStatsPartial {
  double squares;
  std::int32_t nonfinite;  // 0 or 1
  std::int32_t pad;
};
static_assert(sizeof(GradientStatsPartial) == 16);

/// The CUDA C++ source of both kernels (extern "C" names above); needs cuda_fp16.h and
/// cuda_bf16.h, which the NVRTC driver puts on the include path.
const char* gradient_stats_cuda_source();

}  // namespace trainrt::detail
