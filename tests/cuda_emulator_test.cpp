// The emulated CUDA device (DESIGN decision 12): its configuration, the happens-before check
// and the source rewrite on their own; then, on the emulated device (this binary runs with
// TRAINRT_CUDA_DEVICE=emulated, label cuda_emulated), the driver's semantics, kernels against
// CPU references in f32, f16 and bf16, and one planted bug per check, each report asserted to
// name the kernel or operation.
//
// Contents: Config*, HappensBefore*, HostSource* (no device) | Driver*, Capture* | Kernel*
// (reference kernels, determinism) | Planted* (checking mode only: the "unchecked." run of this
// binary leaves them out).
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "codegen/cuda_host_source.h"
#include "compile/nvrtc.h"
#include "core/error.h"
#include "core/half.h"
#include "runtime/cuda/emulated/config.h"
#include "runtime/cuda/emulated/emulator.h"
#include "runtime/cuda/emulated/happens_before.h"
#include "runtime/cuda/module.h"
#include "runtime/device.h"
#include "test_util.h"

namespace trainrt::detail {
namespace {

// ---- configuration ----

TEST(Config, UnsetMeansTheRealDriver) {
  const EmulatorConfig c = parse_emulator_config(nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_FALSE(c.requested);
}

TEST(Config, DevicesArchMemoryCheckAndSeed) {
  EmulatorConfig c = parse_emulator_config("emulated", nullptr, nullptr, nullptr, nullptr);
  EXPECT_TRUE(c.requested);
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.devices, 1);
  EXPECT_EQ(c.arch, 90);
  EXPECT_EQ(c.memory, 8ull << 30);
  EXPECT_FALSE(c.check);
  c = parse_emulator_config("emulated:3", "8.0", "512M", "1", "7");
  EXPECT_EQ(c.error, "");
  EXPECT_EQ(c.devices, 3);
  EXPECT_EQ(c.arch, 80);
  EXPECT_EQ(c.memory, 512ull << 20);
  EXPECT_TRUE(c.check);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(parse_emulator_config("emulated", "sm_86", nullptr, nullptr, nullptr).arch, 86);
}

TEST(Config, MalformedValuesSayWhatIsAccepted) {
  EXPECT_NE(parse_emulator_config("emulatd", nullptr, nullptr, nullptr, nullptr).error.find("'emulated:N'"),
            std::string::npos);
  EXPECT_NE(parse_emulator_config("emulated:0", nullptr, nullptr, nullptr, nullptr).error.find("1 to 64"),
            std::string::npos);
  EXPECT_NE(parse_emulator_config("emulated", "ninety", nullptr, nullptr, nullptr).error.find("ARCH"),
            std::string::npos);
  EXPECT_NE(parse_emulator_config("emulated", nullptr, "lots", nullptr, nullptr).error.find("MEMORY"),
            std::string::npos);
  EXPECT_NE(parse_emulator_config("emulated", nullptr, nullptr, "yes", nullptr).error.find("0 or 1"),
            std::string::npos);
}

// ---- the happens-before check, alone ----

std::shared_ptr<const AccessSource> src(const char* op, const char* stream) {
  return std::make_shared<const AccessSource>(AccessSource{op, stream});
}

TEST(HappensBefore, UnorderedWriteThenReadOnAnotherStreamIsReported) {
  HappensBefore hb;
  const int s1 = hb.add_component(), s2 = hb.add_component();
  EXPECT_EQ(hb.access({1, 0}, s1, src("kernel produce", "stream 1"), {{0x1000, 64, true}}), "");
  const std::string r = hb.access({0, 1}, s2, src("kernel consume", "stream 2"), {{0x1020, 8, false}});
  EXPECT_NE(r.find("kernel consume on stream 2 reads"), std::string::npos) << r;
  EXPECT_NE(r.find("kernel produce on stream 1 wrote"), std::string::npos) << r;
  EXPECT_NE(r.find("0x1020"), std::string::npos) << r;
}

TEST(HappensBefore, AnEventOrdersThemAndDisjointBytesNeverConflict) {
  HappensBefore hb;
  const int s1 = hb.add_component(), s2 = hb.add_component();
  EXPECT_EQ(hb.access({1, 0}, s1, src("w", "1"), {{0x1000, 64, true}}), "");
  EXPECT_EQ(hb.access({1, 1}, s2, src("r", "2"), {{0x1000, 64, false}}), "") << "s2 learnt s1's tick 1";
  EXPECT_EQ(hb.access({2, 1}, s1, src("w2", "1"), {{0x2000, 64, true}}), "");
  EXPECT_EQ(hb.access({1, 2}, s2, src("w3", "2"), {{0x2040, 64, true}}), "") << "adjacent, not overlapping";
  // Reads on two streams never conflict; a write after both must know both.
  EXPECT_EQ(hb.access({3, 0}, s1, src("r1", "1"), {{0x3000, 4, false}}), "");
  EXPECT_EQ(hb.access({0, 3}, s2, src("r2", "2"), {{0x3000, 4, false}}), "");
  EXPECT_NE(hb.access({4, 0}, s1, src("w4", "1"), {{0x3000, 4, true}}).find("r2 on 2 read"), std::string::npos);
}

TEST(HappensBefore, ForgottenMemoryStartsClean) {
  HappensBefore hb;
  const int s1 = hb.add_component(), s2 = hb.add_component();
  EXPECT_EQ(hb.access({1, 0}, s1, src("w", "1"), {{0x1000, 64, true}}), "");
  hb.forget(0x1000, 0x1040);
  EXPECT_EQ(hb.segments(), 0u);
  EXPECT_EQ(hb.access({0, 1}, s2, src("r", "2"), {{0x1000, 64, false}}), "");
}

// ---- the source rewrite, alone ----

TEST(HostSource, FindsKernelsAndTellsWhetherThreadsSynchronize) {
  const HostSource h = emulated_source(R"(
extern "C" __global__ void a(float* x) { x[threadIdx.x] = 1.0f; }
extern "C" {
__global__ void __launch_bounds__(128) b(float* x) { __shared__ float s[128]; s[threadIdx.x] = x[0]; __syncthreads(); }
}
__device__ float helper(float v) { return v; }
extern "C" __global__ void declared_only(float* x);
)",
                                       "two.cu");
  EXPECT_EQ(h.kernels, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(h.uses_sync);
  EXPECT_NE(h.code.find("declare_shared<float [128]>(0, \"s\")"), std::string::npos);
  EXPECT_NE(h.code.find("#line 1 \"two.cu\""), std::string::npos);
  EXPECT_FALSE(emulated_source("extern \"C\" __global__ void k(int* p) { *p = 1; }", "k.cu").uses_sync);
}

TEST(HostSource, WhatTheEmulatorCannotRunIsRefusedByName) {
  auto refused = [](const char* source, std::vector<std::string> parts) {
    test::expect_error([&] { emulated_source(source, "bad.cu"); }, ErrorKind::Unsupported, parts);
  };
  refused("__global__ void k(float* x) {}", {"bad.cu:1", "'k' is not extern \"C\""});
  refused("template <int N> extern \"C\" __global__ void k(float* x) {}", {"template kernel 'k'"});
  refused("__shared__ float s[4];\nextern \"C\" __global__ void k(float* x) {}", {"bad.cu:1", "file scope"});
  refused("extern \"C\" __global__ void k(float* x) {\n __shared__ float s[4] = {0};\n}", {"bad.cu:2", "initializer"});
  refused("extern \"C\" __global__ void k(float* x) { __shared__ float a[4], b[4]; }", {"several variables"});
  refused("extern \"C\" __global__ void k(int* x) { asm(\"trap;\"); }", {"inline PTX"});
  refused("extern \"C\" __global__ void k(float* x) { *x = __shfl(*x, 0); }", {"__shfl_sync"});
  test::expect_error([] { emulated_source("__device__ int f() { return 1; }", "none.cu"); }, ErrorKind::InvalidArgument,
                     {"none.cu", "no extern \"C\" __global__ kernel"});
}

// ---- on the emulated device ----

/// A device, an allocator and a helper to compile and launch (the process has
/// TRAINRT_CUDA_DEVICE=emulated; ctest sets it).
class Emulated : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(emulator_config().requested) << "run with TRAINRT_CUDA_DEVICE=emulated (ctest does)";
    ASSERT_EQ(emulator_config().error, "");
    ASSERT_NE(Nvrtc::get(), nullptr) << Nvrtc::unavailable_reason();
    device_ = std::make_unique<CudaDevice>(0);
    scope_ = std::make_unique<ScopedContext>(d(), device_->context());
  }
  void TearDown() override {
    scope_.reset();
    device_.reset();
  }
  const CudaDriver& d() const { return CudaDriver::get(); }
  CudaDevice& device() { return *device_; }
  std::unique_ptr<CudaModule> module(const std::string& source, const std::string& name) {
    return std::make_unique<CudaModule>(*device_, device_image(*device_, source, name), name);
  }
  std::uint64_t alloc(std::size_t bytes) {
    CuDevicePtr p = 0;
    d().check(d().mem_alloc(&p, bytes), "cuMemAlloc");
    return p;
  }
  void free(std::uint64_t p) { d().check(d().mem_free(p), "cuMemFree"); }
  template <class T>
  std::uint64_t upload(const std::vector<T>& v) {
    const std::uint64_t p = alloc(v.size() * sizeof(T));
    d().check(d().memcpy_htod(p, v.data(), v.size() * sizeof(T)), "cuMemcpyHtoD");
    return p;
  }
  template <class T>
  std::vector<T> download(std::uint64_t p, std::size_t n) {
    std::vector<T> v(n);
    d().check(d().memcpy_dtoh(v.data(), p, n * sizeof(T)), "cuMemcpyDtoH");
    return v;
  }
  /// The status of a synchronize of the legacy stream, and the driver's text for it.
  std::string sync_error() {
    const int st = d().stream_synchronize(nullptr);
    return st == kCudaSuccess ? std::string() : d().describe(st);
  }
  void* stream() {
    void* s = nullptr;
    d().check(d().stream_create(&s, kCudaStreamNonBlocking), "cuStreamCreate");
    return s;
  }
  void* event() {
    void* e = nullptr;
    d().check(d().event_create(&e, kCudaEventDisableTiming), "cuEventCreate");
    return e;
  }

