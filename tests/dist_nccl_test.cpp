// The NCCL communicator on any machine (no GPU needed): finding and checking libnccl, the
// errors of the factory without NCCL, driver or device, the bootstrap protocol when a rank
// cannot set up, and the argument checks of every collective. The tests that run collectives
// on a device are in dist_nccl_gpu_test.cpp (label gpu).
#include <cstdlib>
#include <optional>

#include "dist/nccl/nccl_call.h"
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
using std::chrono::milliseconds;

// Sets an environment variable for a scope and restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

constexpr const char* kMissing = "/nonexistent/trainrt-test/libnccl.so.2";

TEST(NcclLibrary, SearchOrderHonoursTheOverride) {
  {
    const ScopedEnv pin("TRAINRT_NCCL", "/opt/x/libnccl.so.2");
    EXPECT_EQ(detail::NcclLibrary::search_order(), std::vector<std::string>{"/opt/x/libnccl.so.2"});
  }
  const ScopedEnv unpinned("TRAINRT_NCCL", nullptr);
  const ScopedEnv home("CUDA_HOME", "/opt/cuda");
  const auto order = detail::NcclLibrary::search_order();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order.front(), "libnccl.so.2");
  EXPECT_EQ(order.back(), "/opt/cuda/lib64/libnccl.so.2");
}

TEST(NcclLibrary, MissingFileIsNotFoundWithTheLoadersMessage) {
  test::expect_error([] { detail::NcclLibrary::open(kMissing); }, ErrorKind::NotFound,
                     {"could not load NCCL from", kMissing, "No such file"});
}

TEST(NcclLibrary, ALibraryThatIsNotNcclNamesTheMissingEntryPoints) {
  // zlib is a dependency of libtrainrt, so it loads on every machine that runs this test.
  test::expect_error([] { detail::NcclLibrary::open("libz.so.1"); }, ErrorKind::Unsupported,
                     {"is not a usable NCCL", "2.14.0 or newer", "ncclGetUniqueId", "ncclCommInitRankConfig"});
}

TEST(NcclLibrary, VersionStrings) {
  EXPECT_EQ(detail::nccl_version_string(22809), "2.28.9");
  EXPECT_EQ(detail::nccl_version_string(21400), "2.14.0");
  EXPECT_EQ(detail::nccl_version_string(2804), "2.8.4");  // the encoding before 2.9
}

TEST(NcclLibrary, TheInstalledNcclLoadsWithoutADevice) {
  std::unique_ptr<detail::NcclLibrary> lib;
  try {
    lib = detail::NcclLibrary::open("libnccl.so.2");
  } catch (const Error& e) {
    GTEST_SKIP() << "no libnccl.so.2 on the loader's path: " << e.what();
  }
  EXPECT_GE(lib->version(), detail::NcclLibrary::kMinVersion);
  EXPECT_EQ(lib->version_string().rfind("2.", 0), 0u) << lib->version_string();
  EXPECT_NE(lib->path().find("libnccl"), std::string::npos) << lib->path();
  EXPECT_NE(lib->describe(4).find("invalid argument"), std::string::npos) << lib->describe(4);  // ncclInvalidArgument
}

TEST(NcclCommunicatorFactory, ArgumentsAreCheckedBeforeAnythingLoads) {
  const ScopedEnv pin("TRAINRT_NCCL", kMissing);
  test::HostTestCommunicator host;
  test::expect_error([&] { dist::nccl_communicator(host, 0, milliseconds(0)); }, ErrorKind::InvalidArgument,
                     {"nccl_communicator (rank 0 of 1, device 0)", "timeout must be positive"});
  test::expect_error([&] { dist::nccl_communicator(host, -1); }, ErrorKind::InvalidArgument,
                     {"device -1", "ordinal >= 0"});
  test::HostTestCommunicator on_device(0, 1, /*device_memory=*/true);
  test::expect_error([&] { dist::nccl_communicator(on_device, 0); }, ErrorKind::InvalidArgument,
                     {"bootstrap communicator (host-test)", "host memory"});
}

TEST(NcclCommunicatorFactory, MissingNcclIsUnsupportedAndSaysWhere) {
  const ScopedEnv pin("TRAINRT_NCCL", kMissing);
  test::HostTestCommunicator host;
  test::expect_error([&] { dist::nccl_communicator(host, 0); }, ErrorKind::Unsupported,
                     {"nccl_communicator (rank 0 of 1, device 0)", "NCCL could not be loaded", "TRAINRT_NCCL", kMissing,
                      "No such file"});
  EXPECT_EQ(host.broadcasts, 0);
}

