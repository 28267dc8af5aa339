// tests/disk_cache_test.cpp — compile/disk_cache: the kernel cache's directory on disk.
//
// Contents:
//   helpers          payloads, raw file access, the entry path of a key
//   Format           the header's bytes, byte-size parsing and printing
//   GetPut           round trips, a new DiskCache over the same directory, kinds, the directory
//   Damaged          flipped byte, truncated, zero-length, foreign, other version, wrong key
//                    and kind, stray bytes: each one logged miss, removed, replaced by a put
//   Lru              eviction order under the cap (explicit times, and refreshed by get),
//                    prune, clear, stale temporary files, an entry over the cap
//   Unusable         a path under /proc, a path below a regular file, an empty path, a
//                    read-only directory: one warning, misses, no throw
//   Processes        2 and 4 processes (fork) racing put/get on the same keys; threads too
//   Archive          export/import round trip; damaged, foreign and missing archives
//
// The tests run as root, so chmod cannot make a directory unwritable: the unusable cases use
// paths that even root cannot create (under /proc, or below a regular file).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "compile/disk_cache.h"
#include "log_capture.h"
#include "test_util.h"

namespace trainrt::detail {
namespace {

namespace fs = std::filesystem;
using test::LogCapture;
using test::TempDir;

// ---- helpers -------------------------------------------------------------------------------

/// A deterministic payload for `key_index` (the same key always has the same content, as in
/// a content-addressed cache), `size` bytes including zero bytes.
std::string payload_for(int key_index, std::size_t size) {
  std::mt19937 rng(static_cast<unsigned>(key_index) * 7919u + 1);
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

Digest key_for(int i) { return sha256("kernel source " + std::to_string(i)); }

fs::path entry_file(const fs::path& dir, const Digest& key, CacheKind kind) {
  const std::string hex = key.hex();
  return dir / hex.substr(0, 2) / (hex + "." + kind_extension(kind));
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all_to(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::set<std::string> listed_keys(const DiskCache& cache) {
  std::set<std::string> keys;
  for (const CacheEntryInfo& e : cache.list(false)) keys.insert(e.key.hex());
  return keys;
}

/// Every temporary file under `dir`.
std::vector<fs::path> temp_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (is_temp_file_name(e.path().filename().string())) out.push_back(e.path());
  return out;
}

// ---- Format --------------------------------------------------------------------------------

TEST(DiskCacheFormat, HeaderBytesAreExplicitLittleEndian) {
  TempDir dir;
  DiskCache cache(dir.path());
  const Digest key = key_for(1);
  const std::string payload = "0123456789";
  ASSERT_TRUE(cache.put(key, CacheKind::cuda_module, payload, 1.5));
  const std::string file = read_all(entry_file(dir.path(), key, CacheKind::cuda_module));
  ASSERT_EQ(file.size(), kEntryHeaderBytes + payload.size());
  EXPECT_EQ(file.substr(0, 8), "TRTCACHE");
  EXPECT_EQ(file.substr(8, 4), std::string("\x01\x00\x00\x00", 4));  // version 1
  EXPECT_EQ(file[12], 2);                                            // cuda_module
  EXPECT_EQ(file.substr(13, 32), std::string(reinterpret_cast<const char*>(key.bytes.data()), 32));
  EXPECT_EQ(file.substr(45, 8), std::string("\x0a\0\0\0\0\0\0\0", 8));    // 10 payload bytes
  EXPECT_EQ(file.substr(53, 8), std::string("\0\0\0\0\0\0\xf8\x3f", 8));  // 1.5 as binary64
  const Digest sum = sha256(payload);
  EXPECT_EQ(file.substr(61, 32), std::string(reinterpret_cast<const char*>(sum.bytes.data()), 32));
  EXPECT_EQ(file.substr(93), payload);
}

TEST(DiskCacheFormat, ByteSizes) {
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("500M"), 500ull << 20);
  EXPECT_EQ(parse_byte_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("2g"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("64KB"), 64ull << 10);
  EXPECT_EQ(parse_byte_size("1T"), 1ull << 40);
  EXPECT_EQ(parse_byte_size("12B"), 12u);
  EXPECT_EQ(parse_byte_size("0"), 0u);
  for (const char* bad :
       {"", "M", "-1", "1.2.3", ".5G", "5.G", "10X", "10 M", "10MBB", "99999999999999999999", "20000000000G", "1e3"})
    EXPECT_FALSE(parse_byte_size(bad)) << bad;
  EXPECT_EQ(format_bytes(812), "812 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(2ull << 30), "2.0 GiB");
}

// ---- GetPut --------------------------------------------------------------------------------

TEST(DiskCacheGetPut, RoundTripAndMiss) {
  TempDir dir;
  DiskCache cache(dir.path());
  EXPECT_TRUE(cache.readable());
  EXPECT_TRUE(cache.writable());
  EXPECT_EQ(cache.directory(), fs::path(dir.path()));
  EXPECT_FALSE(cache.get(key_for(1), CacheKind::cpu_module));
  const std::string payload = payload_for(1, 5000);
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::cpu_module, payload, 0.25));
  const auto entry = cache.get(key_for(1), CacheKind::cpu_module);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->payload, payload);
  EXPECT_EQ(entry->compile_seconds, 0.25);
  // The layout: <dir>/<2 hex>/<64 hex>.cpu, nothing temporary left behind.
  EXPECT_TRUE(fs::is_regular_file(entry_file(dir.path(), key_for(1), CacheKind::cpu_module)));
  EXPECT_TRUE(temp_files(dir.path()).empty());
  EXPECT_EQ(cache.total_bytes(), kEntryHeaderBytes + payload.size());
  // An empty payload is an entry like any other.
  ASSERT_TRUE(cache.put(key_for(2), CacheKind::program, "", 0));
  const auto empty = cache.get(key_for(2), CacheKind::program);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->payload, "");
}

TEST(DiskCacheGetPut, NewCacheOverTheSameDirectoryHits) {
  TempDir dir;
  {
    DiskCache first(dir.path());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(first.put(key_for(i), CacheKind::cuda_module, payload_for(i, 100 * i), i));
  }
  DiskCache second(dir.path());
  for (int i = 0; i < 10; ++i) {
    const auto e = second.get(key_for(i), CacheKind::cuda_module);
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(e->payload, payload_for(i, 100 * i));
    EXPECT_EQ(e->compile_seconds, i);
  }
  EXPECT_EQ(second.list(true).size(), 10u);
}

TEST(DiskCacheGetPut, WrongKindIsAMissAndKindsCoexist) {
  TempDir dir;
  LogCapture logs;
  DiskCache cache(dir.path());
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::cpu_module, "cpu bytes", 1));
  EXPECT_FALSE(cache.get(key_for(1), CacheKind::cuda_module));
  EXPECT_FALSE(cache.get(key_for(1), CacheKind::program));
  ASSERT_TRUE(cache.get(key_for(1), CacheKind::cpu_module));  // untouched by those misses
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::cuda_module, "cubin bytes", 2));
  EXPECT_EQ(cache.get(key_for(1), CacheKind::cpu_module)->payload, "cpu bytes");
  EXPECT_EQ(cache.get(key_for(1), CacheKind::cuda_module)->payload, "cubin bytes");
  EXPECT_TRUE(logs.warnings().empty()) << logs.dump();
}

