// Device probing on a machine with a CUDA device. Labelled "gpu": without a device these
// tests report themselves skipped, with the reason.
#include <cmath>

#include "runtime/device.h"
#include "test_util.h"

namespace trainrt {
namespace {

TEST(DeviceGpu, CompileForCudaMakesAProgramOnTheDevice) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << detail::probe_cuda().reason;
  Graph g;
  auto x = g.input("x", {4, 3});
  auto w = g.parameter("w", {3, 2}, init::normal());
  auto loss = mean(matmul(x, w));
  Program p = compile(g, loss, optim::SGD{}, {.device = Device::cuda(0)});
  const float l = p.step({{"x", Tensor::full({4, 3}, 1.0, f32)}}).get();
  EXPECT_TRUE(std::isfinite(l));
  EXPECT_EQ(p.step_count(), 1);
  test::expect_error([&] { compile(g, loss, optim::SGD{}, {.device = Device::cuda(cuda_device_count())}); },
                     ErrorKind::InvalidArgument, {"CUDA device(s), numbered from 0"});
}

}  // namespace
}  // namespace trainrt
