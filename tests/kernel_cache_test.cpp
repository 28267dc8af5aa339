// tests/kernel_cache_test.cpp — compile/kernel_cache: the in-process layer over the disk
// directory, one compile per key under concurrency, failing makes, and the statistics.
//
// Contents:
//   Layers        memory hit, disk hit from a new KernelCache, memory only, damaged disk entry,
//                 an unusable directory, clear_memory
//   FindPut       find and put (the compiler's batched path), kinds kept apart
//   Concurrency   many threads, one key: one make; many keys; a make that throws reaches
//                 every waiter and stores nothing; a make that asks for its own key
//   Stats         counters, seconds saved, reset; debug logging of hits and misses
//   Global        KernelCache::global() under TRAINRT_CACHE_DIR / TRAINRT_CACHE_MAX_BYTES
//                 (each case in a forked child: global() is made once per process)
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <latch>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "compile/kernel_cache.h"
#include "log_capture.h"
#include "test_util.h"

namespace trainrt::detail {
namespace {

namespace fs = std::filesystem;
using test::LogCapture;
using test::TempDir;

Digest key_for(int i) { return sha256("generated kernel " + std::to_string(i)); }

/// A make() that counts its calls, takes `ms` milliseconds and returns `payload`.
struct CountingMake {
  std::atomic<int> calls{0};
  std::string payload;
  int ms;
  CountingMake(std::string p, int millis) : payload(std::move(p)), ms(millis) {}
  std::function<std::string()> fn() {
    return [this] {
      ++calls;
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return payload;
    };
  }
};

std::function<std::string()> must_not_make() {
  return []() -> std::string {
    ADD_FAILURE() << "make() called although the entry was cached";
    return "wrong";
  };
}

// ---- Layers --------------------------------------------------------------------------------

TEST(KernelCacheLayers, MemoryHit) {
  KernelCache cache(std::nullopt);
  EXPECT_EQ(cache.disk(), nullptr);
  CountingMake make("module bytes", 10);
  const auto a = cache.get_or_make(key_for(1), CacheKind::cpu_module, make.fn());
  const auto b = cache.get_or_make(key_for(1), CacheKind::cpu_module, make.fn());
  EXPECT_EQ(make.calls, 1);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, "module bytes");
  EXPECT_EQ(a, b) << "a memory hit shares the payload";
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.memory_hits, 1u);
  EXPECT_EQ(s.disk_hits, 0u);
  EXPECT_GE(s.compile_seconds, 0.010);
  EXPECT_EQ(s.saved_seconds, s.compile_seconds);
  EXPECT_EQ(s.bytes_written, 0u) << "no disk layer";
}

TEST(KernelCacheLayers, DiskHitFromANewCache) {
  TempDir dir;
  double first_seconds = 0;
  {
    KernelCache first(fs::path(dir.path()));
    ASSERT_NE(first.disk(), nullptr);
    CountingMake make(std::string(4000, 'k'), 20);
    first.get_or_make(key_for(1), CacheKind::cuda_module, make.fn());
    first_seconds = first.stats().compile_seconds;
    EXPECT_EQ(first.stats().bytes_written, 4000u);
  }
  KernelCache second(fs::path(dir.path()));
  const auto p = second.get_or_make(key_for(1), CacheKind::cuda_module, must_not_make());
  EXPECT_EQ(*p, std::string(4000, 'k'));
  CacheStats s = second.stats();
  EXPECT_EQ(s.disk_hits, 1u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.compiles, 0u);
  EXPECT_EQ(s.bytes_read, 4000u);
  EXPECT_EQ(s.saved_seconds, first_seconds) << "the entry carries the seconds its compile took";
  // Now it is in memory too.
  EXPECT_EQ(second.get_or_make(key_for(1), CacheKind::cuda_module, must_not_make()), p);
  s = second.stats();
  EXPECT_EQ(s.memory_hits, 1u);
  EXPECT_EQ(s.saved_seconds, 2 * first_seconds);
}