TEST(DiskCacheGetPut, PutReplacesAndNonFiniteSecondsAreZero) {
  TempDir dir;
  DiskCache cache(dir.path());
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::program, "old", 1));
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::program, "new", std::nan("")));
  const auto e = cache.get(key_for(1), CacheKind::program);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->payload, "new");
  EXPECT_EQ(e->compile_seconds, 0);
  EXPECT_EQ(cache.list(true).size(), 1u);
}

TEST(DiskCacheGetPut, DefaultDirectoryFollowsTheEnvironment) {
  struct Saved {
    const char* name;
    std::optional<std::string> value;
  };
  std::vector<Saved> saved;
  for (const char* n : {"TRAINRT_CACHE_DIR", "XDG_CACHE_HOME", "HOME"}) {
    const char* v = std::getenv(n);
    saved.push_back({n, v ? std::optional<std::string>(v) : std::nullopt});
  }
  ::setenv("TRAINRT_CACHE_DIR", "/a/cache", 1);
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/a/cache"));
  ::setenv("TRAINRT_CACHE_DIR", "", 1);  // empty counts as unset
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/xdg/trainrt"));
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_EQ(DiskCache::default_directory(), fs::path("/home/u/.cache/trainrt"));
  ::unsetenv("HOME");
  EXPECT_EQ(DiskCache::default_directory().filename(), fs::path("trainrt-cache-" + std::to_string(::getuid())));
  for (const Saved& s : saved) {
    if (s.value) ::setenv(s.name, s.value->c_str(), 1);
    else ::unsetenv(s.name);
  }
}

