// runtime/cuda on a CUDA device: the caching allocator over cuMemAlloc, and NVRTC images loaded
// and launched through the driver. Labelled "gpu": without a device every case reports itself
// skipped, with the reason.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "compile/nvrtc.h"
#include "core/half.h"
#include "ir/builder.h"
#include "ir/fused.h"
#include "optim/build_optimizer.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "passes/schedule.h"
#include "runtime/cuda/cublaslt.h"
#include "runtime/cuda/fused_launch.h"
#include "runtime/cuda/gradient_stats_kernel.h"
#include "runtime/cuda/module.h"
#include "runtime/cuda/readback.h"
#include "runtime/cuda/streams.h"
#include "runtime/device.h"
#include "test_util.h"

namespace trainrt::detail {
namespace {

/// Why these tests cannot run here; empty when a CUDA device exists.
std::string missing_device() {
  return probe_cuda().device_count > 0 ? std::string() : "no CUDA device: " + probe_cuda().reason;
}

constexpr const char* kAxpy = R"(
extern "C" __global__ void axpy(float a, const float* x, float* y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = a * x[i] + y[i];
}
)";

TEST(CudaRuntimeGpu, CachingAllocatorOverTheDriverRoundTripsData) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  CudaDevice device(0);
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  const std::size_t n = 1 << 20;
  const std::uint64_t at = allocator.allocate(n * sizeof(float));
  std::vector<float> in(n), out(n, 0.f);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<float>(i) * 0.5f;
  const CudaDriver& d = device.driver();
  {
    const ScopedContext scope(d, device.context());
    d.check(d.memcpy_htod(at, in.data(), n * sizeof(float)), "cuMemcpyHtoD");
    d.check(d.memcpy_dtoh(out.data(), at, n * sizeof(float)), "cuMemcpyDtoH");
  }
  EXPECT_EQ(in, out);
  allocator.free(at);
  EXPECT_EQ(allocator.allocate(n * sizeof(float)), at) << "the freed block comes back from the cache";
  EXPECT_EQ(allocator.stats().device_allocations, 1);
}

TEST(CudaRuntimeGpu, OutOfDeviceMemoryIsAnErrorNotACrash) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  CudaDevice device(0);
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  test::expect_error([&] { allocator.allocate(std::size_t{1} << 50); }, ErrorKind::Runtime,
                     {"out of memory on cuda:0"});
  EXPECT_NO_THROW(allocator.free(allocator.allocate(1 << 20)));
}

TEST(CudaRuntimeGpu, AnNvrtcKernelLoadsAndRunsOnTheDevice) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr) GTEST_SKIP() << "no NVRTC: " << Nvrtc::unavailable_reason();
  CudaDevice device(0);
  CudaModule module(device, device_image(device, kAxpy, "axpy.cu"), "axpy.cu");
  void* axpy = module.function("axpy");
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  int n = 100003;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  std::uint64_t x = allocator.allocate(bytes), y = allocator.allocate(bytes);
  std::vector<float> hx(static_cast<std::size_t>(n)), hy(hx.size()), out(hx.size());
  for (std::size_t i = 0; i < hx.size(); ++i) {
    hx[i] = static_cast<float>(i % 97) - 48.f;
    hy[i] = 0.25f * static_cast<float>(i % 13);
  }
  const CudaDriver& d = device.driver();
  float a = 3.f;
  void* params[] = {&a, &x, &y, &n};
  {
    const ScopedContext scope(d, device.context());
    d.check(d.memcpy_htod(x, hx.data(), bytes), "cuMemcpyHtoD");
    d.check(d.memcpy_htod(y, hy.data(), bytes), "cuMemcpyHtoD");
    module.launch(axpy, {.grid_x = 128, .block_x = 256}, nullptr, params);
    d.check(d.memcpy_dtoh(out.data(), y, bytes), "cuMemcpyDtoH");  // waits for the default stream
  }
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 3.f * hx[i] + hy[i]) << "at " << i;
  allocator.free(x);
  allocator.free(y);
}

