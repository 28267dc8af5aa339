// The CUDA backend's device layer where no device can be used: "no GPU" is an ordinary
// condition with a clear message (DESIGN decision 11). On a machine with a device these cases
// skip; runtime/cuda on a real device is tested by cuda_runtime_gpu_test (label "gpu").
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

}  // namespace
}  // namespace trainrt::detail