 private:
  std::unique_ptr<CudaDevice> device_;
  std::unique_ptr<ScopedContext> scope_;
};

using Driver = Emulated;

TEST_F(Driver, NamesItselfEmulatedWithTheConfiguredArchitectureAndMemory) {
  EXPECT_TRUE(d().emulated);
  EXPECT_NE(device().description().find("emulated"), std::string::npos) << device().description();
  EXPECT_EQ(device().arch(), emulator_config().arch);
  std::size_t total = 0, free_bytes = 0;
  d().check(d().mem_get_info(&free_bytes, &total), "cuMemGetInfo");
  EXPECT_EQ(total, emulator_config().memory);
  EXPECT_EQ(probe_cuda().device_count, emulator_config().devices);
}

TEST_F(Driver, ExhaustingTheMemoryIsTheRealOutOfMemoryCode) {
  CuDevicePtr p = 0;
  EXPECT_EQ(d().mem_alloc(&p, emulator_config().memory + 1), kCudaErrorOutOfMemory);
  const std::uint64_t a = alloc(1 << 20);
  free(a);
}

TEST_F(Driver, CopiesOutsideAnAllocationAndDoubleFreesAreRefusedByName) {
  const std::uint64_t a = alloc(1000);
  std::vector<char> host(2000);
  int st = d().memcpy_htod(a, host.data(), 1001);
  EXPECT_EQ(st, kCudaErrorInvalidValue);
  EXPECT_NE(d().describe(st).find("cuMemcpyHtoD of 1001 bytes: the destination"), std::string::npos)
      << d().describe(st);
  EXPECT_NE(d().describe(st).find("1 byte(s) past the end"), std::string::npos) << d().describe(st);
  free(a);
  st = d().mem_free(a);
  EXPECT_EQ(st, kCudaErrorInvalidValue);
  EXPECT_NE(d().describe(st).find("freed already"), std::string::npos) << d().describe(st);
  st = d().memcpy_dtoh(host.data(), a, 8);
  EXPECT_NE(d().describe(st).find("freed memory"), std::string::npos) << d().describe(st);
}

