// The NCCL communicator over the emulated device's NCCL with several ranks: one thread per
// rank, each on its own emulated device (this binary runs with TRAINRT_CUDA_DEVICE=emulated:3,
// label cuda_emulated), bootstrapped by in-process host communicators. The collectives deliver
// what every rank contributed, and ranks that disagree or a rank that never comes make every
// other rank fail within its timeout with an Error naming the collective.
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "dist/nccl/nccl_communicator.h"
#include "runtime/cuda/driver.h"
#include "runtime/cuda/emulated/config.h"
#include "test_util.h"
#include "trainrt/dist_nccl.hpp"

namespace trainrt {
namespace {

using detail::CudaDriver;
using std::chrono::milliseconds;

/// Runs body(rank, communicator) on `size` threads, one rank each; returns each rank's error
/// text ("" when it succeeded).
std::vector<std::string> on_ranks(int size, milliseconds timeout,
                                  const std::function<void(int, dist::Communicator&)>& body) {
  auto hosts = dist::local_communicators(size, std::chrono::seconds(30));
  std::vector<std::string> errors(static_cast<std::size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      try {
        auto comm = dist::nccl_communicator(*hosts[static_cast<std::size_t>(r)], r, timeout);
        body(r, *comm);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  return errors;
}

/// Device memory of the calling rank's device holding `values`; freed by the caller.
struct Buffer {
  detail::CuDevicePtr ptr = 0;
  void* ctx = nullptr;
  std::size_t bytes = 0;
  Buffer(const dist::Communicator& comm, std::size_t n) : bytes(n * sizeof(float)) {
    ctx = dynamic_cast<const detail::NcclCommunicator&>(comm).context();
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx);
    d.check(d.mem_alloc(&ptr, bytes), "cuMemAlloc");
  }
  ~Buffer() {
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx);
    (void)d.mem_free(ptr);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* get() const { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ptr)); }  // NOLINT
  void put(const std::vector<float>& v) const {
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx);
    d.check(d.memcpy_htod(ptr, v.data(), v.size() * sizeof(float)), "cuMemcpyHtoD");
  }
  std::vector<float> take(std::size_t n) const {
    std::vector<float> v(n);
    const CudaDriver& d = CudaDriver::get();
    const detail::ScopedContext scope(d, ctx);
    d.check(d.memcpy_dtoh(v.data(), ptr, n * sizeof(float)), "cuMemcpyDtoH");
    return v;
  }
};

class EmulatedNccl : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(detail::emulator_config().requested) << "run with TRAINRT_CUDA_DEVICE=emulated:3 (ctest does)";
    ASSERT_GE(detail::emulator_config().devices, 3);
  }
};

TEST_F(EmulatedNccl, ThreeRanksReduceScatterAndGather) {
  constexpr int kSize = 3;
  constexpr std::size_t kN = 1000;
  const auto errors = on_ranks(kSize, std::chrono::seconds(30), [&](int r, dist::Communicator& comm) {
    EXPECT_EQ(comm.rank(), r);
    EXPECT_EQ(comm.size(), kSize);
    Buffer a(comm, kN), scattered(comm, kN / 2), gathered(comm, kSize * kN);
    std::vector<float> mine(kN);
    for (std::size_t i = 0; i < kN; ++i) mine[i] = static_cast<float>(r + 1) * static_cast<float>(i % 7);
    a.put(mine);
    comm.all_reduce(a.get(), kN, DType::f32, dist::ReduceOp::sum);
    const std::vector<float> sum = a.take(kN);
    for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(sum[i], 6.0f * static_cast<float>(i % 7)) << "rank " << r;
    // reduce_scatter of the sums: rank r gets elements [r*k, (r+1)*k) of 3 x sum, with k = 333.
    constexpr std::size_t kPart = kN / kSize;
    comm.reduce_scatter(a.get(), scattered.get(), kPart, DType::f32, dist::ReduceOp::sum);
    const std::vector<float> part = scattered.take(kPart);
    for (std::size_t i = 0; i < kPart; ++i)
      ASSERT_EQ(part[i], 3.0f * sum[static_cast<std::size_t>(r) * kPart + i]) << "rank " << r << " at " << i;
    a.put(mine);
    comm.all_gather(a.get(), gathered.get(), kN, DType::f32);
    const std::vector<float> all = gathered.take(kSize * kN);
    for (int q = 0; q < kSize; ++q)
      for (std::size_t i = 0; i < kN; ++i)
        ASSERT_EQ(all[static_cast<std::size_t>(q) * kN + i], static_cast<float>(q + 1) * static_cast<float>(i % 7));
    comm.barrier();
  });
  for (const std::string& e : errors) EXPECT_EQ(e, "");
}

TEST_F(EmulatedNccl, RanksThatCallDifferentCountsAllFail) {
  const auto errors = on_ranks(2, std::chrono::seconds(30), [&](int r, dist::Communicator& comm) {
    Buffer a(comm, 200);
    a.put(std::vector<float>(200, 1.0f));
    comm.all_reduce(a.get(), r == 0 ? 100 : 200, DType::f32, dist::ReduceOp::sum);
  });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("all_reduce"), std::string::npos) << e;
    EXPECT_NE(e.find("differ"), std::string::npos) << e;
  }
}

TEST_F(EmulatedNccl, ARankThatNeverComesMakesTheOthersTimeOutNamingTheCollective) {
  std::atomic<bool> others_done{false};
  const auto start = std::chrono::steady_clock::now();
  const auto errors = on_ranks(3, std::chrono::seconds(30), [&](int r, dist::Communicator& comm) {
    Buffer a(comm, 64);
    a.put(std::vector<float>(64, 1.0f));
    if (r == 2) {  // stalls: joins, then never calls the collective until the others gave up
      while (!others_done) std::this_thread::sleep_for(milliseconds(5));
      return;
    }
    try {
      comm.all_reduce(a.get(), 64, DType::f32, dist::ReduceOp::sum, milliseconds(500));
    } catch (...) {
      static std::atomic<int> failed{0};
      if (++failed == 2) others_done = true;
      throw;
    }
  });
  EXPECT_EQ(errors[2], "");
  for (int r : {0, 1}) {
    const std::string& e = errors[static_cast<std::size_t>(r)];
    EXPECT_NE(e.find("all_reduce of 64 f32 (sum)"), std::string::npos) << e;
    EXPECT_TRUE(e.find("did not finish within the timeout of 500 ms") != std::string::npos ||
                e.find("aborted the communicator") != std::string::npos)
        << e;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace trainrt
