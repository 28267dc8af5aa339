// tools/trainrt_cache.cpp — trainrt-cache: inspect, check, shrink, clear, export and import
// the kernel cache directory (compile/disk_cache.h) from the command line.
//
//   trainrt-cache [--dir DIR] list | stats | verify | prune SIZE | clear | export FILE | import FILE
//
// The directory is DIR, else the one the library uses (TRAINRT_CACHE_DIR, XDG_CACHE_HOME,
// HOME; see DiskCache::default_directory); the cap is TRAINRT_CACHE_MAX_BYTES or 2 GiB.
// Exit status: 0 success; 1 verify found damaged entries; 2 a usage error or a failure (bad
// size, unknown command, unusable directory, unreadable or damaged archive).
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compile/disk_cache.h"
#include "compile/kernel_cache.h"
#include "trainrt/errors.hpp"

namespace trainrt::detail {
namespace {

constexpr const char* kUsage =
    "usage: trainrt-cache [--dir DIR] COMMAND\n"
    "\n"
    "commands:\n"
    "  list          one line per entry, most recently used first: key, kind, size, age\n"
    "  stats         entries and bytes by kind, the total against the cap, stored compile time\n"
    "  verify        check every entry's checksum; print the bad ones (exit status 1 if any)\n"
    "  prune SIZE    remove least recently used entries until at most SIZE remain (500M, 2G)\n"
    "  clear         remove every entry\n"
    "  export FILE   write every valid entry into one archive file\n"
    "  import FILE   check an archive and install its entries\n"
    "\n"
    "DIR defaults to $TRAINRT_CACHE_DIR, else $XDG_CACHE_HOME/trainrt, else ~/.cache/trainrt.\n"
    "The cap is $TRAINRT_CACHE_MAX_BYTES (default 2G).\n";

/// A failure to report on stderr with exit status 2.
struct UsageError {
  std::string message;
};

/// "42s", "3m", "5h", "2d": the largest unit that fits, rounded down.
std::string format_age(std::filesystem::file_time_type last_used) {
  const auto age =
      std::chrono::duration_cast<std::chrono::seconds>(std::filesystem::file_time_type::clock::now() - last_used)
          .count();
  const long long s = std::max<long long>(0, age);
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

int cmd_list(const DiskCache& cache) {
  auto entries = cache.list(false);
  std::reverse(entries.begin(), entries.end());  // most recently used first
  for (const CacheEntryInfo& e : entries) {
    std::printf("%s  %-11s  %10s  %5s%s%s\n", e.key.hex().substr(0, 16).c_str(), kind_name(e.kind),
                format_bytes(e.bytes).c_str(), format_age(e.last_used).c_str(),
                e.valid ? "" : "  INVALID: ", e.problem.c_str());
  }
  return 0;
}

int cmd_stats(const DiskCache& cache) {
  struct Sums {
    std::size_t entries = 0;
    std::uint64_t bytes = 0;
    double seconds = 0;
  };
  const std::array kinds = {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program};
  std::array<Sums, 3> by_kind{};
  Sums total, invalid;
  for (const CacheEntryInfo& e : cache.list(false)) {
    Sums& k = by_kind[static_cast<std::size_t>(e.kind) - 1];
    for (Sums* s : {&k, &total}) {
      ++s->entries;
      s->bytes += e.bytes;
      s->seconds += e.compile_seconds;
    }
    if (!e.valid) {
      ++invalid.entries;
      invalid.bytes += e.bytes;
    }
  }
  std::printf("directory     %s\n", cache.directory().c_str());
  for (std::size_t i = 0; i < kinds.size(); ++i)
    std::printf("%-12s  %6zu entries  %10s  compile time %.1f s\n", kind_name(kinds[i]), by_kind[i].entries,
                format_bytes(by_kind[i].bytes).c_str(), by_kind[i].seconds);
  if (invalid.entries > 0)
    std::printf("%-12s  %6zu entries  %10s  (run verify; prune removes them first)\n", "invalid", invalid.entries,
                format_bytes(invalid.bytes).c_str());
  const double used = cache.cap_bytes() ? 100.0 * static_cast<double>(total.bytes) / cache.cap_bytes() : 0.0;
  std::printf("%-12s  %6zu entries  %10s  of a %s cap (%.0f%%)\n", "total", total.entries,
              format_bytes(total.bytes).c_str(), format_bytes(cache.cap_bytes()).c_str(), used);
  std::printf("stored compile time %.1f s (what a warm run saves)\n", total.seconds);
  return 0;
}

int cmd_verify(const DiskCache& cache) {
  std::size_t bad = 0;
  const auto entries = cache.list(true);
  for (const CacheEntryInfo& e : entries) {
    if (e.valid) continue;
    ++bad;
    std::printf("BAD  %s  %s  %s: %s\n", e.key.hex().c_str(), kind_name(e.kind), e.path.c_str(), e.problem.c_str());
  }
  std::printf("%zu entries checked, %zu bad\n", entries.size(), bad);
  return bad > 0 ? 1 : 0;
}

int cmd_prune(DiskCache& cache, std::string_view size_text) {
  const auto size = parse_byte_size(size_text);
  if (!size)
    throw UsageError{"prune: '" + std::string(size_text) + "' is not a size (examples: 500M, 2G, 1.5GiB, 4096)"};
  const std::uint64_t before = cache.total_bytes();
  const std::size_t removed = cache.prune(*size);
  std::printf("removed %zu entries: %s -> %s\n", removed, format_bytes(before).c_str(),
              format_bytes(cache.total_bytes()).c_str());
  return 0;
}

int run(std::vector<std::string_view> args) {
  std::optional<std::filesystem::path> dir;
  // Options first: --dir DIR or --dir=DIR; --help.
  while (!args.empty() && args.front().starts_with("-")) {
    const std::string_view opt = args.front();
    args.erase(args.begin());
    if (opt == "-h" || opt == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (opt == "--dir") {
      if (args.empty()) throw UsageError{"--dir needs a directory"};
      dir = std::filesystem::path(args.front());
      args.erase(args.begin());
    } else if (opt.starts_with("--dir=")) {
      dir = std::filesystem::path(opt.substr(6));
    } else {
      throw UsageError{"unknown option '" + std::string(opt) + "'"};
    }
  }
  if (args.empty()) throw UsageError{"no command given"};
  const std::string_view command = args.front();
  const std::size_t want_args = command == "prune" || command == "export" || command == "import" ? 1 : 0;
  const bool known =
      command == "list" || command == "stats" || command == "verify" || command == "clear" || want_args == 1;
  if (!known) throw UsageError{"unknown command '" + std::string(command) + "'"};
  if (args.size() != want_args + 1)
    throw UsageError{std::string(command) + (want_args ? " takes one argument" : " takes no argument")};

  if (!dir) {
    dir = configured_cache_directory();
    if (!dir) throw UsageError{"the disk cache is off (TRAINRT_CACHE_DIR=off); name a directory with --dir"};
  }
  DiskCache cache(*dir, configured_cache_cap());
  if (!cache.readable()) throw UsageError{"cannot use the cache directory '" + dir->string() + "'"};
  const bool writes = command == "prune" || command == "clear" || command == "import";
  if (writes && !cache.writable())
    throw UsageError{std::string(command) + ": the cache directory '" + dir->string() + "' is not writable"};

  if (command == "list") return cmd_list(cache);
  if (command == "stats") return cmd_stats(cache);
  if (command == "verify") return cmd_verify(cache);
  if (command == "prune") return cmd_prune(cache, args[1]);
  if (command == "clear") {
    std::printf("removed %zu entries\n", cache.clear());
    return 0;
  }
  const std::filesystem::path file(args[1]);
  if (command == "export") {
    std::printf("exported %zu entries to %s\n", cache.export_archive(file), file.c_str());
  } else {
    std::printf("imported %zu entries from %s\n", cache.import_archive(file), file.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace trainrt::detail

int main(int argc, char** argv) {
  try {
    return trainrt::detail::run(std::vector<std::string_view>(argv + 1, argv + argc));
  } catch (const trainrt::detail::UsageError& e) {
    std::fprintf(stderr, "trainrt-cache: %s\n(trainrt-cache --help lists the commands)\n", e.message.c_str());
  } catch (const trainrt::Error& e) {
    std::fprintf(stderr, "trainrt-cache: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainrt-cache: %s\n", e.what());
  }
  return 2;
}