TEST(CudaRuntimeGpu, GradientStatsKernelsFindOverflowsAndSumSquares) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr) GTEST_SKIP() << "no NVRTC: " << Nvrtc::unavailable_reason();
  CudaDevice device(0);
  CudaModule module(device, device_image(device, gradient_stats_cuda_source(), "gradient_stats.cu"),
                    "gradient_stats.cu");
  void* partial = module.function("trainrt_gradient_stats_partial");
  void* finish = module.function("trainrt_gradient_stats_finish");
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  const CudaDriver& d = device.driver();
  const ScopedContext scope(d, device.context());
  // Two f32 tensors: 200003 elements (four chunks, the last partial) and 5.
  std::vector<float> a(200003), b(5);
  double expected = 0;
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.5f - 1.0f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 3.0f + static_cast<float>(i);
  for (float x : a) expected += double(x) * x;
  for (float x : b) expected += double(x) * x;
  const std::uint64_t da = allocator.allocate(a.size() * 4), db = allocator.allocate(b.size() * 4);
  std::vector<GradientStatsChunk> chunks;
  const auto numel = static_cast<std::int64_t>(a.size());
  for (std::int64_t at = 0; at < numel; at += kGradientStatsChunk)
    chunks.push_back({da, at, static_cast<std::int32_t>(std::min(kGradientStatsChunk, numel - at)), 0});
  chunks.push_back({db, 0, 5, 0});
  auto count = static_cast<int>(chunks.size());
  // Kernel arguments: cuLaunchKernel takes a pointer to each, so these are not const.
  std::uint64_t table = allocator.allocate(chunks.size() * sizeof(GradientStatsChunk));
  std::uint64_t partials = allocator.allocate(chunks.size() * sizeof(GradientStatsPartial));
  std::uint64_t found = allocator.allocate(1), squares = allocator.allocate(4);
  d.check(d.memcpy_htod(table, chunks.data(), chunks.size() * sizeof(GradientStatsChunk)), "cuMemcpyHtoD");
  d.check(d.memcpy_htod(db, b.data(), b.size() * 4), "cuMemcpyHtoD");
  auto run = [&]() -> std::pair<bool, float> {
    d.check(d.memcpy_htod(da, a.data(), a.size() * 4), "cuMemcpyHtoD");
    void* p1[] = {&table, &partials};
    module.launch(partial, {.grid_x = static_cast<unsigned>(count), .block_x = kGradientStatsBlock}, nullptr, p1);
    void* p2[] = {&partials, &count, &found, &squares};
    module.launch(finish, {.block_x = kGradientStatsBlock}, nullptr, p2);
    unsigned char f = 2;
    float s = 0;
    d.check(d.memcpy_dtoh(&f, found, 1), "cuMemcpyDtoH");
    d.check(d.memcpy_dtoh(&s, squares, 4), "cuMemcpyDtoH");
    EXPECT_LE(f, 1);
    return {f == 1, s};
  };
  const auto [clean, sum] = run();
  EXPECT_FALSE(clean);
  EXPECT_NEAR(sum, expected, expected * 1e-7);
  EXPECT_EQ(run().second, sum) << "the same bits on every run";
  a[150000] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(run().first);
  a[150000] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(run().first);
}

/// Host values rounded to `dtype` (f32, f16, bf16), as raw bytes, and back as doubles.
std::vector<std::uint16_t> to_16(const std::vector<float>& v, DType dtype) {
  std::vector<std::uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = dtype == DType::f16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
  return out;
}
double from_16(std::uint16_t h, DType dtype) { return dtype == DType::f16 ? half_to_float(h) : bf16_to_float(h); }

