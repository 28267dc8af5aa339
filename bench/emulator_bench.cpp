// emulator_bench: what the emulated CUDA device costs (DESIGN decision 12), against the CPU
// backend doing the same work, on 16 M floats: an elementwise kernel (y = a x + b) and a
// block reduction (the sum, in two passes). Prints one JSON line per case and a table.
//
//   emulator_bench [--check] [--n N] [--reps R]
//
// --check turns on the emulator's checking mode (TRAINRT_CUDA_EMULATED_CHECK=1): shared-memory
// tracking, red zones after every launch, the happens-before check. Times are the median of R
// runs after one warm-up; the emulated ones include the launch and the synchronize, the CPU
// ones evaluate() of a compiled Program (fused kernel; reduction kernel).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "runtime/cuda/module.h"
#include "trainrt/trainrt.hpp"

namespace tr = trainrt;
namespace d = trainrt::detail;

namespace {

constexpr const char* kKernels = R"(
extern "C" __global__ void axpb(const float* x, float* y, float a, float b, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    y[i] = a * x[i] + b;
}
extern "C" __global__ void block_sum(const float* x, float* out, long long n) {
  __shared__ float s[256];
  float acc = 0.0f;
  for (long long i = blockIdx.x * 256LL + threadIdx.x; i < n; i += (long long)gridDim.x * 256) acc += x[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}
)";

double median_ms(int reps, const std::function<void()>& run) {
  run();  // warm-up
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool check = false;
  long long n = 16ll << 20;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--check") check = true;
    else if (a == "--n" && i + 1 < argc) n = std::atoll(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: emulator_bench [--check] [--n N] [--reps R]\n");
      return 2;
    }
  }
  // Before the library reads them (on first use of the CUDA layer).
  setenv("TRAINRT_CUDA_DEVICE", "emulated", 1);
  setenv("TRAINRT_CUDA_EMULATED_CHECK", check ? "1" : "0", 1);
  try {
    std::vector<float> host(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i % 1000) * 1e-3f;
    const std::size_t bytes = host.size() * sizeof(float);

    d::CudaDevice device(0);
    const d::CudaDriver& drv = device.driver();
    const d::ScopedContext scope(drv, device.context());
    d::CudaModule module(device, d::device_image(device, kKernels, "emulator_bench.cu"), "emulator_bench.cu");
    void* axpb = module.function("axpb");
    void* block_sum = module.function("block_sum");
    d::CuDevicePtr x = 0, y = 0, partials = 0;
    constexpr unsigned kSumBlocks = 2048;
    drv.check(drv.mem_alloc(&x, bytes), "cuMemAlloc");
    drv.check(drv.mem_alloc(&y, bytes), "cuMemAlloc");
    drv.check(drv.mem_alloc(&partials, kSumBlocks * sizeof(float)), "cuMemAlloc");
    drv.check(drv.memcpy_htod(x, host.data(), bytes), "cuMemcpyHtoD");
    float a = 1.5f, b = 0.25f;
    const unsigned elementwise_blocks = static_cast<unsigned>(std::min<long long>((n + 1023) / 1024, 65535));
    const double emu_elementwise = median_ms(reps, [&] {
      void* params[] = {&x, &y, &a, &b, &n};
      module.launch(axpb, {.grid_x = elementwise_blocks, .block_x = 256}, nullptr, params,
                    {{x, bytes, false}, {y, bytes, true}});
      drv.check(drv.stream_synchronize(nullptr), "cuStreamSynchronize");
    });
    long long parts = kSumBlocks;
    const double emu_reduce = median_ms(reps, [&] {
      void* p1[] = {&x, &partials, &n};
      module.launch(block_sum, {.grid_x = kSumBlocks, .block_x = 256}, nullptr, p1,
                    {{x, bytes, false}, {partials, kSumBlocks * 4, true}});
      void* p2[] = {&partials, &y, &parts};
      module.launch(block_sum, {.grid_x = 1, .block_x = 256}, nullptr, p2,
                    {{partials, kSumBlocks * 4, false}, {y, 4, true}});
      drv.check(drv.stream_synchronize(nullptr), "cuStreamSynchronize");
    });

    // The CPU backend: the same two computations as compiled Programs.
    tr::Graph g;
    const tr::Value xv = g.input("x", {n});
    const tr::Value axb = xv * 1.5 + 0.25;
    const tr::Value total = tr::sum(xv);
    tr::Program p = tr::compile(g, total, tr::optim::None{}, {});
    const tr::Tensor xt = tr::Tensor::from_vector<float>({n}, host);
    const double cpu_elementwise = median_ms(reps, [&] { (void)p.evaluate({{"x", xt}}, {axb}); });
    const double cpu_reduce = median_ms(reps, [&] { (void)p.evaluate({{"x", xt}}, {total}); });

    const double gb = 2.0 * static_cast<double>(bytes) / 1e9;  // elementwise: read x, write y
    std::printf(
        "{\"bench\":\"emulator\",\"check\":%s,\"n\":%lld,\"reps\":%d,\"elementwise_ms\":{\"emulated\":%.2f,\"cpu\":%."
        "2f},"
        "\"reduce_ms\":{\"emulated\":%.2f,\"cpu\":%.2f}}\n",
        check ? "true" : "false", n, reps, emu_elementwise, cpu_elementwise, emu_reduce, cpu_reduce);
    std::printf("case         emulated (ms)  CPU backend (ms)  emulated / CPU\n");
    std::printf("elementwise  %13.2f  %16.2f  %14.1fx   (emulated: %.1f GB/s)\n", emu_elementwise, cpu_elementwise,
                emu_elementwise / cpu_elementwise, gb / (emu_elementwise / 1e3));
    std::printf("reduction    %13.2f  %16.2f  %14.1fx\n", emu_reduce, cpu_reduce, emu_reduce / cpu_reduce);
    for (d::CuDevicePtr q : {x, y, partials}) drv.check(drv.mem_free(q), "cuMemFree");
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "emulator_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