// A host function that blocks until released: controls when a stream's work completes.
struct Gate {
  std::atomic<bool> open{false}, reached{false};
  static void wait(void* self) {
    auto* g = static_cast<Gate*>(self);
    g->reached = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!g->open && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  }
};

TEST_F(Driver, EventsRecordQueryWaitAndSynchronizeAsTheDriverSays) {
  void* s1 = stream();
  void* s2 = stream();
  void* e = event();
  EXPECT_EQ(d().event_query(e), kCudaSuccess) << "an event never recorded is complete";
  Gate gate;
  d().check(d().launch_host_func(s1, &Gate::wait, &gate), "cuLaunchHostFunc");
  d().check(d().event_record(e, s1), "cuEventRecord");
  EXPECT_EQ(d().event_query(e), kCudaErrorNotReady);
  EXPECT_EQ(d().stream_query(s1), kCudaErrorNotReady);
  // s2 waits for the event: its own work does not run before the gate opens.
  std::atomic<int> ran{0};
  d().check(d().stream_wait_event(s2, e, 0), "cuStreamWaitEvent");
  d().check(d().launch_host_func(
                s2, [](void* p) { static_cast<std::atomic<int>*>(p)->fetch_add(1); }, &ran),
            "cuLaunchHostFunc");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ran.load(), 0);
  // Re-recording after the wait does not change what s2 waits for.
  gate.open = true;
  const EmulatorWaits before = emulator_waits();
  d().check(d().event_synchronize(e), "cuEventSynchronize");
  d().check(d().stream_synchronize(s2), "cuStreamSynchronize");
  EXPECT_EQ(ran.load(), 1);
  const EmulatorWaits after = emulator_waits();
  EXPECT_EQ(after.event_synchronize - before.event_synchronize, 1);
  EXPECT_EQ(after.stream_synchronize - before.stream_synchronize, 1);
  EXPECT_EQ(d().event_query(e), kCudaSuccess);
  d().check(d().event_destroy(e), "cuEventDestroy");
  EXPECT_EQ(d().event_query(e), kCudaErrorInvalidHandle) << "a destroyed event";
  for (void* s : {s1, s2}) d().check(d().stream_destroy(s), "cuStreamDestroy");
}

TEST_F(Driver, IndependentStreamsRunAtTheSameTime) {
  // Each stream's host function waits for the other's: only streams with workers of their
  // own get both through.
  struct Pair {
    std::atomic<bool> a{false}, b{false}, ok_a{false}, ok_b{false};
  } pair;
  auto meet = [](std::atomic<bool>& mine, std::atomic<bool>& other, std::atomic<bool>& ok) {
    mine = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!other && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    ok = other.load();
  };
  void* s1 = stream();
  void* s2 = stream();
  static Pair* p = &pair;
  static auto* m = +meet;
  d().check(d().launch_host_func(
                s1, [](void*) { m(p->a, p->b, p->ok_a); }, nullptr),
            "cuLaunchHostFunc");
  d().check(d().launch_host_func(
                s2, [](void*) { m(p->b, p->a, p->ok_b); }, nullptr),
            "cuLaunchHostFunc");
  d().check(d().ctx_synchronize(), "cuCtxSynchronize");
  EXPECT_TRUE(pair.ok_a && pair.ok_b);
  for (void* s : {s1, s2}) d().check(d().stream_destroy(s), "cuStreamDestroy");
}