TEST(CudaRuntimeGpu, CublasLtGemmsMatchARowMajorReference) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  CudaDevice device(0);
  const CublasLt& lib = CublasLt::get();
  CublasLtHandle handle(lib, device);
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  const CudaDriver& d = device.driver();
  const ScopedContext scope(d, device.context());
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int ran = 0;
  for (DType dtype : {DType::f32, DType::f16, DType::bf16})
    for (GemmEpilogue epilogue :
         {GemmEpilogue::none, GemmEpilogue::bias, GemmEpilogue::bias_relu, GemmEpilogue::bias_gelu_tanh})
      for (bool tb : {false, true}) {
        GemmDesc g;
        g.dtype = dtype;
        g.batch = 2;
        g.m = 48;
        g.n = 40;
        g.k = 72;
        g.transpose_b = tb;  // a Linear's weight [out, in] is B transposed
        g.stride_a = g.m * g.k;
        g.stride_b = 0;  // one weight for both batches
        g.epilogue = epilogue;
        std::vector<float> a(static_cast<std::size_t>(g.batch * g.m * g.k)), b(static_cast<std::size_t>(g.k * g.n)),
            bias(static_cast<std::size_t>(g.n));
        for (float& v : a) v = u(rng);
        for (float& v : b) v = u(rng);
        for (float& v : bias) v = u(rng);
        const std::size_t es = dtype == DType::f32 ? 4 : 2;
        std::vector<double> ha(a.size()), hb(b.size()), hbias(bias.size());  // the values the device sees
        std::uint64_t da = allocator.allocate(a.size() * es), db = allocator.allocate(b.size() * es);
        std::uint64_t dbias = allocator.allocate(bias.size() * es);
        std::uint64_t dc = allocator.allocate(static_cast<std::size_t>(g.batch * g.m * g.n) * es);
        auto upload = [&](std::uint64_t to, const std::vector<float>& v, std::vector<double>& seen) {
          if (dtype == DType::f32) {
            for (std::size_t i = 0; i < v.size(); ++i) seen[i] = v[i];
            d.check(d.memcpy_htod(to, v.data(), v.size() * 4), "cuMemcpyHtoD");
          } else {
            const std::vector<std::uint16_t> h = to_16(v, dtype);
            for (std::size_t i = 0; i < v.size(); ++i) seen[i] = from_16(h[i], dtype);
            d.check(d.memcpy_htod(to, h.data(), h.size() * 2), "cuMemcpyHtoD");
          }
        };
        upload(da, a, ha);
        upload(db, b, hb);
        upload(dbias, bias, hbias);
        GemmPlan plan(handle, g, std::size_t{32} << 20);
        const std::uint64_t workspace = plan.workspace_bytes() ? allocator.allocate(plan.workspace_bytes()) : 0;
        plan.run(nullptr, reinterpret_cast<const void*>(da), reinterpret_cast<const void*>(db),
                 reinterpret_cast<void*>(dc), epilogue == GemmEpilogue::none ? nullptr : reinterpret_cast<void*>(dbias),
                 reinterpret_cast<void*>(workspace));
        const std::size_t outputs = static_cast<std::size_t>(g.batch * g.m * g.n);
        std::vector<double> got(outputs);
        if (dtype == DType::f32) {
          std::vector<float> c(outputs);
          d.check(d.memcpy_dtoh(c.data(), dc, outputs * 4), "cuMemcpyDtoH");
          for (std::size_t i = 0; i < outputs; ++i) got[i] = c[i];
        } else {
          std::vector<std::uint16_t> c(outputs);
          d.check(d.memcpy_dtoh(c.data(), dc, outputs * 2), "cuMemcpyDtoH");
          for (std::size_t i = 0; i < outputs; ++i) got[i] = from_16(c[i], dtype);
        }
        const double tol = dtype == DType::f32 ? 1e-4 : dtype == DType::f16 ? 2e-2 : 8e-2;
        for (std::int64_t t = 0; t < g.batch; ++t)
          for (std::int64_t i = 0; i < g.m; ++i)
            for (std::int64_t j = 0; j < g.n; ++j) {
              double s = 0;
              for (std::int64_t p = 0; p < g.k; ++p)
                s += ha[static_cast<std::size_t>((t * g.m + i) * g.k + p)] *
                     hb[static_cast<std::size_t>(tb ? j * g.k + p : p * g.n + j)];
              if (epilogue != GemmEpilogue::none) s += hbias[static_cast<std::size_t>(j)];
              if (epilogue == GemmEpilogue::bias_relu) s = std::max(s, 0.0);
              if (epilogue == GemmEpilogue::bias_gelu_tanh)
                s = 0.5 * s * (1.0 + std::tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
              const double v = got[static_cast<std::size_t>((t * g.m + i) * g.n + j)];
              ASSERT_NEAR(v, s, tol * (1.0 + std::abs(s))) << name(dtype) << " epilogue " << static_cast<int>(epilogue)
                                                           << " tb " << tb << " at " << t << "," << i << "," << j;
            }
        for (std::uint64_t p : {da, db, dbias, dc}) allocator.free(p);
        if (workspace) allocator.free(workspace);
        ++ran;
      }
  EXPECT_EQ(ran, 24);
}