// ---- Damaged -------------------------------------------------------------------------------

/// Puts an entry, damages its file with `damage`, and expects: get() misses with exactly one
/// warning naming the file and `problem`, the file is gone, and the next put replaces it.
void expect_logged_miss_then_replaced(const std::function<void(const fs::path& file, const fs::path& dir)>& damage,
                                      const std::string& problem, CacheKind kind = CacheKind::cpu_module) {
  TempDir dir;
  DiskCache cache(dir.path());
  const Digest key = key_for(1);
  const std::string payload = payload_for(1, 3000);
  ASSERT_TRUE(cache.put(key, kind, payload, 2.0));
  const fs::path file = entry_file(dir.path(), key, kind);
  damage(file, dir.path());
  {
    LogCapture logs;
    EXPECT_FALSE(cache.get(key, kind));
    const auto warnings = logs.warnings();
    ASSERT_EQ(warnings.size(), 1u) << logs.dump();
    EXPECT_NE(warnings[0].text.find(file.string()), std::string::npos) << warnings[0].text;
    EXPECT_NE(warnings[0].text.find(problem), std::string::npos) << warnings[0].text;
  }
  EXPECT_FALSE(fs::exists(file)) << "a damaged entry is removed";
  ASSERT_TRUE(cache.put(key, kind, payload, 2.0));
  const auto e = cache.get(key, kind);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->payload, payload);
}

TEST(DiskCacheDamaged, FlippedPayloadByte) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path&) {
        std::string b = read_all(f);
        b[kEntryHeaderBytes + 1234] ^= 0x10;
        write_all_to(f, b);
      },
      "checksum");
}

TEST(DiskCacheDamaged, TruncatedPayload) {
  expect_logged_miss_then_replaced([](const fs::path& f, const fs::path&) { fs::resize_file(f, fs::file_size(f) - 1); },
                                   "truncated");
}

TEST(DiskCacheDamaged, TruncatedHeader) {
  expect_logged_miss_then_replaced([](const fs::path& f, const fs::path&) { fs::resize_file(f, 40); }, "truncated");
}

TEST(DiskCacheDamaged, ZeroLength) {
  expect_logged_miss_then_replaced([](const fs::path& f, const fs::path&) { fs::resize_file(f, 0); }, "zero-length");
}

TEST(DiskCacheDamaged, RandomBytes) {
  expect_logged_miss_then_replaced([](const fs::path& f, const fs::path&) { write_all_to(f, payload_for(99, 4000)); },
                                   "bad magic");
}

TEST(DiskCacheDamaged, AnotherFormatVersion) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path&) {
        std::string b = read_all(f);
        b[8] = 2;  // as a future format would write it
        write_all_to(f, b);
      },
      "format version 2");
}

TEST(DiskCacheDamaged, ForeignText) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path&) {
        write_all_to(f, "#!/bin/sh\necho this is not a cache entry\n" + std::string(100, '#'));
      },
      "bad magic");
}