TEST_F(Driver, HostWaitsAreCountedByKind) {
  const std::uint64_t a = alloc(64);
  std::vector<char> host(64);
  emulator_reset_waits();
  d().check(d().memcpy_htod(a, host.data(), 64), "cuMemcpyHtoD");
  d().check(d().memcpy_dtoh(host.data(), a, 64), "cuMemcpyDtoH");
  d().check(d().ctx_synchronize(), "cuCtxSynchronize");
  void* s = stream();
  d().check(d().memcpy_dtoh_async(host.data(), a, 64, s), "cuMemcpyDtoHAsync (pageable)");
  void* pinned = nullptr;
  d().check(d().mem_host_alloc(&pinned, 64, kCudaHostAllocPortable), "cuMemHostAlloc");
  d().check(d().memcpy_dtoh_async(pinned, a, 64, s), "cuMemcpyDtoHAsync (pinned)");
  const EmulatorWaits w = emulator_waits();
  EXPECT_EQ(w.synchronous_copy, 2);
  EXPECT_EQ(w.context_synchronize, 1);
  EXPECT_EQ(w.pageable_copy, 1) << "a copy into pageable memory makes the host wait; into pinned it does not";
  EXPECT_EQ(w.stream_synchronize, 0);
  d().check(d().stream_synchronize(s), "cuStreamSynchronize");
  EXPECT_EQ(emulator_waits().stream_synchronize, 1);
  d().check(d().mem_free_host(pinned), "cuMemFreeHost");
  d().check(d().stream_destroy(s), "cuStreamDestroy");
  free(a);
}

TEST_F(Driver, TheLegacyStreamWaitsForBlockingStreamsButNotForNonBlockingOnes) {
  void* blocking = nullptr;
  d().check(d().stream_create(&blocking, 0), "cuStreamCreate(blocking)");
  void* nonblocking = stream();
  Gate g1, g2;
  d().check(d().launch_host_func(blocking, &Gate::wait, &g1), "cuLaunchHostFunc");
  d().check(d().launch_host_func(nonblocking, &Gate::wait, &g2), "cuLaunchHostFunc");
  std::atomic<int> ran{0};
  d().check(d().launch_host_func(
                nullptr, [](void* p) { static_cast<std::atomic<int>*>(p)->fetch_add(1); }, &ran),
            "cuLaunchHostFunc(legacy)");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ran.load(), 0) << "the legacy stream waits for the blocking stream";
  g1.open = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ran.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(ran.load(), 1) << "and not for the non-blocking one, still held";
  g2.open = true;
  d().check(d().ctx_synchronize(), "cuCtxSynchronize");
  for (void* s : {blocking, nonblocking}) d().check(d().stream_destroy(s), "cuStreamDestroy");
}

using Capture = Emulated;

TEST_F(Capture, AGraphReplaysItsDependenciesNotTheCaptureOrder) {
  void* s0 = stream();
  void* s1 = stream();
  void* fork = event();
  void* joined = event();
  static std::vector<char> order;  // host functions write it from the stream's worker, one at a time
  order.clear();
  auto mark = [](void* c) { order.push_back(*static_cast<const char*>(c)); };
  static const char a = 'a', b = 'b', c = 'c';
  d().check(d().stream_begin_capture(s0, kCudaCaptureThreadLocal), "cuStreamBeginCapture");
  d().check(d().event_record(fork, s0), "cuEventRecord");
  d().check(d().stream_wait_event(s1, fork, 0), "cuStreamWaitEvent");
  d().check(d().launch_host_func(s0, mark, const_cast<char*>(&a)), "a");
  d().check(d().launch_host_func(s1, mark, const_cast<char*>(&b)), "b");
  d().check(d().event_record(joined, s1), "cuEventRecord");
  d().check(d().stream_wait_event(s0, joined, 0), "cuStreamWaitEvent");
  d().check(d().launch_host_func(s0, mark, const_cast<char*>(&c)), "c");  // after a and b
  int status = -1;
  d().check(d().stream_is_capturing(s1, &status), "cuStreamIsCapturing");
  EXPECT_EQ(status, kCudaCaptureStatusActive) << "s1 joined the capture through the event";
  void* graph = nullptr;
  d().check(d().stream_end_capture(s0, &graph), "cuStreamEndCapture");
  EXPECT_TRUE(order.empty()) << "nothing runs while capturing";
  d().check(d().stream_is_capturing(s1, &status), "cuStreamIsCapturing");
  EXPECT_EQ(status, kCudaCaptureStatusNone);
  void* exec = nullptr;
  d().check(d().graph_instantiate(&exec, graph, 0), "cuGraphInstantiate");
  for (int i = 0; i < 3; ++i) d().check(d().graph_launch(exec, s0), "cuGraphLaunch");
  d().check(d().stream_synchronize(s0), "cuStreamSynchronize");
  // a and b are independent: the replay takes the one captured later first; c waits for both.
  EXPECT_EQ(std::string(order.begin(), order.end()), "bacbacbac");
  d().check(d().graph_exec_destroy(exec), "cuGraphExecDestroy");
  d().check(d().graph_destroy(graph), "cuGraphDestroy");
  for (void* s : {s0, s1}) d().check(d().stream_destroy(s), "cuStreamDestroy");
}

