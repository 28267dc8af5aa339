// The CUDA backend on the emulated device only (label cuda_emulated): what needs the
// emulator's settings — a small device memory — or a fresh process with a chosen kernel cache.
// Registered with TRAINRT_CUDA_EMULATED_MEMORY=64M (tests/CMakeLists.txt).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "compile/cuda_build.h"
#include "test_util.h"

namespace trainrt {
namespace {

/// x[rows, 64] -> linear(64, width) -> relu -> sum: a training step's matmuls, fused groups
/// and reductions.
struct Model {
  Graph g;
  Value loss;
  Model(std::int64_t rows, std::int64_t width) {
    const Value x = g.input("x", {rows, 64});
    nn::Linear fc(g, "fc", 64, width);
    loss = mean(relu(fc(x)));
  }
};

TEST(CudaBackendEmulated, OutOfDeviceMemoryAtCompileNamesWhatWasAllocated) {
  // 64 MiB of device memory: a 96 MiB weight does not fit.
  Model big(4, std::int64_t{384} * 1024);
  try {
    (void)compile(big.g, big.loss, optim::SGD{}, {.device = Device::cuda()});
    FAIL() << "a 96 MiB weight fitted 64 MiB of device memory";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::Runtime) << what;
    EXPECT_NE(what.find("variable 'fc.weight'"), std::string::npos) << what;
    EXPECT_NE(what.find("out of memory"), std::string::npos) << what;
  }
  // A feed too large for the device: the staging buffer's allocation is named.
  Model wide(std::int64_t{300} * 1024, 4);
  try {
    (void)compile(wide.g, wide.loss, optim::SGD{}, {.device = Device::cuda()});
    FAIL() << "a 75 MiB feed fitted 64 MiB of device memory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
  }
  // What the failed compiles held went back: a small model still trains.
  Model small(8, 16);
  Program p = compile(small.g, small.loss, optim::SGD{.lr = 0.1}, {.device = Device::cuda()});
  std::mt19937 rng(1);
  const Feeds f{{"x", test::random_tensor({8, 64}, f32, rng)}};
  const float first = p.step(f).get();
  float last = first;
  for (int i = 0; i < 5; ++i) last = p.step(f).get();
  EXPECT_LT(last, first);
}

/// In the child process of the test below: compiles and steps the model, then prints the
/// process's NVRTC and host-compiler counts.
void child_compiles_and_reports() {
  Model m(8, 32);
  Program p = compile(m.g, m.loss, optim::SGD{}, {.device = Device::cuda()});
  std::mt19937 rng(2);
  (void)p.step({{"x", test::random_tensor({8, 64}, f32, rng)}}).get();
  const detail::CudaBuildStats s = detail::cuda_build_stats();
  std::printf("\nbuild-stats nvrtc=%lld host=%lld\n", static_cast<long long>(s.nvrtc_compiles),
              static_cast<long long>(s.host_compiles));
}

std::string run_child(const std::string& self, const std::filesystem::path& cache) {
  const std::string command = "TRAINRT_TEST_CHILD=1 TRAINRT_CACHE_DIR='" + cache.string() + "' '" + self +
                              "' --gtest_filter=CudaBackendEmulated.WarmCacheMakesNoCompilerCallsInASecondProcess 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string out;
  std::array<char, 512> buffer{};
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) out += buffer.data();
  pclose(pipe);
  return out;
}

std::string self_path() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

TEST(CudaBackendEmulated, WarmCacheMakesNoCompilerCallsInASecondProcess) {
  if (std::getenv("TRAINRT_TEST_CHILD") != nullptr) return child_compiles_and_reports();
  const test::TempDir dir;
  const std::filesystem::path cache = std::filesystem::path(dir.path()) / "cache";
  const std::string cold = run_child(self_path(), cache);
  const std::string warm = run_child(self_path(), cache);
  ASSERT_NE(cold.find("[  PASSED  ] 1 test"), std::string::npos) << cold;
  ASSERT_NE(warm.find("[  PASSED  ] 1 test"), std::string::npos) << warm;
  EXPECT_EQ(cold.find("build-stats nvrtc=0 "), std::string::npos) << "a cold cache compiles: " << cold;
  EXPECT_NE(warm.find("build-stats nvrtc=0 host=0"), std::string::npos) << "a warm cache compiles nothing: " << warm;
}

}  // namespace
}  // namespace trainrt