TEST(DiskCacheDamaged, WrongKeyInside) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path& dir) {
        DiskCache other(dir);
        ASSERT_TRUE(other.put(key_for(2), CacheKind::cpu_module, "another key's entry", 1));
        fs::copy_file(entry_file(dir, key_for(2), CacheKind::cpu_module), f, fs::copy_options::overwrite_existing);
      },
      "holds key " + key_for(2).hex());
}

TEST(DiskCacheDamaged, WrongKindInside) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path& dir) {
        DiskCache other(dir);
        ASSERT_TRUE(other.put(key_for(1), CacheKind::program, "a program", 1));
        fs::copy_file(entry_file(dir, key_for(1), CacheKind::program), f, fs::copy_options::overwrite_existing);
      },
      "holds a program entry", CacheKind::cuda_module);
}

TEST(DiskCacheDamaged, StrayBytesAfterThePayload) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path&) { std::ofstream(f, std::ios::binary | std::ios::app) << "xx"; },
      "stray bytes");
}

TEST(DiskCacheDamaged, BadCompileSeconds) {
  expect_logged_miss_then_replaced(
      [](const fs::path& f, const fs::path&) {
        std::string b = read_all(f);
        std::memset(b.data() + 53, 0xff, 8);  // a NaN
        write_all_to(f, b);
      },
      "compile_seconds");
}

TEST(DiskCacheDamaged, ListAndVerifyReportProblems) {
  TempDir dir;
  DiskCache cache(dir.path());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, 500), 1));
  // Entry 1: a flipped payload byte (only a checksum sees it); entry 2: zero length.
  const fs::path f1 = entry_file(dir.path(), key_for(1), CacheKind::cpu_module);
  std::string b = read_all(f1);
  b.back() ^= 1;
  write_all_to(f1, b);
  fs::resize_file(entry_file(dir.path(), key_for(2), CacheKind::cpu_module), 0);
  // A file not named like an entry is not ours and is not listed.
  write_all_to(fs::path(dir.path()) / "README", "hello");

  auto problems = [](const std::vector<CacheEntryInfo>& entries) {
    std::map<std::string, std::string> out;
    for (const auto& e : entries) out[e.key.hex()] = e.valid ? "ok" : e.problem;
    return out;
  };
  const auto quick = problems(cache.list(false));
  ASSERT_EQ(quick.size(), 3u);
  EXPECT_EQ(quick.at(key_for(0).hex()), "ok");
  EXPECT_EQ(quick.at(key_for(1).hex()), "ok");
  EXPECT_EQ(quick.at(key_for(2).hex()), "zero-length file");
  const auto full = problems(cache.list(true));
  EXPECT_EQ(full.at(key_for(0).hex()), "ok");
  EXPECT_NE(full.at(key_for(1).hex()).find("checksum"), std::string::npos);
  EXPECT_EQ(full.at(key_for(2).hex()), "zero-length file");
}

// ---- Lru -----------------------------------------------------------------------------------

constexpr std::size_t kPayload = 1000;
constexpr std::uint64_t kEntryBytes = kEntryHeaderBytes + kPayload;

void set_age(const fs::path& dir, int key, std::chrono::minutes age) {
  fs::last_write_time(entry_file(dir, key_for(key), CacheKind::cpu_module), fs::file_time_type::clock::now() - age);
}

TEST(DiskCacheLru, EvictsLeastRecentlyUsedOverTheCap) {
  TempDir dir;
  // Room for 4.5 entries: the fifth put evicts down to 15/16 of the cap, which is one entry.
  DiskCache cache(dir.path(), kEntryBytes * 9 / 2);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, kPayload), 1));
  set_age(dir.path(), 0, std::chrono::minutes(40));
  set_age(dir.path(), 1, std::chrono::minutes(50));  // the oldest
  set_age(dir.path(), 2, std::chrono::minutes(30));
  set_age(dir.path(), 3, std::chrono::minutes(20));
  ASSERT_TRUE(cache.put(key_for(4), CacheKind::cpu_module, payload_for(4, kPayload), 1));
  EXPECT_EQ(listed_keys(cache),
            (std::set<std::string>{key_for(0).hex(), key_for(2).hex(), key_for(3).hex(), key_for(4).hex()}));

  // A hit makes entry 0 the most recently used: now entry 2 is the oldest.
  ASSERT_TRUE(cache.get(key_for(0), CacheKind::cpu_module));
  ASSERT_TRUE(cache.put(key_for(5), CacheKind::cpu_module, payload_for(5, kPayload), 1));
  EXPECT_EQ(listed_keys(cache),
            (std::set<std::string>{key_for(0).hex(), key_for(3).hex(), key_for(4).hex(), key_for(5).hex()}));
  EXPECT_LE(cache.total_bytes(), cache.cap_bytes());
}

