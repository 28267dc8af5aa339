// No heap allocation inside steady-state steps, counted at the source: this binary replaces
// the global operator new, so every C++ allocation made while a step runs is seen, on any
// thread, and attributed to the library whose code asked for it (the first frame outside
// the C++ runtime). Program::stats() counts only libtrainrt's own buffers; this test holds
// the whole step to the rule. oneDNN's primitive::execute builds a small argument map on
// the heap at every call — its own business, which we cannot avoid short of replacing it —
// so allocations from inside libdnnl are counted apart and only reported.
#include <dlfcn.h>
#include <execinfo.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "test_util.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_ours{0}, g_onednn{0};
thread_local bool t_inside = false;  // backtrace() itself may allocate once per thread

/// Counts an allocation while counting is on, by the library that requested it.
void count_allocation() {
  if (!g_counting.load(std::memory_order_relaxed) || t_inside) return;
  t_inside = true;
  void* frames[16];
  const int n = backtrace(frames, 16);
  bool onednn = false;
  for (int i = 1; i < n; ++i) {  // frame 0 is this function's caller chain start
    Dl_info info;
    if (!dladdr(frames[i], &info) || info.dli_fname == nullptr) break;
    const char* f = info.dli_fname;
    if (std::strstr(f, "libstdc++") || std::strstr(f, "libgcc") || std::strstr(f, "libc.so")) continue;
    if (info.dli_sname && (std::strstr(info.dli_sname, "count_allocation") || std::strstr(info.dli_sname, "_Znw")))
      continue;
    onednn = std::strstr(f, "libdnnl") != nullptr;
    break;
  }
  (onednn ? g_onednn : g_ours).fetch_add(1, std::memory_order_relaxed);
  t_inside = false;
}

void* allocate(std::size_t n, std::size_t align) {
  count_allocation();
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace trainrt {
namespace {

struct Counts {
  long ours, onednn;
};

/// Allocations made by 5 steps after 3 warm-up steps.
Counts allocations_during(const std::function<void()>& step) {
  for (int i = 0; i < 3; ++i) step();
  g_ours = 0;
  g_onednn = 0;
  g_counting = true;
  for (int i = 0; i < 5; ++i) step();
  g_counting = false;
  return {g_ours.load(), g_onednn.load()};
}

Feeds random_feeds(const Shape& x, std::int64_t batch, std::mt19937& rng) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(batch));
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 10);
  return {{"x", test::random_tensor(x, f32, rng)}, {"y", Tensor::from_vector<std::int64_t>({batch}, labels)}};
}

TEST(Allocations, NoneInStepsWithoutLibraryCalls) {
  // Every kernel family of our own: elementwise, reductions, shape ops, pooling, batch and
  // layer norm, attention, dropout, embedding, softmax and the loss, and the optimizer.
  std::mt19937 rng(1);
  for (int threads : {1, 2}) {
    Graph g;
    auto x = g.input("x", {16, 3, 12, 12});
    auto y = g.input("y", {16}, i64);
    nn::BatchNorm2d bn(g, "bn", 3);
    auto h = avg_pool2d(max_pool2d(relu(bn(x)), {.kernel = {2, 2}}),
                        {.kernel = {3, 3}, .stride = Pair{1, 1}, .padding = {1, 1}});
    auto t = reshape(permute(h, {0, 2, 3, 1}), {16, 36, 3});
    auto a = scaled_dot_product_attention(t, t, t, {.causal = true});
    auto table = g.parameter("table", {10, 108}, init::normal());
    auto logits = sum(dropout(flatten(layer_norm(a, {}, {})), 0.1) * embedding(table, y) + gelu(mean(t)), {1}, true) +
                  g.parameter("bias", {10}, init::zeros());
    auto loss = cross_entropy(log_softmax(logits), y, {.label_smoothing = 0.1});
    Program p = compile(g, loss, optim::AdamW{.schedule = optim::cosine(100, 5)}, {.threads = threads});
    const Feeds feeds = random_feeds({16, 3, 12, 12}, 16, rng);
    const Counts c = allocations_during([&] { p.step(feeds); });
    EXPECT_EQ(c.ours, 0) << threads << " thread(s)";
    EXPECT_EQ(c.onednn, 0) << threads << " thread(s)";
    EXPECT_EQ(p.stats().allocations_in_steps, 0);
  }
}

TEST(Allocations, OnlyOneDnnAllocatesInStepsWithMatmulAndConvolution) {
  std::mt19937 rng(2);
  for (int threads : {1, 2}) {
    Graph g;
    auto x = g.input("x", {16, 3, 12, 12});
    auto y = g.input("y", {16}, i64);
    nn::Conv2d conv(g, "conv", 3, 8, {3, 3}, {.padding = {1, 1}});
    nn::Linear fc(g, "fc", 8 * 36, 10);
    auto loss = cross_entropy(fc(flatten(max_pool2d(relu(conv(x))))), y);
    Program p = compile(g, loss, optim::SGD{.momentum = 0.9}, {.threads = threads});
    const Feeds feeds = random_feeds({16, 3, 12, 12}, 16, rng);
    const Counts c = allocations_during([&] { p.step(feeds); });
    EXPECT_EQ(c.ours, 0) << threads << " thread(s)";
    RecordProperty("onednn_allocations_per_step", std::to_string(c.onednn / 5));
    std::printf("oneDNN made %ld heap allocations per step inside primitive::execute (%d thread(s))\n", c.onednn / 5,
                threads);
  }
}

}  // namespace
}  // namespace trainrt
