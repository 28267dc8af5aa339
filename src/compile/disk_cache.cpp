// compile/disk_cache.cpp — DiskCache: opening the directory, get/put, listing, the size cap
// and its LRU eviction. The archive import/export lives in compile/cache_archive.cpp, the
// entry bytes and atomic publishing in compile/cache_format.cpp.
#include "compile/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {
namespace fs = std::filesystem;

namespace {

// A temporary file this old was left by a process that died between creating and renaming
// it (a live writer holds one for milliseconds: the time to write and fsync one entry).
constexpr auto kStaleTempAge = std::chrono::hours(1);

const char* env_value(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// Key and kind from an entry file name "<64 lower-case hex>.<ext>"; nullopt for other names.
std::optional<std::pair<Digest, CacheKind>> parse_entry_name(std::string_view name) {
  if (name.size() < 66 || name[64] != '.' || !is_hex(name.substr(0, 64))) return std::nullopt;
  const auto kind = kind_from_extension(name.substr(65));
  const auto key = Digest::from_hex(name.substr(0, 64));
  if (!kind || !key) return std::nullopt;
  return std::pair{*key, *kind};
}

}  // namespace

fs::path DiskCache::default_directory() {
  if (const char* v = env_value("TRAINRT_CACHE_DIR")) return {v};
  if (const char* v = env_value("XDG_CACHE_HOME")) return fs::path(v) / "trainrt";
  if (const char* v = env_value("HOME")) return fs::path(v) / ".cache" / "trainrt";
  std::error_code ec;
  fs::path tmp = fs::temp_directory_path(ec);
  if (ec) tmp = "/tmp";
  return tmp / cat("trainrt-cache-", ::getuid());
}

DiskCache::DiskCache(fs::path dir, std::uint64_t cap_bytes) : dir_(std::move(dir)), cap_(cap_bytes) {
  std::string problem;
  std::error_code ec;
  if (dir_.empty()) {
    problem = "the path is empty";
  } else if (fs::create_directories(dir_, ec); ec) {
    problem = cat("cannot create it: ", ec.message());
  } else if (!fs::is_directory(dir_, ec)) {
    problem = "not a directory";
  } else if (::access(dir_.c_str(), R_OK | X_OK) != 0) {
    problem = cat("cannot list it: ", errno_text(errno));
  } else {
    readable_ = true;
    // Probe: can a file be created here? (access(W_OK) says yes to root on a read-only
    // mount's or /proc's directories.)
    const fs::path probe = dir_ / temp_file_name("probe");
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
      writable_ = true;
    } else {
      problem = cat("cannot create files in it: ", errno_text(errno));
    }
  }
  if (!readable_) {
    log().warn(
        "kernel cache directory '{}' is unusable ({}); the disk cache is off: every lookup misses and "
        "nothing is stored",
        dir_.string(), problem);
  } else if (!writable_) {
    log().warn("kernel cache directory '{}' is read-only ({}); its entries are used but nothing new is stored",
               dir_.string(), problem);
  }
}

fs::path DiskCache::entry_path(const Digest& key, CacheKind kind) const {
  const std::string hex = key.hex();
  return dir_ / hex.substr(0, 2) / cat(hex, ".", kind_extension(kind));
}

void DiskCache::log_write_failure(const std::string& what) {
  if (!write_failure_logged_.exchange(true)) {
    log().warn("kernel cache: {} (the entry is not stored; further write failures in '{}' are logged at debug level)",
               what, dir_.string());
  } else {
    log().debug("kernel cache: {}", what);
  }
}

std::optional<CacheEntry> DiskCache::get(const Digest& key, CacheKind kind) {
  if (!readable_) return std::nullopt;
  const fs::path path = entry_path(key, kind);
  EntryRead r = read_entry_file(path, {.kind = kind, .key = key, .read_payload = true});
  switch (r.status) {
    case EntryRead::Status::missing:
      log().debug("kernel cache: disk miss {} {}", kind_name(kind), key.hex());
      return std::nullopt;
    case EntryRead::Status::io_error:
      log().warn("kernel cache: cannot read '{}': {}; treated as a miss", path.string(), r.problem);
      return std::nullopt;
    case EntryRead::Status::damaged: {
      // Removed only if it is still the file we read: another process may have just
      // renamed a good entry over it.
      const bool removed = writable_ && remove_if_same_file(path, r.device, r.inode);
      log().warn("kernel cache: damaged entry '{}' ({}); treated as a miss{}", path.string(), r.problem,
                 removed ? " and removed" : "");
      return std::nullopt;
    }
    case EntryRead::Status::ok: break;
  }
  // Refresh the last-used time (the file's mtime) for LRU eviction. Failure (a read-only
  // cache, the file evicted meanwhile) only costs LRU precision.
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  log().debug("kernel cache: disk hit {} {} ({} bytes)", kind_name(kind), key.hex(), r.payload.size());
  return CacheEntry{std::move(r.payload), r.header.compile_seconds};
}

bool DiskCache::install(const EntryHeader& header, std::string_view payload, std::string* problem) {
  const fs::path path = entry_path(header.key, header.kind);
  std::error_code ec;
  // create_directories, not create_directory: the cache directory itself may have been
  // removed since it was opened (rm -rf by a user).
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    *problem = cat("cannot create '", path.parent_path().string(), "': ", ec.message());
    return false;
  }
  if (!publish_file(path, encode_entry_header(header), payload, problem)) return false;
  account_and_evict(kEntryHeaderBytes + payload.size());
  return true;
}