TEST(KernelCacheLayers, MemoryOnlyCachesDoNotShare) {
  KernelCache a(std::nullopt), b(std::nullopt);
  CountingMake make("x", 0);
  a.get_or_make(key_for(1), CacheKind::program, make.fn());
  b.get_or_make(key_for(1), CacheKind::program, make.fn());
  EXPECT_EQ(make.calls, 2);
}

TEST(KernelCacheLayers, DamagedDiskEntryIsRecompiledAndReplaced) {
  TempDir dir;
  {
    KernelCache first(fs::path(dir.path()));
    first.get_or_make(key_for(1), CacheKind::cpu_module, CountingMake("good module", 0).fn());
  }
  const auto entries = DiskCache(dir.path()).list(false);
  ASSERT_EQ(entries.size(), 1u);
  fs::resize_file(entries[0].path, entries[0].bytes - 3);
  LogCapture logs;
  KernelCache second(fs::path(dir.path()));
  CountingMake make("good module", 0);
  EXPECT_EQ(*second.get_or_make(key_for(1), CacheKind::cpu_module, make.fn()), "good module");
  EXPECT_EQ(make.calls, 1);
  EXPECT_EQ(second.stats().misses, 1u);
  EXPECT_EQ(logs.count(spdlog::level::warn, "damaged"), 1u) << logs.dump();
  const auto after = DiskCache(dir.path()).list(true);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_TRUE(after[0].valid) << after[0].problem;
}

TEST(KernelCacheLayers, UnusableDirectoryWorksFromMemory) {
  LogCapture logs;
  KernelCache cache(fs::path("/proc/trainrt-no-such-dir/cache"));
  ASSERT_NE(cache.disk(), nullptr);
  EXPECT_FALSE(cache.disk()->writable());
  CountingMake make("m", 0);
  cache.get_or_make(key_for(1), CacheKind::cpu_module, make.fn());
  cache.get_or_make(key_for(1), CacheKind::cpu_module, make.fn());
  EXPECT_EQ(make.calls, 1);
  EXPECT_EQ(cache.stats().bytes_written, 0u);
  EXPECT_EQ(logs.warnings().size(), 1u) << logs.dump();
}

TEST(KernelCacheLayers, ClearMemoryFallsBackToDisk) {
  TempDir dir;
  KernelCache cache(fs::path(dir.path()));
  const auto held = cache.get_or_make(key_for(1), CacheKind::cpu_module, CountingMake("payload", 0).fn());
  EXPECT_EQ(cache.memory_entries(), 1u);
  cache.clear_memory();
  EXPECT_EQ(cache.memory_entries(), 0u);
  EXPECT_EQ(*held, "payload") << "payloads in use stay alive";
  EXPECT_EQ(*cache.get_or_make(key_for(1), CacheKind::cpu_module, must_not_make()), "payload");
  EXPECT_EQ(cache.stats().disk_hits, 1u);
}

// ---- FindPut -------------------------------------------------------------------------------

TEST(KernelCacheFindPut, FindMissesThenHitsAfterPut) {
  TempDir dir;
  KernelCache cache(fs::path(dir.path()));
  EXPECT_EQ(cache.find(key_for(1), CacheKind::cuda_module), nullptr);
  EXPECT_EQ(cache.stats().misses, 1u);
  cache.put(key_for(1), CacheKind::cuda_module, "cubin", 0.75);
  const auto p = cache.find(key_for(1), CacheKind::cuda_module);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "cubin");
  EXPECT_EQ(cache.find(key_for(1), CacheKind::cpu_module), nullptr) << "another kind is another entry";
  CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.compile_seconds, 0.75);
  EXPECT_EQ(s.memory_hits, 1u);
  EXPECT_EQ(s.saved_seconds, 0.75);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.bytes_written, 5u);

  KernelCache other(fs::path(dir.path()));
  const auto q = other.find(key_for(1), CacheKind::cuda_module);
  ASSERT_TRUE(q);
  EXPECT_EQ(*q, "cubin");
  EXPECT_EQ(other.stats().disk_hits, 1u);
  EXPECT_EQ(other.stats().saved_seconds, 0.75);
  // find() filled the memory layer: get_or_make needs no make.
  EXPECT_EQ(other.get_or_make(key_for(1), CacheKind::cuda_module, must_not_make()), q);
}