TEST(DiskCacheLru, ListIsOldestFirst) {
  TempDir dir;
  DiskCache cache(dir.path());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, 10), 1));
  for (int i = 0; i < 4; ++i) set_age(dir.path(), i, std::chrono::minutes(10 + (i * 7) % 4));
  std::vector<std::string> order;
  for (const auto& e : cache.list(false)) order.push_back(e.key.hex());
  // Ages 10, 13, 12, 11 minutes: oldest first is 1, 2, 3, 0.
  EXPECT_EQ(order, (std::vector<std::string>{key_for(1).hex(), key_for(2).hex(), key_for(3).hex(), key_for(0).hex()}));
}

TEST(DiskCacheLru, PruneRemovesInvalidThenOldest) {
  TempDir dir;
  DiskCache cache(dir.path());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, kPayload), 1));
  for (int i = 0; i < 5; ++i) set_age(dir.path(), i, std::chrono::minutes(100 - 10 * i));  // 0 oldest
  // Entry 4 (the newest) is foreign: it goes first.
  write_all_to(entry_file(dir.path(), key_for(4), CacheKind::cpu_module), std::string(kEntryBytes, 'x'));
  set_age(dir.path(), 4, std::chrono::minutes(1));
  EXPECT_EQ(cache.prune(3 * kEntryBytes), 2u);
  EXPECT_EQ(listed_keys(cache), (std::set<std::string>{key_for(1).hex(), key_for(2).hex(), key_for(3).hex()}));
  EXPECT_EQ(cache.prune(3 * kEntryBytes), 0u);
  EXPECT_EQ(cache.prune(kEntryBytes), 2u);
  EXPECT_EQ(listed_keys(cache), (std::set<std::string>{key_for(3).hex()}));
  EXPECT_EQ(cache.clear(), 1u);
  EXPECT_EQ(cache.total_bytes(), 0u);
  EXPECT_TRUE(cache.list(false).empty());
  // Usable after a clear.
  ASSERT_TRUE(cache.put(key_for(7), CacheKind::cpu_module, "x", 1));
  EXPECT_TRUE(cache.get(key_for(7), CacheKind::cpu_module));
}

TEST(DiskCacheLru, StaleTemporaryFilesAreIgnoredThenCleaned) {
  TempDir dir;
  DiskCache cache(dir.path());
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::cpu_module, "entry", 1));
  const fs::path sub = entry_file(dir.path(), key_for(1), CacheKind::cpu_module).parent_path();
  const fs::path stale = sub / temp_file_name(key_for(1).hex() + ".cpu");
  const fs::path fresh = sub / temp_file_name(key_for(1).hex() + ".cpu");
  const fs::path stale_probe = fs::path(dir.path()) / temp_file_name("probe");
  for (const auto& p : {stale, fresh, stale_probe}) write_all_to(p, std::string(5000, 't'));
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(2));
  fs::last_write_time(stale_probe, fs::file_time_type::clock::now() - std::chrono::hours(2));
  EXPECT_EQ(cache.list(true).size(), 1u);
  EXPECT_EQ(cache.total_bytes(), kEntryHeaderBytes + 5);
  EXPECT_EQ(cache.prune(1ull << 30), 0u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_probe));
  EXPECT_TRUE(fs::exists(fresh)) << "a writer may still be about to rename it";
  EXPECT_TRUE(cache.get(key_for(1), CacheKind::cpu_module));
}

