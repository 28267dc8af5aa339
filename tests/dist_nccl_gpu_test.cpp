// The NCCL communicator on a CUDA device, world size 1 (labelled gpu; without a device or NCCL
// every case reports itself skipped, with the reason). A single-rank host communicator
// bootstraps it; buffers are device memory made with the driver, filled from the host and read
// back. Out-of-place calls start from a receive buffer of 0xFF bytes, so that a call that did
// nothing cannot pass.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "dist/nccl/nccl_communicator.h"
#include "dist/nccl/nccl_library.h"
#include "host_test_communicator.h"
#include "runtime/cuda/driver.h"
#include "runtime/device.h"
#include "test_util.h"
#include "trainrt/dist_nccl.hpp"

namespace trainrt {
namespace {

using detail::CollectiveCall;
using detail::CollectiveKind;
using detail::CudaDriver;
using detail::NcclCommunicator;
using std::chrono::milliseconds;
using Bytes = std::vector<unsigned char>;

// Why the device tests cannot run here; empty when they can.
std::string missing_gpu_or_nccl() {
  if (detail::probe_cuda().device_count == 0) return "no CUDA device: " + detail::probe_cuda().reason;
  try {
    detail::NcclLibrary::get();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

#define REQUIRE_GPU_AND_NCCL() \
  if (const std::string why = missing_gpu_or_nccl(); !why.empty()) GTEST_SKIP() << why

std::shared_ptr<NcclCommunicator> single_rank(test::HostTestCommunicator& host, void* stream = nullptr) {
  return NcclCommunicator::create(host, 0, stream, std::chrono::seconds(60));
}

// Device memory in the communicator's context, 0xFF-filled, freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer(const NcclCommunicator& comm, std::size_t bytes) : ctx_(comm.context()), bytes_(bytes) {
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx_);
    d.check(d.mem_alloc(&ptr_, bytes), "cuMemAlloc");
    d.check(d.memset_d8(ptr_, 0xFF, bytes), "cuMemsetD8");
  }
  ~DeviceBuffer() {
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx_);
    (void)d.mem_free(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ptr_)); }
  void upload(const Bytes& bytes) const {
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx_);
    d.check(d.memcpy_htod(ptr_, bytes.data(), bytes.size()), "cuMemcpyHtoD");
  }
  // Synchronous with the legacy stream only: the communicator's streams are non-blocking, so
  // every test has waited for the collective before it reads.
  Bytes download() const {
    Bytes out(bytes_);
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx_);
    d.check(d.memcpy_dtoh(out.data(), ptr_, bytes_), "cuMemcpyDtoH");
    return out;
  }

 private:
  void* ctx_;
  std::size_t bytes_;
  detail::CuDevicePtr ptr_ = 0;
};

template <class T>
void put(Bytes& out, std::size_t i, T value) {
  std::memcpy(out.data() + i * sizeof(T), &value, sizeof(T));
}

// n distinct values of `dtype`, none of them the 0xFF fill.
Bytes pattern(DType dtype, std::size_t n) {
  Bytes out(n * size_of(dtype));
  for (std::size_t i = 0; i < n; ++i) {
    const auto f = static_cast<float>(i % 997);
    switch (dtype) {
      case DType::f32: put(out, i, f * 0.5f - 3.0f); break;
      case DType::f64: put(out, i, static_cast<double>(i) * 0.125); break;
      case DType::f16: put(out, i, to_half(f * 0.25f).bits); break;
      case DType::bf16: put(out, i, to_bfloat16(f - 7.0f).bits); break;
      case DType::i32: put(out, i, static_cast<std::int32_t>(i) - 5); break;
      case DType::i64: put(out, i, (std::int64_t{1} << 40) + static_cast<std::int64_t>(i)); break;
      case DType::boolean: put(out, i, static_cast<unsigned char>(i % 3 == 0)); break;
    }
  }
  return out;
}

TEST(NcclGpu, JoinsAsTheOnlyRank) {
  REQUIRE_GPU_AND_NCCL();
  test::HostTestCommunicator host;
  const std::shared_ptr<dist::Communicator> comm = dist::nccl_communicator(host, 0, milliseconds(30000));
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_TRUE(comm->device_memory());
  EXPECT_EQ(comm->default_timeout(), milliseconds(30000));
  comm->barrier();
}

class NcclGpuDTypes : public ::testing::TestWithParam<DType> {};

