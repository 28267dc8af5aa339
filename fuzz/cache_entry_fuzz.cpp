// fuzz/cache_entry_fuzz.cpp — kernel-cache entry files (compile/cache_format.h, DiskCache).
//
// One input is one entry file. It is checked three ways:
//   1. decode_entry_header on the bytes; a header that decodes must encode back to the same
//      93 bytes (the format has one spelling per header);
//   2. read_entry_file with the payload read and the checksum verified;
//   3. placed in a scratch cache directory under the name its own header promises (the
//      key and kind it claims, so the fuzzer reaches the size and checksum checks) and
//      looked up with DiskCache::get and listed with list(true); a damaged file is a miss
//      that get() removes, a good one must come back with exactly its payload.
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "compile/cache_format.h"
#include "compile/disk_cache.h"
#include "core/error.h"
#include "fuzz_util.h"

namespace {

using namespace trainrt::detail;
namespace fs = std::filesystem;

constexpr const char* kTarget = "cache_entry";

/// Key and kind for the file name: what the header claims where it has those bytes, else
/// a fixed key of a CPU module.
std::pair<Digest, CacheKind> claimed_name(std::string_view bytes) {
  Digest key;
  CacheKind kind = CacheKind::cpu_module;
  if (bytes.size() >= 45) {
    std::copy_n(reinterpret_cast<const std::uint8_t*>(bytes.data()) + 13, key.bytes.size(), key.bytes.begin());
    const auto k = static_cast<std::uint8_t>(bytes[12]);
    if (k >= 1 && k <= 3) kind = static_cast<CacheKind>(k);
  }
  return {key, kind};
}

void check_header(std::string_view bytes) {
  std::string problem;
  const auto header = decode_entry_header(bytes, &problem);
  if (!header) {
    if (problem.empty()) fuzz::property_failed(kTarget, "decode_entry_header rejected a header without a reason");
    return;
  }
  if (encode_entry_header(*header) != bytes.substr(0, kEntryHeaderBytes))
    fuzz::property_failed(kTarget, "a decoded header does not encode back to its bytes");
}

void check_file(std::string_view bytes) {
  const fuzz::MemFile file(bytes);
  const EntryRead r = read_entry_file(file.path(), {.kind = std::nullopt, .key = std::nullopt, .read_payload = true});
  if (r.status == EntryRead::Status::ok) {
    if (bytes.size() != kEntryHeaderBytes + r.payload.size() || bytes.substr(kEntryHeaderBytes) != r.payload)
      fuzz::property_failed(kTarget, "read_entry_file returned a payload other than the file's");
  } else if (r.status != EntryRead::Status::damaged) {
    fuzz::property_failed(kTarget, cat("read_entry_file: status ", static_cast<int>(r.status), ": ", r.problem));
  }
}

void check_cache(std::string_view bytes) {
  static DiskCache cache(fs::path(fuzz::scratch_dir()) / "cache_entry");
  const auto [key, kind] = claimed_name(bytes);
  const std::string hex = key.hex();
  const fs::path path = cache.directory() / hex.substr(0, 2) / cat(hex, ".", kind_extension(kind));
  fs::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fuzz::property_failed(kTarget, "cannot write the entry file into the scratch cache");
  }
  const auto listed = cache.list(true);
  if (listed.size() != 1) fuzz::property_failed(kTarget, cat("list() found ", listed.size(), " entries, not 1"));
  const auto entry = cache.get(key, kind);
  if (listed.front().valid != entry.has_value())
    fuzz::property_failed(kTarget, "list(true) and get() disagree about whether the entry is valid");
  if (entry && (bytes.size() < kEntryHeaderBytes || entry->payload != bytes.substr(kEntryHeaderBytes)))
    fuzz::property_failed(kTarget, "get() returned a payload other than the file's");
  if (!entry && fs::exists(path)) fuzz::property_failed(kTarget, "get() kept a damaged entry");
  cache.clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::quiet_library_logs();
  const std::string_view bytes = fuzz::as_text(data, size);
  fuzz::expect_clean(kTarget, [&] {
    check_header(bytes);
    check_file(bytes);
    check_cache(bytes);
  });
  return 0;
}
