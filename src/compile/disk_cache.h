// compile/disk_cache.h — the kernel cache's content-addressed directory on disk (DESIGN
// decision 4): compiled CPU modules, CUBINs and programs, each under the SHA-256 key of what
// made it, shared by every process that opens the same directory.
//
// Layout: <dir>/<first key byte as 2 hex digits>/<64-hex key>.<ext>, ext by kind ("cpu",
// "cuda", "prog"), so one key may hold one entry of each kind. The bytes of an entry file are
// described in compile/cache_format.h (header with magic, version, kind, key, size,
// compile_seconds and a SHA-256 checksum; then the payload).
//
// Concurrency: an entry is published by writing ".tmp-…" in the same subdirectory, fsync and
// rename, so readers see whole entries only, and processes racing on one key all succeed
// (the last rename wins; every candidate is a complete valid entry). Temporary files are
// invisible to list/prune/total_bytes; those older than an hour (left by a crashed process)
// are removed by prune, clear and the first size accounting of a process. All members are
// safe to call from several threads at once.
//
// Least recently used: an entry's last-used time is its file's modification time; put sets
// it and every hit refreshes it. The size cap counts entry files only (not directories).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compile/cache_format.h"
#include "core/sha256.h"

namespace trainrt::detail {

/// An entry read back: what was stored by put().
struct CacheEntry {
  std::string payload;
  double compile_seconds = 0;  // seconds it cost to make
};

/// One entry file as list() sees it.
struct CacheEntryInfo {
  Digest key;
  CacheKind kind = CacheKind::cpu_module;
  std::uint64_t bytes = 0;  // file size (header + payload)
  std::filesystem::file_time_type last_used;
  bool valid = false;
  std::string problem;         // why not valid (empty when valid)
  double compile_seconds = 0;  // from the header (0 when the header is unreadable)
  std::filesystem::path path;  // the entry file
};

class DiskCache {
 public:
  /// $TRAINRT_CACHE_DIR, else $XDG_CACHE_HOME/trainrt, else $HOME/.cache/trainrt (each only
  /// when set and non-empty), else <temp dir>/trainrt-cache-<uid>. Reads the environment on
  /// every call. Never throws.
  static std::filesystem::path default_directory();

  /// Opens (creating if needed) `dir`, with a cap of `cap_bytes` on the entries' total size.
  /// Never throws for an unusable directory: it logs ONE warning and then behaves as
  /// always-miss, put() does nothing (writable() and readable() false). A directory that can
  /// be read but not written (a shipped read-only cache) gives one warning too, then hits
  /// but never stores.
  explicit DiskCache(std::filesystem::path dir, std::uint64_t cap_bytes = 2ull << 30);

  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;
  /// Closes nothing on disk: entries written are already published.
  ~DiskCache() = default;

  /// Whether put() can store entries (a probe file could be created at construction).
  bool writable() const noexcept { return writable_; }
  /// Whether get() can find entries (the directory exists and can be listed).
  bool readable() const noexcept { return readable_; }
  const std::filesystem::path& directory() const noexcept { return dir_; }
  std::uint64_t cap_bytes() const noexcept { return cap_; }

  /// The entry of `kind` under `key`, or nullopt. A damaged / truncated / zero-length /
  /// foreign / wrong-kind / wrong-key file is a miss that is logged (warn) and removed so a
  /// later put replaces it. A hit refreshes the entry's last-used time (LRU). Never throws
  /// for I/O problems (beyond std::bad_alloc).
  std::optional<CacheEntry> get(const Digest& key, CacheKind kind);

  /// Publishes atomically: write a temp file in the same directory, fsync, rename over the
  /// final name. Several processes putting the same key at once all succeed and leave one
  /// valid entry. Then, when the total exceeds the cap, evicts least-recently-used entries
  /// until it is at most 15/16 of the cap (the slack spares a full cache a directory scan
  /// on every put). An entry larger than the cap is not stored. Returns whether the entry
  /// was stored. Never throws for I/O problems: logs (the first failure as a warning, later
  /// ones at debug level) and returns false.
  bool put(const Digest& key, CacheKind kind, std::string_view payload, double compile_seconds);

  /// Every entry file, least recently used first. Each has its header checked (and with
  /// `verify_checksums` its payload hashed); invalid ones are listed with valid false and
  /// the problem. Files that are not named like entries and temporary files are skipped.
  /// Never throws (an unreadable directory lists nothing).
  std::vector<CacheEntryInfo> list(bool verify_checksums) const;

  /// The total size of the entry files. Never throws.
  std::uint64_t total_bytes() const;

  /// Removes entries until their total is at most `bytes`: entries with an invalid header
  /// first, then least recently used. Also removes stale temporary files. Returns the
  /// number of entries removed. Never throws.
  std::size_t prune(std::uint64_t bytes);

  /// Removes every entry (and stale temporary files); returns the number of entries removed.
  /// Never throws.
  std::size_t clear();

  /// Writes one archive file holding every valid entry (checksums verified), atomically
  /// (temporary file in the same directory, fsync, rename). Returns the number of entries.
  /// Throws trainrt::Error (Io) when the archive cannot be written.
  ///
  /// Archive format: magic "TRTARCHV", format version u32, entry count u64 (little-endian),
  /// then each entry file's bytes in full (header + payload, cache_format.h).
  std::size_t export_archive(const std::filesystem::path& file) const;

  /// Validates every entry of the archive `file` (header, size, checksum), then installs
  /// each atomically, as put() does (entries keep their compile_seconds), and applies the
  /// cap. Returns the number of entries. Throws trainrt::Error: NotFound for a missing
  /// file; Io for a damaged or foreign archive, naming the file, the entry and the problem
  /// (nothing is installed then), or when this cache is not writable.
  std::size_t import_archive(const std::filesystem::path& file);

 private:
  /// How much of each entry file a scan looks at.
  enum class ScanDepth { stat, headers, checksums };
  struct Scan {
    std::vector<CacheEntryInfo> entries;  // least recently used first
    std::uint64_t total = 0;
  };
  /// Lists the entry files (with ScanDepth::stat every entry counts as valid); with
  /// `clean_temps` also removes stale temporary files.
  Scan scan(ScanDepth depth, bool clean_temps) const;
  /// Removes entries of `scan` (invalid ones first, then least recently used) until the
  /// total is at most `target`; returns the number removed and updates scan.total.
  static std::size_t evict(Scan& scan, std::uint64_t target);
  /// Accounts `added` new bytes and evicts when the estimated total exceeds the cap.
  void account_and_evict(std::uint64_t added);
  /// Writes one entry atomically under its key and kind, then applies the cap. False with
  /// `*problem` set when it could not be written.
  bool install(const EntryHeader& header, std::string_view payload, std::string* problem);
  std::filesystem::path entry_path(const Digest& key, CacheKind kind) const;
  /// Logs a failed write: a warning the first time, at debug level afterwards.
  void log_write_failure(const std::string& what);

  std::filesystem::path dir_;
  std::uint64_t cap_;
  bool readable_ = false;
  bool writable_ = false;
  std::atomic<bool> write_failure_logged_{false};

  // The estimated total size: exact after a scan, then grown by this process's own puts
  // (other processes' puts are seen at the next scan, which happens whenever the estimate
  // crosses the cap). Guarded by accounting_mutex_, which also serializes evictions.
  std::mutex accounting_mutex_;
  std::optional<std::uint64_t> estimated_total_;
};

}  // namespace trainrt::detail