bool DiskCache::put(const Digest& key, CacheKind kind, std::string_view payload, double compile_seconds) {
  if (!writable_) return false;
  if (kEntryHeaderBytes + payload.size() > cap_) {
    log().debug("kernel cache: {} {} of {} bytes is larger than the cap ({} bytes); not stored", kind_name(kind),
                key.hex(), payload.size(), cap_);
    return false;
  }
  EntryHeader header;
  header.kind = kind;
  header.key = key;
  header.payload_bytes = payload.size();
  header.compile_seconds = std::isfinite(compile_seconds) && compile_seconds > 0 ? compile_seconds : 0.0;
  header.checksum = sha256(payload);
  std::string problem;
  if (!install(header, payload, &problem)) {
    log_write_failure(problem);
    return false;
  }
  log().debug("kernel cache: stored {} {} ({} bytes)", kind_name(kind), key.hex(), payload.size());
  return true;
}

DiskCache::Scan DiskCache::scan(ScanDepth depth, bool clean_temps) const {
  Scan s;
  if (!readable_) return s;
  const auto now = fs::file_time_type::clock::now();
  auto handle_temp = [&](const fs::directory_entry& f) {
    std::error_code ec;
    if (!clean_temps || !writable_) return;
    const auto t = f.last_write_time(ec);
    if (!ec && now - t > kStaleTempAge && fs::remove(f.path(), ec))
      log().debug("kernel cache: removed stale temporary file '{}'", f.path().string());
  };
  std::error_code ec;
  for (fs::directory_iterator top(dir_, ec), end; !ec && top != end; top.increment(ec)) {
    const std::string sub_name = top->path().filename().string();
    if (is_temp_file_name(sub_name)) handle_temp(*top);  // a probe file left by a crash
    if (sub_name.size() != 2 || !is_hex(sub_name) || !top->is_directory(ec)) continue;
    std::error_code sub_ec;
    for (fs::directory_iterator it(top->path(), sub_ec); !sub_ec && it != end; it.increment(sub_ec)) {
      const std::string name = it->path().filename().string();
      if (is_temp_file_name(name)) {
        handle_temp(*it);
        continue;
      }
      const auto parsed = parse_entry_name(name);
      if (!parsed || name.compare(0, 2, sub_name) != 0) continue;  // not ours
      CacheEntryInfo info;
      info.key = parsed->first;
      info.kind = parsed->second;
      info.path = it->path();
      std::error_code file_ec;
      info.last_used = fs::last_write_time(info.path, file_ec);
      if (file_ec) continue;  // removed meanwhile
      if (depth == ScanDepth::stat) {
        info.bytes = fs::file_size(info.path, file_ec);
        if (file_ec) continue;
        info.valid = true;
      } else {
        const EntryRead r = read_entry_file(
            info.path, {.kind = info.kind, .key = info.key, .verify_checksum = depth == ScanDepth::checksums});
        if (r.status == EntryRead::Status::missing) continue;
        info.bytes = r.file_bytes;
        info.valid = r.status == EntryRead::Status::ok;
        info.problem = r.problem;
        if (info.valid) info.compile_seconds = r.header.compile_seconds;
      }
      s.total += info.bytes;
      s.entries.push_back(std::move(info));
    }
  }
  std::sort(s.entries.begin(), s.entries.end(), [](const CacheEntryInfo& a, const CacheEntryInfo& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.path < b.path;
  });
  return s;
}

std::size_t DiskCache::evict(Scan& scan, std::uint64_t target) {
  std::size_t removed = 0;
  // Invalid entries go first, then the least recently used (entries are sorted by age).
  for (const bool invalid_pass : {true, false}) {
    for (const CacheEntryInfo& e : scan.entries) {
      if (scan.total <= target) return removed;
      if (invalid_pass == e.valid) continue;
      std::error_code ec;
      if (fs::remove(e.path, ec)) ++removed;
      if (!ec) scan.total -= std::min(scan.total, e.bytes);  // gone, by us or another process
    }
  }
  return removed;
}

void DiskCache::account_and_evict(std::uint64_t added) {
  std::lock_guard lock(accounting_mutex_);
  if (!estimated_total_) {
    // First put of this DiskCache: measure (the new entry included) and tidy up.
    estimated_total_ = scan(ScanDepth::stat, /*clean_temps=*/true).total;
  } else {
    *estimated_total_ += added;
  }
  if (*estimated_total_ <= cap_) return;
  Scan s = scan(ScanDepth::stat, /*clean_temps=*/false);
  const std::uint64_t before = s.total;
  const std::size_t removed = evict(s, cap_ - cap_ / 16);
  estimated_total_ = s.total;
  if (removed > 0)
    log().debug("kernel cache: evicted {} least recently used entries ({} -> {} bytes, cap {})", removed, before,
                s.total, cap_);
}

std::vector<CacheEntryInfo> DiskCache::list(bool verify_checksums) const {
  return scan(verify_checksums ? ScanDepth::checksums : ScanDepth::headers, false).entries;
}

std::uint64_t DiskCache::total_bytes() const { return scan(ScanDepth::stat, false).total; }

std::size_t DiskCache::prune(std::uint64_t bytes) {
  if (!writable_) return 0;
  std::lock_guard lock(accounting_mutex_);
  Scan s = scan(ScanDepth::headers, /*clean_temps=*/true);
  const std::size_t removed = evict(s, bytes);
  estimated_total_ = s.total;
  return removed;
}

std::size_t DiskCache::clear() {
  if (!writable_) return 0;
  std::lock_guard lock(accounting_mutex_);
  std::size_t removed = 0;
  for (const CacheEntryInfo& e : scan(ScanDepth::stat, /*clean_temps=*/true).entries) {
    std::error_code ec;
    if (fs::remove(e.path, ec)) ++removed;
  }
  estimated_total_.reset();  // measured again at the next put
  return removed;
}

}  // namespace trainrt::detail