TEST(NcclCommunicatorFactory, ARankThatCannotSetUpTellsTheOthersFirst) {
  // Rank 1 of 2 fails locally (no NCCL): it still joins the bootstrap's all_reduce with its
  // failure flag, so rank 0 gives up at once, and it never waits for the unique id.
  const ScopedEnv pin("TRAINRT_NCCL", kMissing);
  test::HostTestCommunicator host(1, 2);
  test::expect_error([&] { dist::nccl_communicator(host, 0); }, ErrorKind::Unsupported,
                     {"rank 1 of 2", "NCCL could not be loaded"});
  EXPECT_EQ(host.sent_i32, std::vector<std::int32_t>{1});
  EXPECT_EQ(host.broadcasts, 0);
}

TEST(NcclCommunicatorFactory, WithoutADeviceTheErrorNamesWhatIsMissing) {
  if (detail::probe_cuda().device_count > 0) GTEST_SKIP() << "a CUDA device is present (see dist_nccl_gpu_test)";
  const ScopedEnv unpinned("TRAINRT_NCCL", nullptr);
  std::string expected = detail::probe_cuda().reason;  // e.g. "libcuda.so.1 could not be loaded (...)"
  try {
    detail::NcclLibrary::get();
  } catch (const Error& e) {
    expected = "NCCL could not be loaded";  // NCCL is looked for first
  }
  test::HostTestCommunicator host;
  test::expect_error([&] { dist::nccl_communicator(host, 0); }, ErrorKind::Unsupported,
                     {"nccl_communicator (rank 0 of 1, device 0)", expected});
  test::expect_error([] { detail::CudaDriver::get(); }, ErrorKind::Unsupported,
                     {"no usable CUDA device", detail::probe_cuda().reason});
}

// --- argument checks of single calls (nccl_call.h) ---

// Host addresses for the checks, which compare addresses and never read through them.
alignas(64) char fake_memory[256];
void* at(std::size_t byte) { return fake_memory + byte; }

TEST(NcclCall, DTypesMapToNccl) {
  // ncclDataType_t values from nccl.h (ABI constants).
  const std::pair<DType, int> cases[] = {{DType::f32, 7},  {DType::f64, 8}, {DType::f16, 6},
                                         {DType::bf16, 9}, {DType::i32, 2}, {DType::i64, 4}};
  for (const auto& [dtype, nccl] : cases) {
    CollectiveCall call{.send = at(0), .recv = at(0), .count = 4, .dtype = dtype};
    EXPECT_EQ(detail::check_call(call, 0, 2, milliseconds(1)), nccl) << name(dtype);
  }
  // ncclSum, ncclMax, ncclMin.
  EXPECT_EQ(detail::nccl_reduce_op(dist::ReduceOp::sum), 0);
  EXPECT_EQ(detail::nccl_reduce_op(dist::ReduceOp::max), 2);
  EXPECT_EQ(detail::nccl_reduce_op(dist::ReduceOp::min), 3);
}

TEST(NcclCall, BoolIsBytesAndHasNoSum) {
  CollectiveCall call{.send = at(0), .recv = at(0), .count = 8, .dtype = DType::boolean, .op = dist::ReduceOp::max};
  EXPECT_EQ(detail::check_call(call, 0, 2, milliseconds(1)), 1);  // ncclUint8
  call.op = dist::ReduceOp::min;
  EXPECT_EQ(detail::check_call(call, 0, 2, milliseconds(1)), 1);
  call.op = dist::ReduceOp::sum;
  test::expect_error([&] { detail::check_call(call, 0, 2, milliseconds(1)); }, ErrorKind::InvalidArgument,
                     {"all_reduce of 8 bool (sum) on rank 0 of 2", "sum of bool", "use max"});
  // Copies of bool are fine with any op field.
  const CollectiveCall gather{
      .kind = CollectiveKind::AllGather, .send = at(0), .recv = at(64), .count = 8, .dtype = DType::boolean};
  EXPECT_EQ(detail::check_call(gather, 0, 2, milliseconds(1)), 1);
}