TEST(KernelCacheFindPut, PutReplacesAFinishedEntry) {
  KernelCache cache(std::nullopt);
  cache.put(key_for(1), CacheKind::program, "v1", 1);
  cache.put(key_for(1), CacheKind::program, "v2", 1);
  EXPECT_EQ(*cache.find(key_for(1), CacheKind::program), "v2");
  EXPECT_EQ(cache.memory_entries(), 1u);
}

// ---- Concurrency ---------------------------------------------------------------------------

TEST(KernelCacheConcurrency, ManyThreadsOneKeyCompileOnce) {
  TempDir dir;
  KernelCache cache(fs::path(dir.path()));
  CountingMake make(std::string(10000, 'z'), 100);
  constexpr int kThreads = 16;
  std::latch start(kThreads);
  std::vector<std::shared_ptr<const std::string>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[t] = cache.get_or_make(key_for(7), CacheKind::cuda_module, make.fn());
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(make.calls, 1);
  for (const auto& r : results) EXPECT_EQ(r, results[0]);
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.compiles, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.memory_hits, static_cast<std::uint64_t>(kThreads - 1));
  EXPECT_EQ(DiskCache(dir.path()).list(true).size(), 1u);
}

TEST(KernelCacheConcurrency, ManyThreadsManyKeysEachMadeOnce) {
  KernelCache cache(std::nullopt);
  constexpr int kKeys = 24, kThreads = 8;
  std::array<std::atomic<int>, kKeys> calls{};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int j = 0; j < kKeys; ++j) {
        const int k = (j * 5 + t * 7) % kKeys;  // a different order in each thread
        const auto p = cache.get_or_make(key_for(k), CacheKind::cpu_module, [&, k] {
          ++calls[k];
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          return std::to_string(k);
        });
        EXPECT_EQ(*p, std::to_string(k));
      }
    });
  for (auto& th : threads) th.join();
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(calls[k], 1) << "key " << k;
  EXPECT_EQ(cache.stats().compiles, static_cast<std::uint64_t>(kKeys));
  EXPECT_EQ(cache.stats().memory_hits, static_cast<std::uint64_t>(kKeys * (kThreads - 1)));
}

TEST(KernelCacheConcurrency, AThrowingMakeReachesEveryWaiterAndStoresNothing) {
  TempDir dir;
  KernelCache cache(fs::path(dir.path()));
  constexpr int kWaiters = 6;
  std::atomic<int> calls{0}, announced{0};
  std::latch in_make(1);
  auto failing = [&]() -> std::string {
    ++calls;
    in_make.count_down();
    // Give the waiters time to block on this compile before it fails (they announce
    // themselves just before calling get_or_make).
    while (announced.load() < kWaiters) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    throw std::runtime_error("nvrtc: error: expected a ';'");
  };
  std::atomic<int> caught{0};
  auto call = [&] {
    try {
      cache.get_or_make(key_for(1), CacheKind::cuda_module, failing);
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find("expected a ';'") != std::string::npos) ++caught;
    }
  };
  std::thread maker(call);
  in_make.wait();
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i)
    waiters.emplace_back([&] {
      ++announced;
      call();
    });
  maker.join();
  for (auto& th : waiters) th.join();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(caught, kWaiters + 1);
  EXPECT_EQ(cache.memory_entries(), 0u);
  EXPECT_TRUE(DiskCache(dir.path()).list(false).empty());
  EXPECT_EQ(cache.stats().compiles, 0u);
  // A later call tries again.
  CountingMake make("fixed", 0);
  EXPECT_EQ(*cache.get_or_make(key_for(1), CacheKind::cuda_module, make.fn()), "fixed");
  EXPECT_EQ(make.calls, 1);
}

