// bench/compile_cache.cpp — what the compiler cache saves, and what fusion buys.
//
//   compile_cache_bench --model mlp|cnn|transformer [--steps N] [--threads N]
//
// In one process: compile the model and run its first step (time to first step: cold when
// the cache directory is empty, "warm disk" when an earlier process filled it), then compile
// a second Program of the same model and run its first step ("warm memory"), then time N
// steps of the fused Program against the same model compiled with fusion off. Prints one
// JSON line; run_compile_cache_bench.sh runs it cold and warm in fresh processes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fashion_mnist/models.h"
#include "models.h"

namespace tr = trainrt;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Built {
  tr::Value loss;
  tr::Feeds feeds;
};

Built build(const std::string& model, tr::Graph& g) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  auto fill = [&](tr::Tensor& t) {
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  };
  auto labels = [&](tr::Tensor& t, std::int64_t classes) {
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<std::int64_t>()[i] = static_cast<std::int64_t>(rng() % classes);
  };
  if (model == "transformer") {
    const bench_models::TransformerConfig c{
        .vocab = 1024, .seq_len = 64, .d_model = 128, .heads = 4, .ffn = 512, .layers = 2, .dropout = 0.1};
    const std::int64_t batch = 8;
    auto tokens = g.input("tokens", {batch, c.seq_len}, tr::i64);
    auto targets = g.input("targets", {batch, c.seq_len}, tr::i64);
    tr::Tensor t = tr::Tensor::empty({batch, c.seq_len}, tr::i64), u = tr::Tensor::empty({batch, c.seq_len}, tr::i64);
    labels(t, c.vocab);
    labels(u, c.vocab);
    return {bench_models::build_transformer(g, tokens, targets, c).loss, {{"tokens", t}, {"targets", u}}};
  }
  const std::int64_t batch = model == "cnn" ? 64 : 128;
  auto x = g.input("x", {batch, 1, 28, 28});
  auto y = g.input("y", {batch}, tr::i64);
  tr::Tensor xt = tr::Tensor::empty({batch, 1, 28, 28}, tr::f32), yt = tr::Tensor::empty({batch}, tr::i64);
  fill(xt);
  labels(yt, 10);
  return {fashion::build_model(model, g, x, y).loss, {{"x", xt}, {"y", yt}}};
}

tr::optim::Optimizer optimizer_for(const std::string& model) {
  if (model == "mlp") return tr::optim::SGD{.lr = 0.05, .momentum = 0.9};
  return tr::optim::AdamW{.lr = 1e-3};
}

struct FirstStep {
  double seconds = 0;             // build the graph, compile, run the first step
  double first_step_seconds = 0;  // of which the first step
  tr::CompileReport report;
};

FirstStep first_step(const std::string& model, int threads, bool fusion, tr::Program* keep = nullptr) {
  const auto start = Clock::now();
  tr::Graph g;
  Built b = build(model, g);
  tr::Program p = tr::compile(g, b.loss, optimizer_for(model), {.threads = threads, .fusion = fusion});
  const auto compiled = Clock::now();
  p.step(b.feeds);
  FirstStep f{since(start), 0, p.compile_report()};
  f.first_step_seconds = f.seconds - std::chrono::duration<double>(compiled - start).count();
  if (keep) *keep = std::move(p);
  return f;
}

double median_step_ms(const std::string& model, int threads, bool fusion, int steps) {
  tr::Graph g;
  Built b = build(model, g);
  tr::Program p = tr::compile(g, b.loss, optimizer_for(model), {.threads = threads, .fusion = fusion});
  for (int i = 0; i < 3; ++i) p.step(b.feeds);
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    const auto t = Clock::now();
    p.step(b.feeds);
    ms.push_back(since(t) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "mlp";
  int steps = 30, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: compile_cache_bench --model mlp|cnn|transformer [--steps N] [--threads N]\n");
      return 2;
    }
  }
  try {
    const tr::KernelCacheStats before = tr::kernel_cache_stats();
    const FirstStep first = first_step(model, threads, true);
    const tr::KernelCacheStats after_first = tr::kernel_cache_stats();
    const FirstStep second = first_step(model, threads, true);
    const double fused = steps > 0 ? median_step_ms(model, threads, true, steps) : 0;
    const double unfused = steps > 0 ? median_step_ms(model, threads, false, steps) : 0;
    std::printf(
        "{\"model\": \"%s\", \"time_to_first_step_s\": %.4f, \"compile_s\": %.4f, \"first_step_s\": %.4f, \"kernels\": "
        "%lld, "
        "\"modules\": %lld, \"modules_compiled\": %lld, \"disk_hits\": %llu, "
        "\"warm_memory_time_to_first_step_s\": %.4f, \"warm_memory_modules_compiled\": %lld, "
        "\"fused_step_ms\": %.3f, \"unfused_step_ms\": %.3f, \"steps\": %d}\n",
        model.c_str(), first.seconds, first.report.compile_seconds, first.first_step_seconds,
        static_cast<long long>(first.report.kernels), static_cast<long long>(first.report.modules),
        static_cast<long long>(first.report.modules_compiled),
        static_cast<unsigned long long>(after_first.disk_hits - before.disk_hits), second.seconds,
        static_cast<long long>(second.report.modules_compiled), fused, unfused, steps);
    return 0;
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "compile_cache_bench: %s\n", e.what());
    return 1;
  }
}