TEST(NcclCall, BadArgumentsNameTheCallAndTheArgument) {
  const CollectiveCall ok{.send = at(0), .recv = at(0), .count = 4};
  test::expect_error([&] { detail::check_call(ok, 1, 2, milliseconds(0)); }, ErrorKind::InvalidArgument,
                     {"all_reduce of 4 f32 (sum) on rank 1 of 2", "timeout must be positive, got 0 ms"});
  CollectiveCall null_send = ok;
  null_send.send = nullptr;
  test::expect_error([&] { detail::check_call(null_send, 0, 2, milliseconds(1)); }, ErrorKind::InvalidArgument,
                     {"send buffer is null"});
  CollectiveCall null_recv = ok;
  null_recv.recv = nullptr;
  test::expect_error([&] { detail::check_call(null_recv, 0, 2, milliseconds(1)); }, ErrorKind::InvalidArgument,
                     {"receive buffer is null"});
  const CollectiveCall empty{.count = 0};  // nothing to send: null buffers are fine
  EXPECT_NO_THROW(detail::check_call(empty, 0, 2, milliseconds(1)));

  const CollectiveCall bcast{
      .kind = CollectiveKind::Broadcast, .send = at(0), .recv = at(0), .count = 4, .dtype = DType::i64, .root = 2};
  test::expect_error([&] { detail::check_call(bcast, 0, 2, milliseconds(1)); }, ErrorKind::InvalidArgument,
                     {"broadcast of 4 i64 from rank 2", "root 2 is not a rank (0 to 1)"});
  CollectiveCall negative_root = bcast;
  negative_root.root = -1;
  EXPECT_THROW(detail::check_call(negative_root, 0, 2, milliseconds(1)), Error);

  const CollectiveCall huge{.kind = CollectiveKind::AllGather,
                            .send = at(0),
                            .recv = at(64),
                            .count = std::size_t{1} << 62,
                            .dtype = DType::f64};
  test::expect_error([&] { detail::check_call(huge, 0, 4, milliseconds(1)); }, ErrorKind::InvalidArgument,
                     {"all_gather of 4 x", "overflows"});
}

TEST(NcclCall, OnlyNcclsInPlaceLayoutsMayOverlap) {
  // f32 blocks of 4 elements = 16 bytes; rank 1 of 3.
  const milliseconds t(1);
  // all_reduce: the same pointer, or disjoint.
  EXPECT_NO_THROW(detail::check_call({.send = at(0), .recv = at(0), .count = 4}, 1, 3, t));
  EXPECT_NO_THROW(detail::check_call({.send = at(0), .recv = at(16), .count = 4}, 1, 3, t));
  test::expect_error([&] { detail::check_call({.send = at(0), .recv = at(8), .count = 4}, 1, 3, t); },
                     ErrorKind::InvalidArgument, {"overlap", "send and recv must be the same pointer"});
  // reduce_scatter: send holds 3 blocks; in place, recv is block `rank` of send.
  const auto scatter = [&](std::size_t recv) {
    return detail::check_call({.kind = CollectiveKind::ReduceScatter, .send = at(0), .recv = at(recv), .count = 4}, 1,
                              3, t);
  };
  EXPECT_NO_THROW(scatter(16));
  EXPECT_NO_THROW(scatter(48));
  test::expect_error([&] { scatter(0); }, ErrorKind::InvalidArgument,
                     {"reduce_scatter of 3 x 4 f32 (sum) on rank 1 of 3", "recv must be send + rank * count"});
  // all_gather: recv holds 3 blocks; in place, send is block `rank` of recv.
  const auto gather = [&](std::size_t send) {
    return detail::check_call({.kind = CollectiveKind::AllGather, .send = at(send), .recv = at(64), .count = 4}, 1, 3,
                              t);
  };
  EXPECT_NO_THROW(gather(80));
  EXPECT_NO_THROW(gather(0));
  test::expect_error([&] { gather(64); }, ErrorKind::InvalidArgument, {"send must be recv + rank * count"});
}

TEST(NcclCall, Descriptions) {
  EXPECT_EQ(detail::describe({.count = 1024}, 2), "all_reduce of 1024 f32 (sum)");
  EXPECT_EQ(
      detail::describe(
          {.kind = CollectiveKind::ReduceScatter, .count = 512, .dtype = DType::f16, .op = dist::ReduceOp::max}, 2),
      "reduce_scatter of 2 x 512 f16 (max)");
  EXPECT_EQ(detail::describe({.kind = CollectiveKind::AllGather, .count = 3, .dtype = DType::bf16}, 4),
            "all_gather of 4 x 3 bf16");
  EXPECT_EQ(detail::describe({.kind = CollectiveKind::Broadcast, .count = 7, .dtype = DType::i64, .root = 1}, 2),
            "broadcast of 7 i64 from rank 1");
}

}  // namespace
}  // namespace trainrt
