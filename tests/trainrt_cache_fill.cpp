// tests/trainrt_cache_fill.cpp — fills a kernel cache directory with known entries for the
// trainrt-cache tool's script test (trainrt_cache_tool_test.sh).
//
//   trainrt_cache_fill DIR COUNT
//
// Entry i (0-based): kind cycling cpu_module, cuda_module, program; a payload of 1000 * (i+1)
// lower-case letters; compile_seconds 1.5 * (i+1); last used 30 s, 10 min, 3 h, 2 d, 5 d,
// 40 d ago for i = 0..5 (then 41 d, 42 d, ...). Prints "<64-hex key> <kind>" per entry, most
// recently used first. Exit status 0, or 1 when an entry could not be stored.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "compile/disk_cache.h"

int main(int argc, char** argv) {
  using namespace trainrt::detail;
  using std::chrono::seconds;
  if (argc != 3) {
    std::fprintf(stderr, "usage: trainrt_cache_fill DIR COUNT\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const int count = std::atoi(argv[2]);
  DiskCache cache(dir);
  const CacheKind kinds[] = {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program};
  const seconds ages[] = {seconds(30), seconds(600), seconds(3 * 3600), seconds(2 * 86400), seconds(5 * 86400)};
  for (int i = 0; i < count; ++i) {
    const Digest key = sha256("trainrt_cache_fill " + std::to_string(i));
    const CacheKind kind = kinds[i % 3];
    std::string payload(1000 * static_cast<std::size_t>(i + 1), 'a');
    for (std::size_t j = 0; j < payload.size(); ++j) payload[j] = static_cast<char>('a' + (j * 7 + i) % 26);
    if (!cache.put(key, kind, payload, 1.5 * (i + 1))) return 1;
    const seconds age = i < 5 ? ages[i] : seconds((35 + i) * 86400);
    const std::string hex = key.hex();
    const auto file = dir / hex.substr(0, 2) / (hex + "." + kind_extension(kind));
    std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now() - age);
    std::printf("%s %s\n", hex.c_str(), kind_name(kind));
  }
  return 0;
}
