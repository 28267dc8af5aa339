// compile/kernel_cache.h — the kernel cache as the compiler sees it: an in-process map in
// front of the disk directory (compile/disk_cache.h), compiling each key at most once per
// process even when TBB worker threads ask for it at the same time, and counting what the
// cache saved (DESIGN decision 4: in-process map -> disk directory -> compile).
//
// The environment of KernelCache::global():
//   TRAINRT_CACHE_DIR        the directory (default: DiskCache::default_directory());
//                            "off" or "" turns the disk layer off
//   TRAINRT_CACHE_MAX_BYTES  the size cap, e.g. "500M", "2G" (default 2 GiB)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "compile/disk_cache.h"
#include "core/sha256.h"

namespace trainrt::detail {

/// The disk directory the environment asks for: nullopt when TRAINRT_CACHE_DIR is "off" or
/// "", else DiskCache::default_directory(). Never throws.
std::optional<std::filesystem::path> configured_cache_directory();
/// The size cap the environment asks for: TRAINRT_CACHE_MAX_BYTES parsed by
/// parse_byte_size, or 2 GiB when unset; a malformed value logs a warning and gives 2 GiB.
/// Never throws.
std::uint64_t configured_cache_cap();

/// What a KernelCache did since it was made (or since reset_stats).
struct CacheStats {
  std::uint64_t memory_hits = 0;    // found in the in-process map (waiters on a compile too)
  std::uint64_t disk_hits = 0;      // read from the disk directory
  std::uint64_t misses = 0;         // found in neither
  std::uint64_t compiles = 0;       // make() calls that returned, plus put() calls
  std::uint64_t bytes_read = 0;     // payload bytes of disk hits
  std::uint64_t bytes_written = 0;  // payload bytes stored on disk
  double compile_seconds = 0;       // spent compiling in this process
  double saved_seconds = 0;         // compile_seconds recorded in entries that were hits
};

class KernelCache {
 public:
  /// The process-wide cache over DiskCache(default_directory(), cap from
  /// $TRAINRT_CACHE_MAX_BYTES or 2 GiB); TRAINRT_CACHE_DIR=off (or "") disables the disk
  /// layer. Made on first use (the environment is read then); never throws for an unusable
  /// directory or a malformed cap (a warning, then the default cap).
  static KernelCache& global();

  /// A cache over the directory `dir` (nullopt: memory only) with a cap of `cap_bytes`.
  /// Never throws for an unusable directory (see DiskCache).
  explicit KernelCache(std::optional<std::filesystem::path> dir, std::uint64_t cap_bytes = 2ull << 30);

  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;
  /// Drops the in-memory entries; the disk directory stays.
  ~KernelCache() = default;

  /// Memory map, then disk, then `make()` (which returns the payload; its duration is
  /// recorded as compile_seconds and stored with the entry). Concurrent calls for the same
  /// key and kind compile once: the others wait for the first and share its result. Returns
  /// a shared immutable payload, never null.
  /// If make() throws, nothing is stored and the exception propagates to the caller and to
  /// every waiter; a later call tries make() again. A make() that asks for its own key (on
  /// the same thread) would wait forever: it throws trainrt::Error (Internal) instead.
  std::shared_ptr<const std::string> get_or_make(const Digest& key, CacheKind kind,
                                                 const std::function<std::string()>& make);

  /// Lookup without making (memory then disk); nullptr on a miss (counted as one). A key
  /// whose make() is still running elsewhere is looked up on disk only, without waiting.
  std::shared_ptr<const std::string> find(const Digest& key, CacheKind kind);

  /// Stores a payload made by the caller (e.g. one of several kernels compiled in one
  /// translation unit) in memory and on disk, with the seconds it cost; counted as a
  /// compile. Replaces a finished entry of the same key and kind in memory; leaves one that
  /// is still being made alone. Never throws for I/O problems (DiskCache::put logs them).
  void put(const Digest& key, CacheKind kind, std::string payload, double compile_seconds);

  /// A copy of the counters.
  CacheStats stats() const;
  /// Sets every counter to zero.
  void reset_stats();

  /// The disk layer; nullptr when it is off.
  DiskCache* disk() noexcept { return disk_.get(); }

  /// Entries held in memory (finished or being made).
  std::size_t memory_entries() const;
  /// Drops the finished entries held in memory (payloads still in use stay alive through
  /// their shared pointers); entries being made stay. The disk is untouched.
  void clear_memory();

 private:
  struct Key {
    Digest digest;
    CacheKind kind{};
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return DigestHash{}(k.digest) ^ static_cast<std::size_t>(k.kind);
    }
  };
  struct Made {
    std::shared_ptr<const std::string> payload;
    double compile_seconds = 0;
  };
  struct Slot {
    std::shared_future<Made> result;
    std::thread::id maker;  // the thread making it (meaningful while not ready)
  };

  mutable std::mutex mutex_;  // guards memory_ and stats_
  std::unordered_map<Key, Slot, KeyHash> memory_;
  CacheStats stats_;
  std::unique_ptr<DiskCache> disk_;
};

}  // namespace trainrt::detail