TEST(DiskCacheLru, AnEntryLargerThanTheCapIsNotStored) {
  TempDir dir;
  DiskCache cache(dir.path(), 4096);
  ASSERT_TRUE(cache.put(key_for(1), CacheKind::cpu_module, std::string(100, 'a'), 1));
  EXPECT_FALSE(cache.put(key_for(2), CacheKind::cpu_module, std::string(5000, 'b'), 1));
  EXPECT_FALSE(cache.get(key_for(2), CacheKind::cpu_module));
  EXPECT_TRUE(cache.get(key_for(1), CacheKind::cpu_module)) << "nothing was evicted for it";
}

TEST(DiskCacheLru, TheCapHoldsAcrossManyPuts) {
  TempDir dir;
  DiskCache cache(dir.path(), 20 * kEntryBytes);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, kPayload), 1));
    ASSERT_LE(cache.total_bytes(), cache.cap_bytes()) << "after put " << i;
  }
  // The newest entry always survives.
  EXPECT_TRUE(cache.get(key_for(99), CacheKind::cpu_module));
}

// ---- Unusable ------------------------------------------------------------------------------

void expect_unusable(const fs::path& dir) {
  LogCapture logs;
  std::optional<DiskCache> cache;
  ASSERT_NO_THROW(cache.emplace(dir, 1 << 20));
  EXPECT_FALSE(cache->readable());
  EXPECT_FALSE(cache->writable());
  EXPECT_FALSE(cache->get(key_for(1), CacheKind::cpu_module));
  EXPECT_FALSE(cache->put(key_for(1), CacheKind::cpu_module, "payload", 1));
  EXPECT_FALSE(cache->get(key_for(1), CacheKind::cpu_module));
  EXPECT_TRUE(cache->list(true).empty());
  EXPECT_EQ(cache->total_bytes(), 0u);
  EXPECT_EQ(cache->prune(0), 0u);
  EXPECT_EQ(cache->clear(), 0u);
  const auto warnings = logs.warnings();
  ASSERT_EQ(warnings.size(), 1u) << logs.dump();
  EXPECT_NE(warnings[0].text.find("unusable"), std::string::npos) << warnings[0].text;
  EXPECT_NE(warnings[0].text.find(dir.string()), std::string::npos) << warnings[0].text;
}

TEST(DiskCacheUnusable, PathUnderProc) { expect_unusable("/proc/trainrt-no-such-dir/cache"); }

TEST(DiskCacheUnusable, ParentIsARegularFile) {
  TempDir dir;
  write_all_to(dir.file("file"), "a regular file");
  expect_unusable(fs::path(dir.file("file")) / "cache");
}

TEST(DiskCacheUnusable, EmptyPath) { expect_unusable(""); }

TEST(DiskCacheUnusable, ImportIntoItThrows) {
  LogCapture logs;
  DiskCache cache("/proc/trainrt-no-such-dir/cache");
  test::expect_error([&] { cache.import_archive("/nonexistent.archive"); }, ErrorKind::Io, {"not writable"});
}

TEST(DiskCacheUnusable, ReadOnlyDirectoryReadsButDoesNotStore) {
  LogCapture logs;
  DiskCache cache("/proc/self");  // exists and lists, but not even root can create files in it
  EXPECT_TRUE(cache.readable());
  EXPECT_FALSE(cache.writable());
  EXPECT_FALSE(cache.get(key_for(1), CacheKind::cpu_module));
  EXPECT_FALSE(cache.put(key_for(1), CacheKind::cpu_module, "payload", 1));
  const auto warnings = logs.warnings();
  ASSERT_EQ(warnings.size(), 1u) << logs.dump();
  EXPECT_NE(warnings[0].text.find("read-only"), std::string::npos) << warnings[0].text;
}

// ---- Processes -----------------------------------------------------------------------------

constexpr int kRaceKeys = 6;

std::string race_payload(int key) { return payload_for(key, 20000 + 7000 * static_cast<std::size_t>(key)); }