TEST(KernelCacheConcurrency, AMakeAskingForItsOwnKeyThrows) {
  KernelCache cache(std::nullopt);
  const auto recursive = [&]() -> std::string {
    return *cache.get_or_make(key_for(1), CacheKind::cpu_module, [] { return std::string("inner"); });
  };
  test::expect_error([&] { cache.get_or_make(key_for(1), CacheKind::cpu_module, recursive); }, ErrorKind::Internal,
                     {"asked for its own key", key_for(1).hex()});
  EXPECT_EQ(cache.memory_entries(), 0u);
}

// ---- Stats ---------------------------------------------------------------------------------

TEST(KernelCacheStats, ResetAndDebugLog) {
  TempDir dir;
  KernelCache cache(fs::path(dir.path()));
  LogCapture logs(spdlog::level::debug);
  cache.get_or_make(key_for(1), CacheKind::program, CountingMake("p", 0).fn());
  cache.get_or_make(key_for(1), CacheKind::program, must_not_make());
  KernelCache(fs::path(dir.path())).get_or_make(key_for(1), CacheKind::program, must_not_make());
  const std::string hex = key_for(1).hex();
  EXPECT_EQ(logs.count(spdlog::level::debug, "disk miss program " + hex), 1u) << logs.dump();
  EXPECT_EQ(logs.count(spdlog::level::debug, "miss program " + hex + ", compiling"), 1u) << logs.dump();
  EXPECT_EQ(logs.count(spdlog::level::debug, "memory hit program " + hex), 1u) << logs.dump();
  EXPECT_EQ(logs.count(spdlog::level::debug, "disk hit program " + hex), 1u) << logs.dump();
  EXPECT_NE(cache.stats().misses, 0u);
  cache.reset_stats();
  const CacheStats s = cache.stats();
  EXPECT_EQ(s.memory_hits + s.disk_hits + s.misses + s.compiles + s.bytes_read + s.bytes_written, 0u);
  EXPECT_EQ(s.compile_seconds, 0);
  EXPECT_EQ(s.saved_seconds, 0);
}

// ---- Global --------------------------------------------------------------------------------

/// Runs `check` in a forked child with the given environment; expects it to return 0.
void in_child(const std::map<std::string, std::optional<std::string>>& env, const std::function<int()>& check) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (const auto& [name, value] : env) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
    ::_exit(check());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's check number that failed";
}

TEST(KernelCacheGlobal, FollowsTheEnvironment) {
  TempDir dir;
  in_child({{"TRAINRT_CACHE_DIR", dir.path()}, {"TRAINRT_CACHE_MAX_BYTES", "3M"}}, [&] {
    KernelCache& g = KernelCache::global();
    if (&g != &KernelCache::global()) return 1;
    if (!g.disk() || g.disk()->directory() != fs::path(dir.path())) return 2;
    if (g.disk()->cap_bytes() != 3u << 20) return 3;
    g.get_or_make(key_for(1), CacheKind::cpu_module, [] { return std::string("global"); });
    return DiskCache(dir.path()).list(true).size() == 1 ? 0 : 4;
  });
  in_child({{"TRAINRT_CACHE_DIR", "off"}}, [] { return KernelCache::global().disk() == nullptr ? 0 : 1; });
  in_child({{"TRAINRT_CACHE_DIR", ""}}, [] { return KernelCache::global().disk() == nullptr ? 0 : 1; });
  in_child(
      {{"TRAINRT_CACHE_DIR", std::nullopt}, {"XDG_CACHE_HOME", dir.file("xdg")}, {"TRAINRT_CACHE_MAX_BYTES", "lots"}},
      [&] {
        DiskCache* d = KernelCache::global().disk();
        if (!d || d->directory() != fs::path(dir.file("xdg")) / "trainrt") return 1;
        return d->cap_bytes() == 2ull << 30 ? 0 : 2;  // a malformed cap falls back to 2 GiB
      });
}

}  // namespace
}  // namespace trainrt::detail
