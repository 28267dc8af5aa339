// bench/step_bench.cpp — milliseconds per training step of libtrainrt on the CPU, for the
// Fashion-MNIST models of the example trainer (examples/fashion_mnist/models.h) and the
// ResNet-18 and transformer of bench/models.h.
//
//   trainrt_step_bench --model mlp|cnn|resnet18|transformer --threads N [--inter-op on|off]
//                      [--batch B] [--warmup W] [--steps S] [--seq-len L] [--dropout P] [--tied on|off]
//                      [--loader on|off] [--data DIR|synthetic] [--prefetch N]
//
// Builds the model on seeded random inputs (bench_util.h), compiles it with the model's
// optimizer (mlp: SGD lr 0.05 momentum 0.9; cnn and resnet18: Adam lr 1e-3; transformer:
// AdamW lr 1e-3 weight decay 0.01), runs the warm-up steps, then times every step on its own
// and prints one JSON line (fields in README.md), including the planned arena, the naive sum
// of the step's buffers and the peak RSS. With --loader on (mlp and cnn), each step first takes
// its batch from a trainrt::data::DataLoader over Fashion-MNIST (or synthetic images) and the
// line adds the time steps spent waiting for data. Its peer is torch_step_bench.cpp;
// run_cpu_bench.sh runs both and prints the comparison.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <trainrt/trainrt.hpp>

#include "bench_util.h"
#include "fashion_mnist/models.h"
#include "models.h"

