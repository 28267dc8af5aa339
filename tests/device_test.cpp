// Device probing without a GPU (DESIGN decision 11: CUDA is loaded, not linked): a CPU
// program never needs the CUDA driver, and asking for a missing device says why.
#include "runtime/device.h"
#include "test_util.h"

namespace trainrt {
namespace {

TEST(Device, CpuProgramsNeedNoCuda) {
  // Runs everywhere: the probe answers without throwing, with a reason when there is none.
  const auto& probe = detail::probe_cuda();
  EXPECT_GE(probe.device_count, 0);
  if (probe.device_count == 0) {
    EXPECT_FALSE(probe.reason.empty());
  }
  EXPECT_EQ(cuda_device_count(), probe.device_count);
}

TEST(Device, CompileForCudaWithoutDeviceSaysWhy) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  Graph g;
  auto x = g.input("x", {4, 3});
  auto loss = mean(x * 2.0);
  test::expect_error([&] { compile(g, loss, optim::None{}, {.device = Device::cuda(0)}); }, ErrorKind::Unsupported,
                     {"Device::cuda(0)", "no CUDA device is usable"});
}

}  // namespace
}  // namespace trainrt