TEST_P(NcclGpuDTypes, EveryCollectiveDeliversTheValues) {
  REQUIRE_GPU_AND_NCCL();
  const DType dtype = GetParam();
  const std::size_t n = 4099;  // not a multiple of any vector width
  const Bytes values = pattern(dtype, n);
  test::HostTestCommunicator host;
  const auto comm = single_rank(host);
  const std::size_t bytes = values.size();

  // The interface's in-place calls: one rank's sum, max and broadcast are its own values.
  DeviceBuffer data(*comm, bytes);
  data.upload(values);
  comm->all_reduce(data.get(), n, dtype, dist::ReduceOp::sum);
  EXPECT_EQ(data.download(), values) << "all_reduce sum";
  comm->all_reduce(data.get(), n, dtype, dist::ReduceOp::max);
  comm->all_reduce(data.get(), n, dtype, dist::ReduceOp::min);
  EXPECT_EQ(data.download(), values) << "all_reduce max/min";
  comm->broadcast(data.get(), n, dtype, 0);
  EXPECT_EQ(data.download(), values) << "broadcast";

  // Out of place: the receive buffer starts as 0xFF bytes.
  {
    DeviceBuffer recv(*comm, bytes);
    comm->reduce_scatter(data.get(), recv.get(), n, dtype, dist::ReduceOp::sum, milliseconds(30000));
    EXPECT_EQ(recv.download(), values) << "reduce_scatter";
  }
  {
    DeviceBuffer recv(*comm, bytes);
    comm->all_gather(data.get(), recv.get(), n, dtype, milliseconds(30000));
    EXPECT_EQ(recv.download(), values) << "all_gather";
  }
  // The non-blocking calls: enqueue on the communicator's stream, then wait.
  for (const CollectiveKind kind : {CollectiveKind::AllReduce, CollectiveKind::Broadcast}) {
    DeviceBuffer recv(*comm, bytes);
    comm->enqueue({.kind = kind, .send = data.get(), .recv = recv.get(), .count = n, .dtype = dtype}, nullptr,
                  milliseconds(30000));
    comm->wait(nullptr, milliseconds(30000));
    EXPECT_EQ(recv.download(), values) << detail::name(kind) << " enqueued";
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, NcclGpuDTypes,
                         ::testing::Values(DType::f32, DType::f16, DType::bf16, DType::i64, DType::f64, DType::i32),
                         [](const auto& param_info) { return std::string(name(param_info.param)); });

TEST(NcclGpu, BoolReducesWithMaxAndRejectsSum) {
  REQUIRE_GPU_AND_NCCL();
  test::HostTestCommunicator host;
  const auto comm = single_rank(host);
  const Bytes values = pattern(DType::boolean, 300);
  DeviceBuffer send(*comm, values.size()), recv(*comm, values.size());
  send.upload(values);
  comm->enqueue(
      {.send = send.get(), .recv = recv.get(), .count = 300, .dtype = DType::boolean, .op = dist::ReduceOp::max},
      nullptr, milliseconds(30000));
  comm->wait(nullptr, milliseconds(30000));
  EXPECT_EQ(recv.download(), values);
  test::expect_error([&] { comm->all_reduce(send.get(), 300, DType::boolean, dist::ReduceOp::sum); },
                     ErrorKind::InvalidArgument, {"sum of bool"});
  EXPECT_TRUE(comm->broken_reason().empty());  // an argument error does not break it
  comm->barrier();
}

TEST(NcclGpu, CallerStreams) {
  REQUIRE_GPU_AND_NCCL();
  const CudaDriver& d = CudaDriver::get();
  test::HostTestCommunicator host;
  const auto own = single_rank(host);
  void* stream = nullptr;
  {
    const detail::ScopedContext scope(d, own->context());
    d.check(d.stream_create(&stream, detail::kCudaStreamNonBlocking), "cuStreamCreate");
  }
  const Bytes values = pattern(DType::f32, 1000);
  {
    // enqueue() on a stream of the caller's, and wait() for that stream.
    DeviceBuffer send(*own, values.size()), recv(*own, values.size());
    send.upload(values);
    own->enqueue({.kind = CollectiveKind::AllGather, .send = send.get(), .recv = recv.get(), .count = 1000}, stream,
                 milliseconds(30000));
    own->wait(stream, milliseconds(30000));
    EXPECT_EQ(recv.download(), values);
  }
  {
    // A communicator issuing everything on the caller's stream.
    test::HostTestCommunicator host2;
    const auto on_stream = single_rank(host2, stream);
    EXPECT_EQ(on_stream->stream(), stream);
    DeviceBuffer send(*on_stream, values.size()), recv(*on_stream, values.size());
    send.upload(values);
    on_stream->reduce_scatter(send.get(), recv.get(), 1000, DType::f32, dist::ReduceOp::sum, milliseconds(30000));
    EXPECT_EQ(recv.download(), values);
  }
  const detail::ScopedContext scope(d, own->context());
  d.check(d.stream_destroy(stream), "cuStreamDestroy");
}

TEST(NcclGpu, GroupedAllReduce) {
  REQUIRE_GPU_AND_NCCL();
  test::HostTestCommunicator host;
  const auto comm = single_rank(host);
  const Bytes a = pattern(DType::f32, 513), b = pattern(DType::bf16, 77), c = pattern(DType::i64, 9);
  DeviceBuffer da(*comm, a.size()), db(*comm, b.size()), dc(*comm, c.size());
  da.upload(a);
  db.upload(b);
  dc.upload(c);
  const detail::AllReduceItem items[] = {
      {da.get(), 513, DType::f32}, {db.get(), 77, DType::bf16}, {nullptr, 0, DType::f16}, {dc.get(), 9, DType::i64}};
  comm->enqueue_all_reduce_group(items, dist::ReduceOp::sum, nullptr, milliseconds(30000));
  comm->wait(nullptr, milliseconds(30000));
  EXPECT_EQ(da.download(), a);
  EXPECT_EQ(db.download(), b);
  EXPECT_EQ(dc.download(), c);
  const detail::AllReduceItem bad[] = {{da.get(), 513, DType::f32}, {db.get(), 77, DType::boolean}};
  test::expect_error([&] { comm->enqueue_all_reduce_group(bad, dist::ReduceOp::sum, nullptr, milliseconds(1000)); },
                     ErrorKind::InvalidArgument, {"item 1 of 2", "sum of bool"});
}

TEST(NcclGpu, HostMemoryAndOtherBadArgumentsAreRejected) {
  REQUIRE_GPU_AND_NCCL();
  test::HostTestCommunicator host;
  const auto comm = single_rank(host);
  std::vector<float> on_host(64, 1.0f);
  test::expect_error([&] { comm->all_reduce(on_host.data(), 64, DType::f32); }, ErrorKind::InvalidArgument,
                     {"all_reduce of 64 f32 (sum) on rank 0", "not memory the CUDA driver knows"});
  DeviceBuffer data(*comm, 64 * sizeof(float));
  test::expect_error([&] { comm->broadcast(data.get(), 64, DType::f32, 1); }, ErrorKind::InvalidArgument,
                     {"root 1 is not a rank"});
  test::expect_error([&] { comm->wait(nullptr, milliseconds(0)); }, ErrorKind::InvalidArgument,
                     {"timeout must be positive"});
  EXPECT_TRUE(comm->broken_reason().empty());
  comm->barrier();
  comm->all_reduce(data.get(), 0, DType::f32);  // nothing to do, nothing checked on the device
}

TEST(NcclGpu, ADeviceThatDoesNotExist) {
  REQUIRE_GPU_AND_NCCL();
  test::HostTestCommunicator host;
  const int count = detail::probe_cuda().device_count;
  test::expect_error(
      [&] { dist::nccl_communicator(host, count); }, ErrorKind::InvalidArgument,
      {"device " + std::to_string(count) + " does not exist", "reports " + std::to_string(count) + " device(s)"});
}

TEST(NcclGpu, AStreamThatNeverFinishesTimesOutAndBreaksTheCommunicator) {
  REQUIRE_GPU_AND_NCCL();
  // A host function that waits for a flag blocks the stream: a stand-in for a peer that never
  // arrives, without a collective stuck behind it (the same on a GPU and the emulated device).
  static std::atomic<bool> release{false};
  release = false;
  const CudaDriver& d = CudaDriver::get();
  test::HostTestCommunicator host;
  const auto comm = single_rank(host);
  void* stream = nullptr;
  {
    const detail::ScopedContext scope(d, comm->context());
    d.check(d.stream_create(&stream, detail::kCudaStreamNonBlocking), "cuStreamCreate");
    d.check(d.launch_host_func(
                stream,
                [](void*) {
                  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
                  while (!release && std::chrono::steady_clock::now() < deadline)
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                },
                nullptr),
            "cuLaunchHostFunc");
  }
  const auto start = std::chrono::steady_clock::now();
  test::expect_error([&] { comm->wait(stream, milliseconds(300)); }, ErrorKind::Runtime,
                     {"rank 0 of 1 (device 0)", "did not finish within the timeout of 300 ms", "aborted"});
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300));
  EXPECT_FALSE(comm->broken_reason().empty());
  test::expect_error([&] { comm->barrier(); }, ErrorKind::Runtime, {"is broken by an earlier failure"});

  // Release the stream and clean up.
  release = true;
  const detail::ScopedContext scope(d, comm->context());
  d.check(d.stream_synchronize(stream), "cuStreamSynchronize");
  d.check(d.stream_destroy(stream), "cuStreamDestroy");
}

}  // namespace
}  // namespace trainrt