TEST_F(Capture, AForkNeverJoinedIsRefused) {
  void* s0 = stream();
  void* s1 = stream();
  void* fork = event();
  d().check(d().stream_begin_capture(s0, kCudaCaptureThreadLocal), "cuStreamBeginCapture");
  d().check(d().event_record(fork, s0), "cuEventRecord");
  d().check(d().stream_wait_event(s1, fork, 0), "cuStreamWaitEvent");
  d().check(d().launch_host_func(
                s1, [](void*) {}, nullptr),
            "cuLaunchHostFunc");
  void* graph = nullptr;
  const int st = d().stream_end_capture(s0, &graph);
  EXPECT_EQ(st, kCudaErrorCaptureUnjoined);
  EXPECT_NE(d().describe(st).find("is not joined back"), std::string::npos) << d().describe(st);
  for (void* s : {s0, s1}) d().check(d().stream_destroy(s), "cuStreamDestroy");
}

// ---- kernels against the CPU ----

constexpr const char* kTypes = R"(
#include <cuda_fp16.h>
#include <cuda_bf16.h>
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(float v, float* out) { *out = v; }
__device__ __forceinline__ void store(float v, __half* out) { *out = __float2half_rn(v); }
__device__ __forceinline__ void store(float v, __nv_bfloat16* out) { *out = __float2bfloat16_rn(v); }
)";

// Each block sums its grid-stride share in a fixed tree: out[block].
constexpr const char* kBlockSum = R"(
extern "C" __global__ void block_sum(const T* x, float* out, int n) {
  __shared__ float s[256];
  const int tid = threadIdx.x;
  float acc = 0.0f;
  for (int i = blockIdx.x * 256 + tid; i < n; i += gridDim.x * 256) acc += to_f(x[i]);
  s[tid] = acc;
  SYNC_AFTER_STORE
  for (int stride = 128; stride > 0; stride >>= 1) {
    if (tid < stride) s[tid] += s[tid + stride];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = s[0];
}
)";

// Inclusive prefix sums within each block (Hillis-Steele, double-buffered).
constexpr const char* kScan = R"(
extern "C" __global__ void block_scan(const T* x, float* out, int n) {
  __shared__ float buf[2][256];
  const int tid = threadIdx.x, i = blockIdx.x * blockDim.x + tid;
  int cur = 0;
  buf[0][tid] = i < n ? to_f(x[i]) : 0.0f;
  __syncthreads();
  for (int off = 1; off < blockDim.x; off <<= 1) {
    float v = buf[cur][tid];
    if (tid >= off) v += buf[cur][tid - off];
    buf[1 - cur][tid] = v;
    cur = 1 - cur;
    __syncthreads();
  }
  if (i < n) out[i] = buf[cur][tid];
}
)";

// out = in^T through a 32 x 33 shared tile; blocks of 32 x 8 threads.
constexpr const char* kTranspose = R"(
extern "C" __global__ void transpose(const T* in, T* out, int rows, int cols) {
  __shared__ T tile[32][33];
  int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
  for (int j = 0; j < 32; j += 8)
    if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * cols + x];
  __syncthreads();
  x = blockIdx.y * 32 + threadIdx.x;
  y = blockIdx.x * 32 + threadIdx.y;
  for (int j = 0; j < 32; j += 8)
    if (x < rows && y + j < cols) out[(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}
)";

// Row softmax, one warp per row, reductions by butterfly shuffles.
constexpr const char* kSoftmax = R"(
extern "C" __global__ void warp_softmax(const T* x, T* y, int rows, int cols) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= rows) return;
  float m = -__int_as_float(0x7f800000);  // -inf (NVRTC has no INFINITY macro)
  for (int c = lane; c < cols; c += 32) m = fmaxf(m, to_f(x[row * cols + c]));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float s = 0.0f;
  for (int c = lane; c < cols; c += 32) s += expf(to_f(x[row * cols + c]) - m);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  for (int c = lane; c < cols; c += 32) store(expf(to_f(x[row * cols + c]) - m) / s, &y[row * cols + c]);
}
)";

std::string typed(DType t, const char* kernel, const char* extra = "#define SYNC_AFTER_STORE __syncthreads();\n") {
  const char* name = t == DType::f16 ? "__half" : t == DType::bf16 ? "__nv_bfloat16" : "float";
  return cat(kTypes, "typedef ", name, " T;\n", extra, kernel);
}

