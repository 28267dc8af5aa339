// Device probing on a machine with a CUDA device. Labelled "gpu": without a device these
// tests report themselves skipped, with the reason.
#include "runtime/device.h"
#include "test_util.h"

namespace trainrt {
namespace {

TEST(DeviceGpu, CompileForCudaReportsTheBackendState) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << detail::probe_cuda().reason;
  Graph g;
  auto x = g.input("x", {4, 3});
  auto w = g.parameter("w", {3, 2}, init::normal());
  auto loss = mean(matmul(x, w));
  test::expect_error([&] { compile(g, loss, optim::SGD{}, {.device = Device::cuda(0)}); }, ErrorKind::Unsupported,
                     {"CUDA device(s) found", "no CUDA execution backend yet"});
}

}  // namespace
}  // namespace trainrt
