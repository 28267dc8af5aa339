// fuzz/cache_archive_fuzz.cpp — kernel-cache archives (DiskCache::import_archive, the format
// declared in compile/disk_cache.h). One input is one archive file, imported into an empty
// scratch cache: a damaged archive must throw Io and install nothing; an archive that
// imports must leave exactly its entries, every one of them valid.
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "compile/disk_cache.h"
#include "core/error.h"
#include "fuzz_util.h"

namespace {

using namespace trainrt::detail;
namespace fs = std::filesystem;

constexpr const char* kTarget = "cache_archive";

void import(std::string_view bytes) {
  static DiskCache cache(fs::path(fuzz::scratch_dir()) / "cache_archive");
  const fs::path archive = fs::path(fuzz::scratch_dir()) / "input.trtarchive";
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fuzz::property_failed(kTarget, "cannot write the archive into the scratch directory");
  }
  cache.clear();
  std::size_t installed = 0;
  try {
    installed = cache.import_archive(archive);
  } catch (const trainrt::Error& e) {
    if (e.kind() != trainrt::ErrorKind::Io)
      fuzz::property_failed(kTarget, cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
    if (!cache.list(false).empty())
      fuzz::property_failed(kTarget, cat("a damaged archive installed entries: ", e.what()));
    return;
  }
  // Entries with the same key and kind overwrite each other, so fewer files than entries
  // is fine; more, or an invalid one, is not.
  const auto entries = cache.list(true);
  if (entries.size() > installed)
    fuzz::property_failed(kTarget, cat(entries.size(), " entries after importing ", installed));
  for (const CacheEntryInfo& e : entries)
    if (!e.valid) fuzz::property_failed(kTarget, cat("an imported entry is invalid: ", e.problem));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::quiet_library_logs();
  fuzz::expect_clean(kTarget, [&] { import(fuzz::as_text(data, size)); });
  return 0;
}