/// `n` values rounded to `t` (returned as floats) and their bytes in `t`.
std::vector<float> random_values(std::size_t n, DType t, std::vector<std::uint8_t>& bytes, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(n);
  bytes.assign(n * size_of(t), 0);
  for (std::size_t i = 0; i < n; ++i) {
    float x = u(rng);
    if (t == DType::f32) {
      std::memcpy(bytes.data() + 4 * i, &x, 4);
    } else {
      const std::uint16_t h = t == DType::f16 ? float_to_half(x) : float_to_bf16(x);
      x = t == DType::f16 ? half_to_float(h) : bf16_to_float(h);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    v[i] = x;
  }
  return v;
}

float from_bytes(const std::vector<std::uint8_t>& b, DType t, std::size_t i) {
  if (t == DType::f32) {
    float f = 0;
    std::memcpy(&f, b.data() + 4 * i, 4);
    return f;
  }
  std::uint16_t h = 0;
  std::memcpy(&h, b.data() + 2 * i, 2);
  return t == DType::f16 ? half_to_float(h) : bf16_to_float(h);
}

class Kernel : public Emulated, public ::testing::WithParamInterface<DType> {};

TEST_P(Kernel, BlockReductionMatchesTheCpu) {
  const DType t = GetParam();
  auto m = module(typed(t, kBlockSum), "block_sum.cu");
  void* f = m->function("block_sum");
  std::mt19937 rng(1);
  for (int n : {1, 255, 256, 1000, 70001}) {
    std::vector<std::uint8_t> bytes;
    const std::vector<float> x = random_values(static_cast<std::size_t>(n), t, bytes, rng);
    const unsigned blocks = static_cast<unsigned>(std::min(32, (n + 255) / 256));
    std::uint64_t dx = upload(bytes), dout = alloc(blocks * 4);
    void* params[] = {&dx, &dout, &n};
    m->launch(f, {.grid_x = blocks, .block_x = 256}, nullptr, params);
    const std::vector<float> got = download<float>(dout, blocks);
    for (unsigned b = 0; b < blocks; ++b) {
      double want = 0;
      for (int i = static_cast<int>(b) * 256; i < n; i += static_cast<int>(blocks) * 256)
        for (int k = i; k < std::min(n, i + 256); ++k) want += x[static_cast<std::size_t>(k)];
      // f32 sums of at most 70001 values of |x| <= 2 in a tree: within 1e-5 of the f64 sum.
      EXPECT_NEAR(got[b], want, 1e-5 * (1 + std::abs(want)) * std::log2(n + 1.0))
          << name(t) << " n " << n << " block " << b;
    }
    free(dx);
    free(dout);
  }
}

TEST_P(Kernel, PrefixScanMatchesTheCpu) {
  const DType t = GetParam();
  auto m = module(typed(t, kScan), "scan.cu");
  void* f = m->function("block_scan");
  std::mt19937 rng(2);
  for (int n : {1, 100, 256, 1025, 5000}) {
    std::vector<std::uint8_t> bytes;
    const std::vector<float> x = random_values(static_cast<std::size_t>(n), t, bytes, rng);
    const unsigned blocks = static_cast<unsigned>((n + 255) / 256);
    std::uint64_t dx = upload(bytes), dout = alloc(static_cast<std::size_t>(n) * 4);
    void* params[] = {&dx, &dout, &n};
    m->launch(f, {.grid_x = blocks, .block_x = 256}, nullptr, params);
    const std::vector<float> got = download<float>(dout, static_cast<std::size_t>(n));
    for (int b = 0; b < n; b += 256) {
      double acc = 0;
      for (int i = b; i < std::min(n, b + 256); ++i) {
        acc += x[static_cast<std::size_t>(i)];
        ASSERT_NEAR(got[static_cast<std::size_t>(i)], acc, 1e-4 * (1 + std::abs(acc))) << name(t) << " at " << i;
      }
    }
    free(dx);
    free(dout);
  }
}

TEST_P(Kernel, TiledTransposeThroughSharedMemoryIsExact) {
  const DType t = GetParam();
  auto m = module(typed(t, kTranspose), "transpose.cu");
  void* f = m->function("transpose");
  std::mt19937 rng(3);
  for (auto [rows, cols] : {std::pair{1, 1}, std::pair{32, 32}, std::pair{33, 70}, std::pair{100, 7}}) {
    std::vector<std::uint8_t> bytes;
    (void)random_values(static_cast<std::size_t>(rows * cols), t, bytes, rng);
    std::uint64_t din = upload(bytes), dout = alloc(bytes.size());
    void* params[] = {&din, &dout, &rows, &cols};
    m->launch(f,
              {.grid_x = static_cast<unsigned>((cols + 31) / 32),
               .grid_y = static_cast<unsigned>((rows + 31) / 32),
               .block_x = 32,
               .block_y = 8},
              nullptr, params);
    const std::vector<std::uint8_t> got = download<std::uint8_t>(dout, bytes.size());
    const std::size_t es = size_of(t);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        ASSERT_EQ(std::memcmp(got.data() + es * static_cast<std::size_t>(c * rows + r),
                              bytes.data() + es * static_cast<std::size_t>(r * cols + c), es),
                  0)
            << name(t) << " " << rows << "x" << cols << " at " << r << "," << c;
    free(din);
    free(dout);
  }
}

TEST_P(Kernel, WarpShuffleSoftmaxMatchesTheCpu) {
  const DType t = GetParam();
  auto m = module(typed(t, kSoftmax), "softmax.cu");
  void* f = m->function("warp_softmax");
  std::mt19937 rng(4);
  for (auto [rows, cols] : {std::pair{1, 1}, std::pair{5, 31}, std::pair{9, 100}, std::pair{4, 32}}) {
    std::vector<std::uint8_t> bytes;
    const std::vector<float> x = random_values(static_cast<std::size_t>(rows * cols), t, bytes, rng);
    std::uint64_t dx = upload(bytes), dy = alloc(bytes.size());
    void* params[] = {&dx, &dy, &rows, &cols};
    m->launch(f, {.grid_x = static_cast<unsigned>((rows + 3) / 4), .block_x = 128}, nullptr, params);
    const std::vector<std::uint8_t> got = download<std::uint8_t>(dy, bytes.size());
    // One rounding of the output dtype, plus f32 exp/sum error.
    const double tol = t == DType::f32 ? 1e-6 : t == DType::f16 ? 1e-3 : 8e-3;
    for (int r = 0; r < rows; ++r) {
      double mx = -INFINITY, s = 0;
      for (int c = 0; c < cols; ++c) mx = std::max<double>(mx, x[static_cast<std::size_t>(r * cols + c)]);
      for (int c = 0; c < cols; ++c) s += std::exp(x[static_cast<std::size_t>(r * cols + c)] - mx);
      for (int c = 0; c < cols; ++c) {
        const double want = std::exp(x[static_cast<std::size_t>(r * cols + c)] - mx) / s;
        ASSERT_NEAR(from_bytes(got, t, static_cast<std::size_t>(r * cols + c)), want, tol * (want + 1e-3))
            << name(t) << " row " << r << " col " << c;
      }
    }
    free(dx);
    free(dy);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, Kernel, ::testing::Values(DType::f32, DType::f16, DType::bf16),
                         [](const auto& param) { return std::string(name(param.param)); });

TEST_F(Emulated, TwoRunsOfTheSameProgramGiveTheSameBits) {
  auto m = module(typed(DType::f32, kScan), "scan.cu");
  void* f = m->function("block_scan");
  std::mt19937 rng(5);
  std::vector<std::uint8_t> bytes;
  int n = 20000;
  (void)random_values(static_cast<std::size_t>(n), DType::f32, bytes, rng);
  std::uint64_t dx = upload(bytes), dout = alloc(bytes.size());
  void* params[] = {&dx, &dout, &n};
  std::vector<std::vector<std::uint8_t>> runs;
  for (int run = 0; run < 2; ++run) {
    d().check(d().memset_d8(dout, 0, bytes.size()), "cuMemsetD8");
    m->launch(f, {.grid_x = static_cast<unsigned>((n + 255) / 256), .block_x = 256}, nullptr, params);
    runs.push_back(download<std::uint8_t>(dout, bytes.size()));
  }
  EXPECT_EQ(runs[0], runs[1]);
  free(dx);
  free(dout);
}

TEST_F(Emulated, DynamicSharedMemoryAndAtomics) {
  auto m = module(R"(
extern "C" __global__ void histogram(const int* x, int n, unsigned* bins) {
  extern __shared__ unsigned local[];
  for (int b = threadIdx.x; b < 16; b += blockDim.x) local[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&local[x[i] & 15], 1u);
  __syncthreads();
  for (int b = threadIdx.x; b < 16; b += blockDim.x) atomicAdd(&bins[b], (unsigned)local[b]);
}
)",
                  "histogram.cu");
  std::vector<int> x(10007);
  std::vector<unsigned> want(16, 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<int>(i * 7919 % 1000);
    ++want[static_cast<std::size_t>(x[i] & 15)];
  }
  std::uint64_t dx = upload(x), bins = upload(std::vector<unsigned>(16, 0));
  int n = static_cast<int>(x.size());
  void* params[] = {&dx, &n, &bins};
  m->launch(m->function("histogram"), {.grid_x = 8, .block_x = 64, .shared_bytes = 16 * 4}, nullptr, params);
  EXPECT_EQ(download<unsigned>(bins, 16), want);
  free(dx);
  free(bins);
}

// ---- planted bugs (checking mode): each report names the kernel or operation ----

using Planted = Emulated;

TEST_F(Planted, ABlockReductionMissingASyncthreads) {
  auto m = module(typed(DType::f32, kBlockSum, "#define SYNC_AFTER_STORE\n"), "racy_sum.cu");
  std::vector<float> x(256, 1.0f);
  std::uint64_t dx = upload(x), dout = alloc(4);
  int n = 256;
  void* params[] = {&dx, &dout, &n};
  m->launch(m->function("block_sum"), {.grid_x = 1, .block_x = 256}, nullptr, params);
  const std::string e = sync_error();
  EXPECT_NE(e.find("kernel 'block_sum', block (0,0,0)"), std::string::npos) << e;
  EXPECT_NE(e.find("'s' at byte"), std::string::npos) << e;
  EXPECT_TRUE(e.find("shared-memory race") != std::string::npos ||
              e.find("no thread of the block has written") != std::string::npos)
      << e;
}

TEST_F(Planted, AShuffleReductionReadingALaneOutsideItsMask) {
  auto m = module(R"(
extern "C" __global__ void half_warp_sum(const float* x, float* out) {
  float v = x[threadIdx.x];
  if (threadIdx.x < 16) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0x0000ffffu, v, o);
    if (threadIdx.x == 0) out[0] = v;
  }
}
)",
                  "half_warp.cu");
  std::uint64_t dx = upload(std::vector<float>(32, 1.0f)), dout = alloc(4);
  void* params[] = {&dx, &dout};
  m->launch(m->function("half_warp_sum"), {.block_x = 32}, nullptr, params);
  const std::string e = sync_error();
  EXPECT_NE(e.find("kernel 'half_warp_sum'"), std::string::npos) << e;
  EXPECT_NE(e.find("__shfl_down_sync at line 5 and reads lane 16, which is outside the mask 0xffff"), std::string::npos)
      << e;
}