/// The body of one racing process: its own DiskCache on `dir`, then `rounds` of put and get
/// of every key, starting at a different key in each process. Returns an exit code.
int race_child(const fs::path& dir, int child, int rounds) {
  DiskCache cache(dir);
  if (!cache.writable()) return 10;
  for (int r = 0; r < rounds; ++r) {
    for (int j = 0; j < kRaceKeys; ++j) {
      const int key = (j + child) % kRaceKeys;
      if (!cache.put(key_for(key), CacheKind::cuda_module, race_payload(key), key)) return 11;
      const auto e = cache.get(key_for(key), CacheKind::cuda_module);
      if (!e) return 12;
      if (e->payload != race_payload(key) || e->compile_seconds != key) return 13;
    }
  }
  return 0;
}

void race_processes(int processes, int rounds) {
  TempDir dir;
  // A pipe as the starting gun: children block reading it until the parent closes it.
  int gun[2];
  ASSERT_EQ(::pipe(gun), 0);
  std::vector<pid_t> children;
  for (int c = 0; c < processes; ++c) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(gun[1]);
      char byte;
      while (::read(gun[0], &byte, 1) > 0) {
      }
      ::_exit(race_child(dir.path(), c, rounds));  // _exit: no atexit handlers, no gtest teardown
    }
    children.push_back(pid);
  }
  ::close(gun[0]);
  ::close(gun[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child " << pid << " did not exit normally";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << pid << " (10: unwritable, 11: put failed, 12: miss, 13: wrong "
                                      << "payload)";
  }
  DiskCache cache(dir.path());
  const auto entries = cache.list(true);
  EXPECT_EQ(entries.size(), static_cast<std::size_t>(kRaceKeys));
  for (const auto& e : entries) EXPECT_TRUE(e.valid) << e.path << ": " << e.problem;
  for (int k = 0; k < kRaceKeys; ++k) {
    const auto e = cache.get(key_for(k), CacheKind::cuda_module);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->payload, race_payload(k));
  }
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

TEST(DiskCacheProcesses, TwoRacePutAndGet) { race_processes(2, 20); }

TEST(DiskCacheProcesses, FourRacePutAndGet) { race_processes(4, 20); }

TEST(DiskCacheProcesses, ThreadsRacePutAndGet) {
  TempDir dir;
  DiskCache shared(dir.path());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 20; ++r) {
        for (int j = 0; j < kRaceKeys; ++j) {
          const int key = (j + t) % kRaceKeys;
          if (!shared.put(key_for(key), CacheKind::program, race_payload(key), 1)) ++failures;
          const auto e = shared.get(key_for(key), CacheKind::program);
          if (!e || e->payload != race_payload(key)) ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(shared.list(true).size(), static_cast<std::size_t>(kRaceKeys));
  EXPECT_TRUE(temp_files(dir.path()).empty());
}

// ---- Archive -------------------------------------------------------------------------------

/// A cache with entries of every kind, and its archive.
struct Exported {
  TempDir source;
  std::string archive;
  std::size_t count = 0;
  Exported() : archive(source.file("cache.archive")) {
    DiskCache cache(fs::path(source.path()) / "cache");
    const CacheKind kinds[] = {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program};
    for (int i = 0; i < 6; ++i)
      EXPECT_TRUE(cache.put(key_for(i), kinds[i % 3], payload_for(i, 100 * static_cast<std::size_t>(i) + 1), 0.5 * i));
    count = cache.export_archive(archive);
  }
};

TEST(DiskCacheArchive, ExportImportRoundTrip) {
  Exported ex;
  EXPECT_EQ(ex.count, 6u);
  TempDir target;
  DiskCache cache(target.path());
  EXPECT_EQ(cache.import_archive(ex.archive), 6u);
  const CacheKind kinds[] = {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program};
  for (int i = 0; i < 6; ++i) {
    const auto e = cache.get(key_for(i), kinds[i % 3]);
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(e->payload, payload_for(i, 100 * static_cast<std::size_t>(i) + 1));
    EXPECT_EQ(e->compile_seconds, 0.5 * i);
  }
  // Importing again is harmless; the archive of the new cache has the same entries.
  EXPECT_EQ(cache.import_archive(ex.archive), 6u);
  EXPECT_EQ(cache.list(true).size(), 6u);
  EXPECT_EQ(cache.export_archive(target.file("again.archive")), 6u);
  EXPECT_EQ(fs::file_size(target.file("again.archive")), fs::file_size(ex.archive));
  EXPECT_TRUE(temp_files(target.path()).empty());
}

TEST(DiskCacheArchive, ExportLeavesOutInvalidEntries) {
  TempDir dir;
  DiskCache cache(fs::path(dir.path()) / "cache");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cache.put(key_for(i), CacheKind::cpu_module, payload_for(i, 300), 1));
  const fs::path f = entry_file(cache.directory(), key_for(1), CacheKind::cpu_module);
  std::string b = read_all(f);
  b.back() ^= 1;
  write_all_to(f, b);
  LogCapture logs;
  EXPECT_EQ(cache.export_archive(dir.file("a.archive")), 2u);
  EXPECT_EQ(logs.count(spdlog::level::warn, f.string()), 1u) << logs.dump();
  TempDir target;
  DiskCache imported(target.path());
  EXPECT_EQ(imported.import_archive(dir.file("a.archive")), 2u);
  EXPECT_FALSE(imported.get(key_for(1), CacheKind::cpu_module));
}

/// Damages a copy of the archive with `damage`; import must throw Io naming the archive and
/// `part`, and install nothing.
void expect_import_rejects(const std::function<void(std::string&)>& damage, const std::string& part) {
  Exported ex;
  std::string bytes = read_all(ex.archive);
  damage(bytes);
  const std::string damaged = ex.source.file("damaged.archive");
  write_all_to(damaged, bytes);
  TempDir target;
  DiskCache cache(target.path());
  test::expect_error([&] { cache.import_archive(damaged); }, ErrorKind::Io, {damaged, "damaged", part});
  EXPECT_TRUE(cache.list(false).empty()) << "nothing is installed from a damaged archive";
}

TEST(DiskCacheArchive, FlippedByteInTheLastEntry) {
  expect_import_rejects([](std::string& b) { b[b.size() - 2] ^= 4; }, "entry 5: checksum mismatch");
}

TEST(DiskCacheArchive, Truncated) {
  expect_import_rejects([](std::string& b) { b.resize(b.size() - 10); }, "entry 5: truncated");
}

TEST(DiskCacheArchive, TruncatedHeader) {
  expect_import_rejects([](std::string& b) { b.resize(10); }, "header: truncated");
}

TEST(DiskCacheArchive, Empty) {
  expect_import_rejects([](std::string& b) { b.clear(); }, "header: truncated");
}

TEST(DiskCacheArchive, ForeignFile) {
  expect_import_rejects([](std::string& b) { b = payload_for(3, 5000); }, "bad magic");
}

TEST(DiskCacheArchive, AnotherVersion) {
  expect_import_rejects([](std::string& b) { b[8] = 9; }, "archive format version 9");
}

TEST(DiskCacheArchive, StrayBytesAtTheEnd) {
  expect_import_rejects([](std::string& b) { b += "junk"; }, "4 stray bytes");
}

TEST(DiskCacheArchive, ImpossibleEntryCount) {
  expect_import_rejects([](std::string& b) { b[19] = 0x7f; }, "entries");
}

TEST(DiskCacheArchive, MissingFileIsNotFound) {
  TempDir target;
  DiskCache cache(target.path());
  test::expect_error([&] { cache.import_archive(target.file("nope.archive")); }, ErrorKind::NotFound, {"nope.archive"});
}

TEST(DiskCacheArchive, UnwritableDestinationThrows) {
  TempDir dir;
  DiskCache cache(dir.path());
  write_all_to(dir.file("file"), "x");
  test::expect_error([&] { cache.export_archive(fs::path(dir.file("file")) / "a.archive"); }, ErrorKind::Io,
                     {"a.archive"});
}

}  // namespace
}  // namespace trainrt::detail
