// runtime/cuda/gradient_stats_kernel.cpp — the CUDA C++ source of gradient_stats's kernels.
#include "runtime/cuda/gradient_stats_kernel.h"

namespace trainrt::detail {

const char* gradient_stats_cuda_source() {
  // The structs repeat gradient_stats_kernel.h's layouts (static_asserts on both sides).
  return R"CUDA(
#include <cuda_fp16.h>
#include <cuda_bf16.h>

struct GradientStatsChunk {
  unsigned long long data;
  long long begin;
  int count;
  int dtype;
};
struct GradientStatsPartial {
  double squares;
  int nonfinite;
  int pad;
};
static_assert(sizeof(GradientStatsChunk) == 24, "chunk layout");
static_assert(sizeof(GradientStatsPartial) == 16, "partial layout");

#define TRAINRT_BLOCK 256

__device__ __forceinline__ double load_element(const GradientStatsChunk& c, long long i) {
  switch (c.dtype) {
    case 0: return (double)reinterpret_cast<const float*>(c.data)[i];
    case 1: return (double)__half2float(reinterpret_cast<const __half*>(c.data)[i]);
    case 2: return (double)__bfloat162float(reinterpret_cast<const __nv_bfloat16*>(c.data)[i]);
    default: return reinterpret_cast<const double*>(c.data)[i];
  }
}

// Sums `value` and ORs `flag` over the block; thread 0 gets the result. A fixed tree: the same
// bits on every run.
__device__ __forceinline__ void block_reduce(double& value, int& flag) {
  __shared__ double values[TRAINRT_BLOCK];
  __shared__ int flags[TRAINRT_BLOCK];
  values[threadIdx.x] = value;
  flags[threadIdx.x] = flag;
  __syncthreads();
  for (int stride = TRAINRT_BLOCK / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      values[threadIdx.x] += values[threadIdx.x + stride];
      flags[threadIdx.x] |= flags[threadIdx.x + stride];
    }
    __syncthreads();
  }
  value = values[0];
  flag = flags[0];
}

extern "C" __global__ void __launch_bounds__(TRAINRT_BLOCK)
trainrt_gradient_stats_partial(const GradientStatsChunk* chunks, GradientStatsPartial* partials) {
  const GradientStatsChunk c = chunks[blockIdx.x];
  double squares = 0.0;
  int nonfinite = 0;
  for (int i = threadIdx.x; i < c.count; i += TRAINRT_BLOCK) {
    const double v = load_element(c, c.begin + i);
    squares += v * v;
    nonfinite |= !isfinite(v);
  }
  block_reduce(squares, nonfinite);
  if (threadIdx.x == 0) {
    partials[blockIdx.x].squares = squares;
    partials[blockIdx.x].nonfinite = nonfinite;
    partials[blockIdx.x].pad = 0;
  }
}

extern "C" __global__ void __launch_bounds__(TRAINRT_BLOCK)
trainrt_gradient_stats_finish(const GradientStatsPartial* partials, int count, unsigned char* found,
                              float* squares_out) {
  double squares = 0.0;
  int nonfinite = 0;
  for (int i = threadIdx.x; i < count; i += TRAINRT_BLOCK) {
    squares += partials[i].squares;
    nonfinite |= partials[i].nonfinite;
  }
  block_reduce(squares, nonfinite);
  if (threadIdx.x == 0) {
    *found = nonfinite ? 1 : 0;
    *squares_out = (float)squares;
  }
}
)CUDA";
}

}  // namespace trainrt::detail