// A fused node's generated CUDA kernel, launched with launch_fused, computes what the CPU
// Program computes for the same graph: broadcasting, constants, relu, f16 operands.
TEST(CudaRuntimeGpu, AGeneratedFusedKernelMatchesTheCpu) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr) GTEST_SKIP() << "no NVRTC: " << Nvrtc::unavailable_reason();
  for (DType xtype : {DType::f32, DType::f16}) {
    Graph g;
    const Value x = g.input("x", {64, 100}, xtype);
    const Value b = g.input("b", {100});
    const Value out = relu(cast(x, DType::f32) * 1.5 + b) * 0.5 - b;
    optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), DType::i64);
    const ScheduledGraph s = compile_evaluation_graph(g.impl(), {id_of(out)}, true, DType::f32);
    std::int32_t fused = -1;
    for (std::int32_t n : s.schedule)
      if (s.graph->node(n).kind == OpKind::Fused) {
        ASSERT_EQ(fused, -1) << "one fused node";
        fused = n;
      }
    ASSERT_GE(fused, 0);
    const Node& node = s.graph->node(fused);
    const KernelSpec spec = kernel_spec(*s.graph, fused);
    ASSERT_EQ(spec.outputs.size(), 1u);

    std::mt19937 rng(2);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<float> xv(6400), bv(100);
    for (float& v : xv) v = u(rng);
    for (float& v : bv) v = u(rng);
    if (xtype == DType::f16)
      for (float& v : xv) v = half_to_float(float_to_half(v));

    CudaDevice device(0);
    CudaModule module(device, device_image(device, cuda_kernel_source(spec, "fused0"), "fused0.cu"), "fused0.cu");
    DeviceMemory memory(device);
    CachingAllocator allocator(memory);
    const CudaDriver& d = device.driver();
    const ScopedContext scope(d, device.context());
    std::vector<std::uint64_t> buffers;
    for (std::size_t i = 0; i < spec.operands.size(); ++i) {
      // An input, or (f16 on the CPU pipeline, which computes in f32) the cast of one.
      const Node* src = &s.graph->node(node.inputs[i].node);
      if (src->kind == OpKind::Cast) src = &s.graph->node(src->inputs[0].node);
      ASSERT_EQ(src->kind, OpKind::Input) << "operand " << i << " comes from a graph input";
      const bool is_x = src->name == "x";
      const std::vector<float>& host = is_x ? xv : bv;
      const std::uint64_t at = allocator.allocate(host.size() * 4);
      if (spec.operands[i].dtype == DType::f16) {
        const std::vector<std::uint16_t> h = to_16(host, DType::f16);
        d.check(d.memcpy_htod(at, h.data(), h.size() * 2), "cuMemcpyHtoD");
      } else {
        d.check(d.memcpy_htod(at, host.data(), host.size() * 4), "cuMemcpyHtoD");
      }
      buffers.push_back(at);
    }
    const std::uint64_t result = allocator.allocate(6400 * 4);
    buffers.push_back(result);
    launch_fused(module, module.function("fused0"), spec, cuda_launch(spec), buffers, nullptr);
    std::vector<float> got(6400);
    d.check(d.memcpy_dtoh(got.data(), result, got.size() * 4), "cuMemcpyDtoH");

    Graph cpu;
    const Value cx = cpu.input("x", {64, 100}, xtype);
    const Value cb = cpu.input("b", {100});
    const Value cout = relu(cast(cx, DType::f32) * 1.5 + cb) * 0.5 - cb;
    Program p = compile(cpu, sum(cout), optim::None{}, {});
    std::vector<Half> xh;
    for (float v : xv) xh.push_back(to_half(v));
    const Tensor xt =
        xtype == DType::f16 ? Tensor::from_vector<Half>({64, 100}, xh) : Tensor::from_vector<float>({64, 100}, xv);
    const Tensor want = p.evaluate({{"x", xt}, {"b", Tensor::from_vector<float>({100}, bv)}}, {cout})[0];
    // NVRTC contracts a * b + c into one FMA (--fmad=true, its default); the host compiler may
    // not: a rounding apart.
    for (std::size_t i = 0; i < got.size(); ++i) {
      const float w = want.data<float>()[i];
      ASSERT_NEAR(got[i], w, 1e-6f * (1.0f + std::abs(w))) << name(xtype) << " at " << i;
    }
  }
}