TEST_F(Planted, ABarrierInsideABranchTakenByHalfTheBlock) {
  auto m = module(R"(
extern "C" __global__ void divergent(float* out) {
  __shared__ float s[64];
  if (threadIdx.x < 32) {
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[31 - threadIdx.x];
  }
}
)",
                  "divergent.cu");
  std::uint64_t dout = alloc(64 * 4);
  void* params[] = {&dout};
  m->launch(m->function("divergent"), {.block_x = 64}, nullptr, params);
  const std::string e = sync_error();
  EXPECT_NE(e.find("kernel 'divergent'"), std::string::npos) << e;
  EXPECT_NE(e.find("the barrier at line 6 is reached by 32 of the block's 64 threads"), std::string::npos) << e;
}

constexpr const char* kFillCopy = R"(
extern "C" __global__ void fill(float* y, float v, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = v;
}
extern "C" __global__ void copy(const float* x, float* y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) y[i] = x[i];
}
)";

TEST_F(Planted, AConsumerOnOneStreamReadsWhatAProducerOnAnotherWroteWithNoEventBetween) {
  auto m = module(kFillCopy, "fill_copy.cu");
  void* producer = stream();
  void* consumer = stream();
  int n = 4096;
  std::uint64_t a = alloc(static_cast<std::size_t>(n) * 4), b = alloc(static_cast<std::size_t>(n) * 4);
  float v = 2.0f;
  void* fill_params[] = {&a, &v, &n};
  void* copy_params[] = {&a, &b, &n};
  const std::size_t bytes = static_cast<std::size_t>(n) * 4;
  // Ordered by an event: fine.
  void* ready = event();
  m->launch(m->function("fill"), {.grid_x = 4, .block_x = 256}, producer, fill_params, {{a, bytes, true}});
  d().check(d().event_record(ready, producer), "cuEventRecord");
  d().check(d().stream_wait_event(consumer, ready, 0), "cuStreamWaitEvent");
  m->launch(m->function("copy"), {.grid_x = 4, .block_x = 256}, consumer, copy_params,
            {{a, bytes, false}, {b, bytes, true}});
  d().check(d().ctx_synchronize(), "cuCtxSynchronize");
  EXPECT_EQ(download<float>(b, 1)[0], 2.0f);
  // Again, without the event.
  m->launch(m->function("fill"), {.grid_x = 4, .block_x = 256}, producer, fill_params, {{a, bytes, true}});
  try {
    m->launch(m->function("copy"), {.grid_x = 4, .block_x = 256}, consumer, copy_params,
              {{a, bytes, false}, {b, bytes, true}});
    ADD_FAILURE() << "the unordered launch was accepted";
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("unordered accesses"), std::string::npos) << w;
    EXPECT_NE(w.find("kernel copy (fill_copy.cu)"), std::string::npos) << w;
    EXPECT_NE(w.find("kernel fill (fill_copy.cu)"), std::string::npos) << w;
    EXPECT_NE(w.find("reads"), std::string::npos) << w;
  }
}

