// The CUDA backend's device layer where no device can be used: "no GPU" is an ordinary
// condition with a clear message (DESIGN decision 11). On a machine with a device these cases
// skip; runtime/cuda on a real device is tested by cuda_runtime_gpu_test (label "gpu").
#include "runtime/cuda/cublaslt.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/device.h"
#include "test_util.h"

namespace trainrt::detail {
namespace {

TEST(CudaRuntimeWithoutDevice, OpeningADeviceSaysWhyThereIsNone) {
  if (probe_cuda().device_count > 0) GTEST_SKIP() << "a CUDA device exists; cuda_runtime_gpu_test covers it";
  const std::string reason = probe_cuda().reason;
  ASSERT_FALSE(reason.empty());
  test::expect_error([] { CudaDevice device(0); }, ErrorKind::Unsupported, {"no usable CUDA device", reason});
}

// cuBLASLt loads without a device (the toolkit's library is here); only a handle needs one.
TEST(CublasLtLoading, TheToolkitsLibraryLoadsAndSaysItsVersion) {
  const CublasLt* lib = nullptr;
  try {
    lib = &CublasLt::get();
  } catch (const Error& e) {
    GTEST_SKIP() << "no cuBLASLt on this machine: " << e.what();
  }
  EXPECT_GE(lib->version(), 120000u) << lib->path();
  EXPECT_NE(lib->describe(1).find("CUBLAS_STATUS_NOT_INITIALIZED"), std::string::npos) << lib->describe(1);
}

TEST(CublasLtLoading, AMissingFileOrAnotherLibraryIsAClearError) {
  test::expect_error([] { CublasLt::open("/nonexistent/libcublasLt.so.13"); }, ErrorKind::NotFound,
                     {"cuBLASLt", "/nonexistent/libcublasLt.so.13"});
  test::expect_error([] { CublasLt::open("libz.so.1"); }, ErrorKind::Unsupported,
                     {"not a usable cuBLASLt", "cublasLtMatmul"});
}

TEST(CublasLtLoading, TheSearchOrderStartsWithTheEnvironment) {
  setenv("TRAINRT_CUBLASLT", "/opt/x/libcublasLt.so", 1);
  const std::vector<std::string> order = CublasLt::search_order();
  unsetenv("TRAINRT_CUBLASLT");
  ASSERT_GE(order.size(), 3u);
  EXPECT_EQ(order[0], "/opt/x/libcublasLt.so");
  EXPECT_EQ(order[1], "libcublasLt.so.13");
}

}  // namespace
}  // namespace trainrt::detail