constexpr const char* kCombine = R"(
extern "C" __global__ void combine(const float* a, const float* b, float* out, float tag, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = (a ? a[i] : 1.0f) * 0.5f + (b ? b[i] : 0.0f) + tag;
}
)";

// A DAG of 24 kernels placed by plan_streams on three streams: issued eagerly, then captured
// into a CUDA graph and replayed, it computes what running the nodes one after another on the
// host computes; the loss-like read-back of the last node comes back through pinned memory
// with at most one blocking wait however many steps were queued.
TEST(CudaRuntimeGpu, AStreamPlanRunsEagerAndAsAReplayedGraph) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr) GTEST_SKIP() << "no NVRTC: " << Nvrtc::unavailable_reason();
  constexpr int kNodes = 24, kN = 4096;
  Dag dag;
  dag.preds.resize(kNodes);
  std::mt19937 rng(9);
  for (int p = 1; p < kNodes; ++p) {
    dag.preds[static_cast<std::size_t>(p)].push_back(static_cast<std::int32_t>(rng() % static_cast<unsigned>(p)));
    if (p > 2 && rng() % 2 == 0)
      dag.preds[static_cast<std::size_t>(p)].push_back(static_cast<std::int32_t>(rng() % static_cast<unsigned>(p)));
  }
  std::vector<std::int32_t> order(kNodes);
  for (int p = 0; p < kNodes; ++p) order[static_cast<std::size_t>(p)] = p;
  StreamPlanOptions options;
  options.compute_streams = 3;
  options.communication_stream = false;
  const StreamPlan plan =
      plan_streams(order, dag, std::vector<bool>(kNodes, true), std::vector<bool>(kNodes, false), options);
  ASSERT_GE(plan.streams(), 2) << "the DAG forks";

  // The host's answer: node p from its (up to two) predecessors, one after another.
  std::vector<std::vector<float>> want(kNodes, std::vector<float>(kN));
  for (int p = 0; p < kNodes; ++p) {
    const auto& pr = dag.preds[static_cast<std::size_t>(p)];
    for (int i = 0; i < kN; ++i) {
      const float a = pr.empty() ? 1.0f : want[static_cast<std::size_t>(pr[0])][static_cast<std::size_t>(i)];
      const float b = pr.size() < 2 ? 0.0f : want[static_cast<std::size_t>(pr[1])][static_cast<std::size_t>(i)];
      want[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)] = a * 0.5f + b + static_cast<float>(p);
    }
  }

  CudaDevice device(0);
  CudaModule module(device, device_image(device, kCombine, "combine.cu"), "combine.cu");
  void* combine = module.function("combine");
  DeviceMemory memory(device);
  CachingAllocator allocator(memory);
  std::vector<std::uint64_t> buf;
  for (int p = 0; p < kNodes; ++p) buf.push_back(allocator.allocate(kN * 4));
  const CudaDriver& d = device.driver();
  StreamSet streams(device, plan);
  auto launch = [&](std::size_t p, void* stream) {
    const auto& pr = dag.preds[p];
    std::uint64_t a = pr.empty() ? 0 : buf[static_cast<std::size_t>(pr[0])];
    std::uint64_t b = pr.size() < 2 ? 0 : buf[static_cast<std::size_t>(pr[1])];
    std::uint64_t out = buf[p];
    auto tag = static_cast<float>(p);
    int n = kN;
    void* params[] = {&a, &b, &out, &tag, &n};
    module.launch(combine, {.grid_x = 16, .block_x = 256}, stream, params);
  };
  auto check_all = [&](const char* what) {
    const ScopedContext scope(d, device.context());
    d.check(d.stream_synchronize(streams.stream(0)), "cuStreamSynchronize");
    std::vector<float> got(kN);
    for (int p = 0; p < kNodes; ++p) {
      d.check(d.memcpy_dtoh(got.data(), buf[static_cast<std::size_t>(p)], kN * 4), "cuMemcpyDtoH");
      ASSERT_EQ(got, want[static_cast<std::size_t>(p)]) << what << ", node " << p;
    }
  };
  auto clear = [&] {
    const ScopedContext scope(d, device.context());
    for (std::uint64_t b : buf) d.check(d.memset_d8(b, 0, kN * 4), "cuMemsetD8");
    // cuMemsetD8 may still run on the legacy stream, which non-blocking streams do not wait for.
    d.check(d.stream_synchronize(nullptr), "cuStreamSynchronize(legacy)");
  };

  clear();
  streams.fork();
  streams.issue(launch);
  streams.join();
  check_all("eager");

  clear();
  CudaGraphStep graph(streams, [&] { streams.issue(launch); });
  std::atomic<std::int64_t> waits{0};
  AsyncReadback loss(device, 4, waits);
  for (int step = 0; step < 100; ++step) {
    graph.replay();
    loss.enqueue(buf.back(), streams.stream(0));
  }
  float last = 0;
  std::memcpy(&last, loss.get(), 4);
  EXPECT_EQ(last, want.back()[0]);
  EXPECT_LE(waits.load(), 1) << "100 steps queued, one wait at the end at most";
  check_all("graph replay");
  EXPECT_TRUE(loss.ready());
  for (std::uint64_t b : buf) allocator.free(b);
}

TEST(CudaRuntimeGpu, BadImagesAndNamesAreClearErrors) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  CudaDevice device(0);
  test::expect_error([&] { CudaModule m(device, "not an image", "garbage.cu"); }, ErrorKind::Runtime,
                     {"loading garbage.cu on cuda:0"});
  Nvrtc* nvrtc = Nvrtc::get();
  if (nvrtc == nullptr) GTEST_SKIP() << "no NVRTC: " << Nvrtc::unavailable_reason();
  CudaModule module(device, device_image(device, kAxpy, "axpy.cu"), "axpy.cu");
  test::expect_error([&] { module.function("saxpy"); }, ErrorKind::NotFound, {"'saxpy'", "axpy.cu"});
}

TEST(CudaRuntimeGpu, AnOrdinalPastTheLastDeviceIsRefused) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  test::expect_error([] { CudaDevice device(probe_cuda().device_count); }, ErrorKind::InvalidArgument,
                     {"does not exist"});
}

}  // namespace
}  // namespace trainrt::detail