TEST_F(Planted, AReadOfFreedMemory) {
  auto m = module(kFillCopy, "fill_copy.cu");
  int n = 64;
  std::uint64_t a = alloc(256), b = alloc(256);
  free(a);
  void* params[] = {&a, &b, &n};
  test::expect_error([&] { m->launch(m->function("copy"), {.block_x = 64}, nullptr, params); }, ErrorKind::Runtime,
                     {"launching kernel copy", "parameter 0", "freed memory"});
  free(b);
}

TEST_F(Planted, AWriteOneElementPastAnAllocation) {
  auto m = module(R"(
extern "C" __global__ void one_past(float* y, int n) { if (threadIdx.x == 0) y[n] = 1.0f; }
)",
                  "one_past.cu");
  int n = 64;
  std::uint64_t y = alloc(static_cast<std::size_t>(n) * 4);
  void* params[] = {&y, &n};
  m->launch(m->function("one_past"), {.block_x = 32}, nullptr, params);
  const std::string e = sync_error();
  EXPECT_NE(e.find("after kernel one_past"), std::string::npos) << e;
  EXPECT_NE(e.find("4 byte(s) past its end were written"), std::string::npos) << e;
}

TEST_F(Planted, ASynchronizeDuringCapture) {
  void* s = stream();
  d().check(d().stream_begin_capture(s, kCudaCaptureThreadLocal), "cuStreamBeginCapture");
  d().check(d().launch_host_func(
                s, [](void*) {}, nullptr),
            "cuLaunchHostFunc");
  EXPECT_EQ(d().stream_synchronize(s), kCudaErrorCaptureUnsupported);
  std::vector<char> host(16);
  EXPECT_EQ(d().memcpy_dtoh(host.data(), 0, 0), kCudaErrorCaptureUnsupported) << "a synchronous copy too";
  void* graph = nullptr;
  const int st = d().stream_end_capture(s, &graph);
  EXPECT_EQ(st, kCudaErrorCaptureInvalidated);
  EXPECT_NE(d().describe(st).find("invalidated by cuStreamSynchronize"), std::string::npos) << d().describe(st);
  d().check(d().stream_destroy(s), "cuStreamDestroy");
}

TEST_F(Planted, ReadingSharedMemoryNoThreadWrote) {
  auto m = module(R"(
extern "C" __global__ void uninitialized(float* out) {
  __shared__ float s[32];
  if (threadIdx.x > 0) s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[0];
}
)",
                  "uninitialized.cu");
  std::uint64_t out = alloc(32 * 4);
  void* params[] = {&out};
  m->launch(m->function("uninitialized"), {.block_x = 32}, nullptr, params);
  const std::string e = sync_error();
  EXPECT_NE(e.find("kernel 'uninitialized'"), std::string::npos) << e;
  EXPECT_NE(e.find("reads 's' at byte 0, which no thread of the block has written"), std::string::npos) << e;
}

}  // namespace
}  // namespace trainrt::detail
