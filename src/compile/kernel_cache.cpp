// compile/kernel_cache.cpp — KernelCache: the in-process map with one compile per key
// (a shared_future per key: the first caller makes, later callers wait on it), the disk
// layer behind it, and the statistics.
#include "compile/kernel_cache.h"

#include <chrono>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {
namespace {

template <class T>
bool is_ready(const std::shared_future<T>& f) {
  return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

}  // namespace

std::optional<std::filesystem::path> configured_cache_directory() {
  const char* v = std::getenv("TRAINRT_CACHE_DIR");
  if (v != nullptr && (*v == '\0' || std::string_view(v) == "off")) return std::nullopt;
  return DiskCache::default_directory();
}

std::uint64_t configured_cache_cap() {
  constexpr std::uint64_t kDefault = 2ull << 30;
  const char* v = std::getenv("TRAINRT_CACHE_MAX_BYTES");
  if (v == nullptr || *v == '\0') return kDefault;
  if (const auto cap = parse_byte_size(v)) return *cap;
  log().warn("TRAINRT_CACHE_MAX_BYTES='{}' is not a size (e.g. 500M, 2G); using the default of 2 GiB", v);
  return kDefault;
}

KernelCache& KernelCache::global() {
  static KernelCache cache(configured_cache_directory(), configured_cache_cap());
  return cache;
}

KernelCache::KernelCache(std::optional<std::filesystem::path> dir, std::uint64_t cap_bytes) {
  if (dir) disk_ = std::make_unique<DiskCache>(std::move(*dir), cap_bytes);
}

std::shared_ptr<const std::string> KernelCache::get_or_make(const Digest& key, CacheKind kind,
                                                            const std::function<std::string()>& make) {
  const Key k{key, kind};
  std::promise<Made> promise;
  std::shared_future<Made> wait_for;
  {
    std::lock_guard lock(mutex_);
    auto it = memory_.find(k);
    if (it == memory_.end()) {
      memory_.emplace(k, Slot{promise.get_future().share(), std::this_thread::get_id()});
    } else if (is_ready(it->second.result)) {
      // Failed makes are erased before their future turns ready, so this one holds a value.
      const Made& m = it->second.result.get();
      ++stats_.memory_hits;
      stats_.saved_seconds += m.compile_seconds;
      log().debug("kernel cache: memory hit {} {}", kind_name(kind), key.hex());
      return m.payload;
    } else if (it->second.maker == std::this_thread::get_id()) {
      fail(ErrorKind::Internal, cat("internal error (a libtrainrt bug, please report): the kernel cache's make() for ",
                                    kind_name(kind), " ", key.hex(), " asked for its own key"));
    } else {
      wait_for = it->second.result;
    }
  }

  if (wait_for.valid()) {
    log().debug("kernel cache: waiting for {} {} made by another thread", kind_name(kind), key.hex());
    const Made& m = wait_for.get();  // rethrows what make() threw
    std::lock_guard lock(mutex_);
    ++stats_.memory_hits;
    stats_.saved_seconds += m.compile_seconds;
    return m.payload;
  }

  // This thread makes it: disk first, then make().
  try {
    Made made;
    std::optional<CacheEntry> entry = disk_ ? disk_->get(key, kind) : std::nullopt;
    if (entry) {
      made.compile_seconds = entry->compile_seconds;
      made.payload = std::make_shared<const std::string>(std::move(entry->payload));
      std::lock_guard lock(mutex_);
      ++stats_.disk_hits;
      stats_.bytes_read += made.payload->size();
      stats_.saved_seconds += made.compile_seconds;
    } else {
      {
        std::lock_guard lock(mutex_);
        ++stats_.misses;
      }
      log().debug("kernel cache: miss {} {}, compiling", kind_name(kind), key.hex());
      const auto start = std::chrono::steady_clock::now();
      std::string payload = make();
      made.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      made.payload = std::make_shared<const std::string>(std::move(payload));
      const bool stored = disk_ && disk_->put(key, kind, *made.payload, made.compile_seconds);
      std::lock_guard lock(mutex_);
      ++stats_.compiles;
      stats_.compile_seconds += made.compile_seconds;
      if (stored) stats_.bytes_written += made.payload->size();
    }
    promise.set_value(made);
    return made.payload;
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      memory_.erase(k);
    }
    promise.set_exception(std::current_exception());
    throw;
  }
}

std::shared_ptr<const std::string> KernelCache::find(const Digest& key, CacheKind kind) {
  const Key k{key, kind};
  {
    std::lock_guard lock(mutex_);
    auto it = memory_.find(k);
    if (it != memory_.end() && is_ready(it->second.result)) {
      const Made& m = it->second.result.get();
      ++stats_.memory_hits;
      stats_.saved_seconds += m.compile_seconds;
      log().debug("kernel cache: memory hit {} {}", kind_name(kind), key.hex());
      return m.payload;
    }
  }
  if (disk_) {
    if (std::optional<CacheEntry> entry = disk_->get(key, kind)) {
      Made made{std::make_shared<const std::string>(std::move(entry->payload)), entry->compile_seconds};
      std::promise<Made> ready;
      ready.set_value(made);
      std::lock_guard lock(mutex_);
      memory_.try_emplace(k, Slot{ready.get_future().share(), std::thread::id()});
      ++stats_.disk_hits;
      stats_.bytes_read += made.payload->size();
      stats_.saved_seconds += made.compile_seconds;
      return made.payload;
    }
  }
  std::lock_guard lock(mutex_);
  ++stats_.misses;
  log().debug("kernel cache: miss {} {}", kind_name(kind), key.hex());
  return nullptr;
}

void KernelCache::put(const Digest& key, CacheKind kind, std::string payload, double compile_seconds) {
  Made made{std::make_shared<const std::string>(std::move(payload)), compile_seconds};
  const bool stored = disk_ && disk_->put(key, kind, *made.payload, compile_seconds);
  std::promise<Made> ready;
  ready.set_value(made);
  std::lock_guard lock(mutex_);
  auto it = memory_.find(Key{key, kind});
  if (it == memory_.end()) memory_.emplace(Key{key, kind}, Slot{ready.get_future().share(), std::thread::id()});
  else if (is_ready(it->second.result)) it->second = Slot{ready.get_future().share(), std::thread::id()};
  ++stats_.compiles;
  stats_.compile_seconds += compile_seconds;
  if (stored) stats_.bytes_written += made.payload->size();
}

CacheStats KernelCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void KernelCache::reset_stats() {
  std::lock_guard lock(mutex_);
  stats_ = CacheStats{};
}

std::size_t KernelCache::memory_entries() const {
  std::lock_guard lock(mutex_);
  return memory_.size();
}

void KernelCache::clear_memory() {
  std::lock_guard lock(mutex_);
  std::erase_if(memory_, [](const auto& kv) { return is_ready(kv.second.result); });
}

}  // namespace trainrt::detail
