// tests/cache_demo.cpp — a process that compiles and trains a small fused model and prints
// what compile() did as one JSON line; kernel_shipping_test.sh runs it against cache
// directories (cold, warm, imported, with the host compiler hidden, several at once).
#include <cstdio>
#include <random>

#include "trainrt/trainrt.hpp"

int main() {
  using namespace trainrt;
  try {
    Graph g;
    auto x = g.input("x", {32, 20});
    auto y = g.input("y", {32}, i64);
    nn::Linear fc1(g, "fc1", 20, 64), fc2(g, "fc2", 64, 64), fc3(g, "fc3", 64, 5);
    Value loss = cross_entropy(fc3(gelu(fc2(relu(fc1(x))) + 0.1)), y);
    Program p = compile(g, loss, optim::AdamW{.lr = 1e-2}, {.threads = 2});
    std::mt19937 rng(1);
    Tensor xs = Tensor::empty({32, 20}, f32), ys = Tensor::empty({32}, i64);
    std::normal_distribution<float> n;
    for (std::int64_t i = 0; i < 32 * 20; ++i) xs.data<float>()[i] = n(rng);
    for (std::int64_t i = 0; i < 32; ++i) ys.data<std::int64_t>()[i] = static_cast<std::int64_t>(rng() % 5);
    float first = 0, last = 0;
    for (int s = 0; s < 20; ++s) {
      last = p.step({{"x", xs}, {"y", ys}}).get();
      if (s == 0) first = last;
    }
    const CompileReport r = p.compile_report();
    const KernelCacheStats c = kernel_cache_stats();
    std::printf(
        "{\"fused_nodes\": %lld, \"kernels\": %lld, \"modules\": %lld, \"modules_compiled\": %lld, "
        "\"fusion_fallback\": %s, \"program_cache_hit\": %s, \"disk_hits\": %llu, \"compiles\": %llu, \"first_loss\": "
        "%.6f, "
        "\"loss\": %.6f}\n",
        static_cast<long long>(r.fused_nodes), static_cast<long long>(r.kernels), static_cast<long long>(r.modules),
        static_cast<long long>(r.modules_compiled), r.fusion_fallback ? "true" : "false",
        r.program_cache_hit ? "true" : "false", static_cast<unsigned long long>(c.disk_hits),
        static_cast<unsigned long long>(c.compiles), first, last);
    return last < first ? 0 : 3;
  } catch (const Error& e) {
    std::fprintf(stderr, "cache_demo: %s\n", e.what());
    return 2;
  }
}