namespace {

namespace tr = trainrt;

/// The optimizer each model trains with (the same on the libtorch side).
tr::optim::Optimizer model_optimizer(const std::string& model) {
  if (model == "cnn" || model == "resnet18") return tr::optim::Adam{.lr = 1e-3};
  if (model == "transformer") return tr::optim::AdamW{.lr = 1e-3, .weight_decay = 0.01};
  return tr::optim::SGD{.lr = 0.05, .momentum = 0.9};
}

/// The loss of the model named in `args`, built on the graph's two inputs.
tr::Value build_loss(const bench::BenchArgs& args, tr::Graph& g, const tr::Value& x, const tr::Value& y) {
  if (args.model == "resnet18") return bench_models::build_resnet18(g, x, y).loss;
  if (args.model == "transformer") {
    bench_models::TransformerConfig c;
    c.vocab = bench::kVocab;
    c.seq_len = args.seq_len;
    c.d_model = bench::kDModel;
    c.heads = bench::kHeads;
    c.ffn = bench::kFfn;
    c.layers = bench::kLayers;
    c.dropout = args.dropout;
    c.tie_embeddings = args.tied;
    return bench_models::build_transformer(g, x, y, c).loss;
  }
  return fashion::build_model(args.model, g, x, y).loss;
}

constexpr double kMiB = 1024.0 * 1024.0;

/// The dataset of --loader: the Fashion-MNIST training split from `dir`, normalized once
/// with the mean and standard deviation make_batches uses, or, when `dir` is "synthetic" or
/// holds no such files, 8192 seeded random samples in memory. `what` says which.
std::shared_ptr<const tr::data::Dataset> loader_dataset(const bench::BenchArgs& args, std::string& what) {
  if (args.data != "synthetic") {
    try {
      tr::data::LabeledImages split = tr::data::load_mnist_split(args.data, "train");
      float* p = split.images.data<float>();
      for (std::int64_t i = 0; i < split.images.numel(); ++i) p[i] = (p[i] - 0.2860f) / 0.3530f;
      what = "fashion-mnist:" + args.data;
      return std::make_shared<tr::data::IdxDataset>(split);
    } catch (const tr::Error& e) {
      if (e.kind() != tr::ErrorKind::NotFound) throw;
      std::fprintf(stderr, "trainrt_step_bench: no Fashion-MNIST in %s (%s): synthetic data instead\n",
                   args.data.c_str(), e.what());
    }
  }
  // The same seeded generator as the fixed batches: 4 batches of 2048 make 8192 samples.
  const std::vector<bench::HostBatch> parts = bench::make_image_batches({2048, 1, 28, 28}, bench::kDataSeed);
  const auto n = static_cast<std::int64_t>(parts.size()) * 2048;
  tr::Tensor images = tr::Tensor::empty({n, 1, 28, 28}, tr::f32), labels = tr::Tensor::empty({n}, tr::i64);
  float* x = images.data<float>();
  std::int64_t* y = labels.data<std::int64_t>();
  for (const bench::HostBatch& part : parts) {
    x = std::copy(part.images.begin(), part.images.end(), x);
    y = std::copy(part.labels.begin(), part.labels.end(), y);
  }
  what = "synthetic";
  return std::make_shared<tr::data::TensorDataset>(
      std::vector<std::pair<std::string, tr::Tensor>>{{"x", images}, {"y", labels}});
}

int run(const bench::BenchArgs& args) {
  const bool tokens = bench::is_language_model(args);
  const tr::Shape x_shape(bench::input_dims(args)), y_shape(bench::label_dims(args));

  // Where the steps' inputs come from: a few fixed batches cycled (no loader in the
  // measurement), or with --loader a DataLoader whose waiting is reported.
  std::vector<bench::HostBatch> host;
  std::vector<tr::Feeds> feeds;
  std::optional<tr::data::DataLoader> loader;
  std::string loader_what;
  if (args.loader) {
    loader.emplace(loader_dataset(args, loader_what), args.batch,
                   tr::data::LoaderOptions{.shuffle = true, .seed = 0, .prefetch = args.prefetch});
  } else {
    host = bench::make_batches(args);
    // Feeds borrow the host vectors, which outlive the Program's steps.
    for (const bench::HostBatch& b : host) {
      void* x = tokens ? static_cast<void*>(const_cast<std::int64_t*>(b.tokens.data()))
                       : static_cast<void*>(const_cast<float*>(b.images.data()));
      auto* labels = const_cast<std::int64_t*>(b.labels.data());
      feeds.push_back({{bench::input_name(args), tr::Tensor::borrow(x, x_shape, tokens ? tr::i64 : tr::f32)},
                       {bench::label_name(args), tr::Tensor::borrow(labels, y_shape, tr::i64)}});
    }
  }
  std::size_t fixed = 0;
  auto next_feeds = [&]() -> const tr::Feeds& {
    if (loader) return loader->next().feeds;
    return feeds[fixed++ % feeds.size()];
  };

  tr::Graph g;
  const tr::Value x = g.input(bench::input_name(args), x_shape, tokens ? tr::i64 : tr::f32);
  const tr::Value y = g.input(bench::label_name(args), y_shape, tr::i64);
  const tr::Value loss = build_loss(args, g, x, y);

  using Clock = bench::StepTimes::Clock;
  const Clock::time_point compile_start = Clock::now();
  tr::Program program = tr::compile(g, loss, model_optimizer(args.model),
                                    {.threads = args.threads, .inter_op = args.inter_op, .seed = 0});
  const double compile_s = std::chrono::duration<double>(Clock::now() - compile_start).count();

  std::vector<double> losses;
  for (int i = 0; i < args.warmup; ++i) losses.push_back(program.step(next_feeds()).get());
  const tr::data::LoaderStats before = loader ? loader->stats() : tr::data::LoaderStats{};
  bench::StepTimes times;
  for (int i = 0; i < args.steps; ++i) {
    // With a loader, fetching the batch is part of the step: that is where waiting shows.
    times.start();
    const float l = program.step(next_feeds()).get();
    times.stop();
    losses.push_back(l);
  }

  const tr::MemoryReport memory = program.memory_report();
  const tr::ExecStats stats = program.stats();
  // Where the planned memory goes (the largest buffers), for the run's log.
  std::fprintf(stderr, "trainrt_step_bench: %s memory: %s\n", args.model.c_str(), memory.to_string().c_str());
  bench::JsonLine line = bench::common_fields("trainrt", args, times, compile_s, losses);
  line.add("inter_op", args.inter_op)
      .add("planned_arena_mb", static_cast<double>(memory.arena_bytes) / kMiB)
      .add("naive_mb", static_cast<double>(memory.naive_bytes) / kMiB)
      .add("variables_mb", static_cast<double>(memory.variable_bytes) / kMiB)
      .add("recomputed", static_cast<std::int64_t>(memory.recomputed))
      .add("allocations_in_steps", stats.allocations_in_steps);
  if (loader) {
    // Waiting during the timed steps only; the fraction is of their summed wall time.
    const tr::data::LoaderStats after = loader->stats();
    const double wait_s = after.wait_seconds - before.wait_seconds;
    line.add("loader", loader_what)
        .add("prefetch", args.prefetch)
        .add("data_wait_s", wait_s)
        .add("data_wait_ms_per_step", 1e3 * wait_s / static_cast<double>(std::max<std::size_t>(times.size(), 1)))
        .add("data_wait_fraction", times.total_ms() > 0 ? 1e3 * wait_s / times.total_ms() : 0.0)
        .add("loader_waits", after.waits - before.waits);
  } else {
    line.null("loader")
        .null("prefetch")
        .null("data_wait_s")
        .null("data_wait_ms_per_step")
        .null("data_wait_fraction")
        .null("loader_waits");
  }
  std::printf("%s\n", line.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(bench::parse_args(argc, argv, /*ours=*/true));
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "trainrt_step_bench: trainrt::Error (%s): %s\n", tr::to_string(e.kind()), e.what());
    return e.kind() == tr::ErrorKind::Unsupported ? 3 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainrt_step_bench: %s\n", e.what());
    return 2;
  }
}
