// The CUDA backend (exec/cuda_backend.h) against the CPU backend: the same graph compiled for
// Device::cuda() and Device::cpu() gives the same values, within float rounding. Runs on a real
// device (label gpu) and on the emulated one (label cuda_emulated, with its checks on);
// without a device it is skipped, with the reason.
#include <cmath>
#include <random>

#include "runtime/device.h"
#include "test_util.h"

namespace trainrt {
namespace {

std::string missing_device() {
  return detail::probe_cuda().device_count > 0 ? std::string() : "no CUDA device: " + detail::probe_cuda().reason;
}

/// Largest |a - b| / (1 + |b|) over the elements (both converted to f32).
double max_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const Tensor x = a.to(f32), y = b.to(f32);
  double worst = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double u = x.data<float>()[i], v = y.data<float>()[i];
    worst = std::max(worst, std::abs(u - v) / (1 + std::abs(v)));
  }
  return worst;
}

/// x[12, 20] -> linear(20, 16) -> relu -> linear(16, 5): logits, their mean over the batch and
/// their max per row (reductions over either axis).
struct Mlp {
  Graph g;
  Value x, logits, batch_mean, row_max, loss;
  explicit Mlp(DType dtype = f32) {
    x = g.input("x", {12, 20}, dtype);
    if (dtype == f32) {
      nn::Linear fc1(g, "fc1", 20, 16), fc2(g, "fc2", 16, 5);
      logits = fc2(relu(fc1(x)));
    } else {  // 16-bit parameters, as a model converted to bf16 or f16 has them
      const Value w1 = g.parameter("w1", {20, 16}, init::normal(0, 0.2), dtype);
      const Value b1 = g.parameter("b1", {16}, init::uniform(-0.1, 0.1), dtype);
      const Value w2 = g.parameter("w2", {16, 5}, init::normal(0, 0.2), dtype);
      logits = matmul(relu(matmul(x, w1) + b1), w2);
    }
    batch_mean = mean(logits, {0});
    row_max = max(logits, {1});
    loss = mean(row_max);
  }
};

Feeds mlp_feeds(unsigned seed, DType dtype = f32) {
  std::mt19937 rng(seed);
  return {{"x", test::random_tensor({12, 20}, dtype, rng)}};
}

TEST(CudaBackendGpu, EvaluatesAnMlpAsTheCpuDoes) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Mlp m;
  Program cpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cpu(), .seed = 5});
  Program gpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cuda(), .seed = 5});
  for (const std::string& name : cpu.variables(VariableKind::parameter))
    EXPECT_EQ(max_error(gpu.get(name), cpu.get(name)), 0.0) << name << ": the same initial values";
  for (unsigned seed : {1u, 2u}) {
    const Feeds f = mlp_feeds(seed);
    const auto want = cpu.evaluate(f, {m.logits, m.batch_mean, m.row_max});
    const auto got = gpu.evaluate(f, {m.logits, m.batch_mean, m.row_max});
    ASSERT_EQ(got.size(), 3u);
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_LT(max_error(got[i], want[i]), 1e-5) << "fetch " << i;
  }
}

TEST(CudaBackendGpu, KeepsSixteenBitMathInSixteenBits) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  for (DType dtype : {bf16, f16}) {
    Mlp m(dtype);
    Program cpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cpu(), .seed = 5});
    Program gpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cuda(), .seed = 5});
    const Feeds f = mlp_feeds(3, dtype);
    const auto want = cpu.evaluate(f, {m.logits, m.row_max});
    const auto got = gpu.evaluate(f, {m.logits, m.row_max});
    // The CPU computes elementwise work in f32 and rounds once; the device rounds each op's
    // result to 16 bits: a few units in the last place of bf16 (8 bits) or f16 (11 bits).
    const double bound = dtype == bf16 ? 0.05 : 0.01;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].dtype(), dtype);
      EXPECT_LT(max_error(got[i], want[i]), bound) << name(dtype) << " fetch " << i;
    }
  }
}

/// Linear regression: loss = mean((x W + b - y)^2), the training step's matmuls, reductions,
/// broadcasts and the fused SGD update.
struct Regression {
  Graph g;
  Value x, y, loss;
  Regression() {
    x = g.input("x", {16, 8});
    y = g.input("y", {16, 3});
    nn::Linear fc(g, "fc", 8, 3);
    const Value d = fc(x) - y;
    loss = mean(d * d);
  }
};

TEST(CudaBackendGpu, TrainsAsTheCpuDoes) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Regression r;
  const optim::SGD sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-3};
  Program cpu = compile(r.g, r.loss, sgd, {.device = Device::cpu(), .seed = 9});
  Program gpu = compile(r.g, r.loss, sgd, {.device = Device::cuda(), .seed = 9});
  std::mt19937 rng(4);
  const Feeds f{{"x", test::random_tensor({16, 8}, f32, rng)}, {"y", test::random_tensor({16, 3}, f32, rng)}};
  float first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    const float want = cpu.step(f).get();
    const float got = gpu.step(f).get();
    EXPECT_NEAR(got, want, 1e-5 * (1 + std::abs(want))) << "step " << step;
    if (step == 0) first = got;
    last = got;
  }
  EXPECT_LT(last, first) << "the loss goes down";
  EXPECT_EQ(gpu.step_count(), 5);
  // Today's step waits for its kernels at its end and reads the loss back synchronously.
  EXPECT_EQ(gpu.stats().blocking_waits, 2 * 5);
  for (VariableKind kind : {VariableKind::parameter, VariableKind::optimizer})
    for (const std::string& name : cpu.variables(kind))
      EXPECT_LT(max_error(gpu.get(name), cpu.get(name)), 1e-5) << name;
  EXPECT_LT(std::abs(gpu.evaluate_loss(f) - cpu.evaluate_loss(f)), 1e-5);
}

TEST(CudaBackendGpu, SetAndGetMoveValuesToAndFromTheDevice) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Mlp m;
  Program gpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cuda(), .seed = 1});
  Program cpu = compile(m.g, m.loss, optim::None{}, {.device = Device::cpu(), .seed = 2});
  // Copy the CPU program's parameters over: the two then compute the same logits.
  for (const std::string& name : cpu.variables(VariableKind::parameter)) gpu.set(name, cpu.get(name));
  for (const std::string& name : cpu.variables(VariableKind::parameter))
    EXPECT_EQ(max_error(gpu.get(name), cpu.get(name)), 0.0) << name;
  const Feeds f = mlp_feeds(7);
  EXPECT_LT(max_error(gpu.evaluate(f, {m.logits})[0], cpu.evaluate(f, {m.logits})[0]), 1e-5);
  EXPECT_THROW(gpu.set("fc1.weight", Tensor::zeros({3, 3}, f32)), Error);
}

TEST(CudaBackendGpu, AnOpWithoutACudaKernelIsRefusedByName) {
  if (const std::string why = missing_device(); !why.empty()) GTEST_SKIP() << why;
  Graph g;
  const Value x = g.input("x", {4, 8});
  const Value y = g.input("y", {4}, i64);
  nn::Linear fc(g, "fc", 8, 3);
  const Value loss = cross_entropy(fc(x), y);
  try {
    (void)compile(g, loss, optim::SGD{}, {.device = Device::cuda()});
    FAIL() << "compile() accepted an op the CUDA backend has no kernel for";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("cross_entropy"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda_backend_gpu_test.cpp"), std::string::npos)
        << "names where the user's code made it: " << e.what();
  }
}

}  // namespace
}  // namespace trainrt
