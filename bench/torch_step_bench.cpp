// bench/torch_step_bench.cpp — the peer of step_bench.cpp: the same Fashion-MNIST models,
// optimizers, batches and timing in libtorch's C++ API, printing the same JSON line with
// "impl":"libtorch".
//
//   torch_step_bench --model mlp|cnn --threads N [--batch 128] [--warmup 10] [--steps S]
//
// The models mirror examples/fashion_mnist/models.h layer for layer, with PyTorch's default
// initialization (which libtrainrt's nn layers also follow):
//   mlp: Linear 784-512, ReLU, Linear 512-512, ReLU, Linear 512-10
//   cnn: 3 x [Conv2d 3x3 pad 1 (no bias), BatchNorm2d, ReLU] with 32/64/128 channels,
//        2x2 max pooling after the first two blocks, global average pooling, Linear 128-10
// Loss: mean cross-entropy. Optimizers: mlp SGD lr 0.05 momentum 0.9; cnn Adam lr 1e-3.
// Threads: at::set_num_threads(N) with one inter-op thread; at::get_parallel_info() and the
// build configuration go to stderr, so that the run records which threading and BLAS ran.
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", torch::nn::Linear(784, 512))),
        fc2(register_module("fc2", torch::nn::Linear(512, 512))),
        fc3(register_module("fc3", torch::nn::Linear(512, 10))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(fc1(x.flatten(1)));
    h = torch::relu(fc2(h));
    return fc3(h);
  }
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(Mlp);

struct CnnImpl : torch::nn::Module {
  CnnImpl() {
    const std::int64_t widths[] = {32, 64, 128};
    std::int64_t in = 1;
    for (int i = 0; i < 3; ++i) {
      // libtorch forbids dots in submodule names: "block1_conv" stands for trainrt's "block1.conv".
      const std::string name = "block" + std::to_string(i + 1);
      convs.push_back(register_module(
          name + "_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, widths[i], 3).padding(1).bias(false))));
      bns.push_back(register_module(name + "_bn", torch::nn::BatchNorm2d(widths[i])));
      in = widths[i];
    }
    head = register_module("head", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = x;
    for (std::size_t i = 0; i < convs.size(); ++i) {
      h = torch::relu(bns[i](convs[i](h)));
      if (i < 2) h = torch::max_pool2d(h, {2, 2});
    }
    return head(h.mean({2, 3}));
  }
  std::vector<torch::nn::Conv2d> convs;
  std::vector<torch::nn::BatchNorm2d> bns;
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Cnn);

/// The kernel set OpenBLAS chose for this CPU ("SkylakeX", "Haswell", ...), or "" when the
/// BLAS in use is not OpenBLAS. A too-old OpenBLAS falls back to "Prescott" (SSE3) on CPUs
/// it does not know, several times slower; run_cpu_bench.sh then sets OPENBLAS_CORETYPE.
std::string openblas_core() {
  using CoreName = char* (*)();
  auto* fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn != nullptr ? std::string(fn()) : std::string();
}

template <class Model>
int run_model(const bench::BenchArgs& args, Model model, torch::optim::Optimizer& optimizer, double build_s) {
  const std::vector<bench::HostBatch> host = bench::make_batches(args.batch);
  std::vector<torch::Tensor> images, labels;
  for (const bench::HostBatch& b : host) {
    images.push_back(torch::from_blob(const_cast<float*>(b.images.data()), {args.batch, 1, 28, 28}, torch::kFloat32));
    labels.push_back(torch::from_blob(const_cast<std::int64_t*>(b.labels.data()), {args.batch}, torch::kInt64));
  }
  model->train();

  const std::vector<torch::Tensor> params = model->parameters();
  int step = 0;
  // One training step, as a PyTorch user writes it; item() mirrors trainrt's StepResult::get().
  // Gradients are reset to undefined rather than zeroed: zero_grad(set_to_none=True), the
  // default since PyTorch 2.0 and the faster choice (libtorch 1.13's zero_grad() can only
  // zero), so backward writes fresh gradients instead of accumulating into zeros.
  auto train_step = [&]() -> float {
    const std::size_t k = static_cast<std::size_t>(step++) % images.size();
    for (const torch::Tensor& p : params) p.mutable_grad() = torch::Tensor();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(images[k]), labels[k]);
    loss.backward();
    optimizer.step();
    return loss.item<float>();
  };

  double loss_first = 0.0, loss_last = 0.0;
  for (int i = 0; i < args.warmup; ++i) {
    const float loss = train_step();
    if (i == 0) loss_first = loss;
  }
  bench::StepTimes times;
  for (int i = 0; i < args.steps; ++i) {
    times.start();
    const float loss = train_step();
    times.stop();
    if (args.warmup == 0 && i == 0) loss_first = loss;
    loss_last = loss;
  }

  // libtorch has no compile step: compile_s is the time to build the model and optimizer.
  bench::JsonLine line = bench::common_fields("libtorch", args, times, build_s, loss_first, loss_last);
  line.null("planned_arena_mb")
      .null("allocations_in_steps")
      .add("blas_libs", bench::mapped_libraries({"blas", "lapack", "mkl_"}))
      .add("openblas_core", openblas_core());
  std::printf("%s\n", line.str().c_str());
  return 0;
}

int run(const bench::BenchArgs& args) {
  // Inter-op threads must be set before any parallel work starts.
  at::set_num_interop_threads(1);
  at::set_num_threads(args.threads);
  torch::manual_seed(0);
  std::fprintf(stderr, "torch_step_bench: libtorch build configuration:\n%s\n", at::show_config().c_str());
  std::fprintf(stderr, "torch_step_bench: parallel info:\n%s\n", at::get_parallel_info().c_str());

  using Clock = bench::StepTimes::Clock;
  const Clock::time_point build_start = Clock::now();
  if (args.model == "cnn") {
    Cnn model;
    torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
    return run_model(args, model, optimizer, std::chrono::duration<double>(Clock::now() - build_start).count());
  }
  Mlp model;
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  return run_model(args, model, optimizer, std::chrono::duration<double>(Clock::now() - build_start).count());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(bench::parse_args(argc, argv));
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "torch_step_bench: libtorch error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_step_bench: %s\n", e.what());
    return 2;
  }
}
