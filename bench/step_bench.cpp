// bench/step_bench.cpp — milliseconds per training step of libtrainrt on the CPU, for the
// Fashion-MNIST models of the example trainer (examples/fashion_mnist/models.h).
//
//   trainrt_step_bench --model mlp|cnn --threads N [--batch 128] [--warmup 10] [--steps S]
//
// Builds the model on seeded random normalized inputs, compiles it with the example's
// optimizer (mlp: SGD lr 0.05 momentum 0.9; cnn: Adam lr 1e-3), runs the warm-up steps, then
// times every step on its own and prints one JSON line (fields in README.md). Its peer is
// torch_step_bench.cpp; run_cpu_bench.sh runs both and prints the comparison.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <trainrt/trainrt.hpp>

#include "bench_util.h"
#include "models.h"

namespace {

namespace tr = trainrt;

/// The optimizer examples/fashion_mnist trains each model with.
tr::optim::Optimizer example_optimizer(const std::string& model) {
  if (model == "cnn") return tr::optim::Adam{.lr = 1e-3};
  return tr::optim::SGD{.lr = 0.05, .momentum = 0.9};
}

int run(const bench::BenchArgs& args) {
  const std::vector<bench::HostBatch> host = bench::make_batches(args.batch);
  // Feeds borrow the host vectors, which outlive the Program's steps.
  std::vector<tr::Feeds> feeds;
  for (const bench::HostBatch& b : host) {
    auto* images = const_cast<float*>(b.images.data());
    auto* labels = const_cast<std::int64_t*>(b.labels.data());
    feeds.push_back({{"x", tr::Tensor::borrow(images, {args.batch, 1, 28, 28}, tr::f32)},
                     {"y", tr::Tensor::borrow(labels, {args.batch}, tr::i64)}});
  }

  tr::Graph g;
  const tr::Value x = g.input("x", {args.batch, 1, 28, 28}, tr::f32);
  const tr::Value y = g.input("y", {args.batch}, tr::i64);
  const fashion::Model model = fashion::build_model(args.model, g, x, y);

  using Clock = bench::StepTimes::Clock;
  const Clock::time_point compile_start = Clock::now();
  tr::Program program =
      tr::compile(g, model.loss, example_optimizer(args.model), {.threads = args.threads, .seed = 0});
  const double compile_s = std::chrono::duration<double>(Clock::now() - compile_start).count();

  double loss_first = 0.0, loss_last = 0.0;
  int step = 0;
  auto next_feeds = [&]() -> const tr::Feeds& { return feeds[static_cast<std::size_t>(step++) % feeds.size()]; };
  for (int i = 0; i < args.warmup; ++i) {
    const float loss = program.step(next_feeds()).get();
    if (i == 0) loss_first = loss;
  }
  bench::StepTimes times;
  for (int i = 0; i < args.steps; ++i) {
    const tr::Feeds& f = next_feeds();
    times.start();
    const float loss = program.step(f).get();
    times.stop();
    if (args.warmup == 0 && i == 0) loss_first = loss;
    loss_last = loss;
  }

  const tr::MemoryReport memory = program.memory_report();
  const tr::ExecStats stats = program.stats();
  bench::JsonLine line = bench::common_fields("trainrt", args, times, compile_s, loss_first, loss_last);
  line.add("planned_arena_mb", static_cast<double>(memory.arena_bytes) / (1024.0 * 1024.0))
      .add("allocations_in_steps", stats.allocations_in_steps);
  std::printf("%s\n", line.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(bench::parse_args(argc, argv));
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "trainrt_step_bench: trainrt::Error (%s): %s\n", tr::to_string(e.kind()), e.what());
    return e.kind() == tr::ErrorKind::Unsupported ? 3 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainrt_step_bench: %s\n", e.what());
    return 2;
  }
}
