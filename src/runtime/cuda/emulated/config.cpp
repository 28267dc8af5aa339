// runtime/cuda/emulated/config.cpp — parsing TRAINRT_CUDA_DEVICE and the emulator's settings.
#include "runtime/cuda/emulated/config.h"

#include <charconv>
#include <cstdlib>
#include <string_view>

#include "compile/cache_format.h"
#include "core/error.h"

namespace trainrt::detail {

namespace {

bool parse_int(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

EmulatorConfig parse_emulator_config(const char* device, const char* arch, const char* memory, const char* check,
                                     const char* seed) {
  EmulatorConfig c;
  const std::string_view d = device ? device : "";
  if (d.empty()) return c;
  if (d.rfind("emulated", 0) != 0) {
    c.requested = true;
    c.error = cat("TRAINRT_CUDA_DEVICE='", d, "' is not 'emulated' or 'emulated:N' (unset it for the real driver)");
    return c;
  }
  c.requested = true;
  const std::string_view rest = d.substr(8);
  if (!rest.empty()) {
    std::uint64_t n = 0;
    if (rest[0] != ':' || !parse_int(rest.substr(1), n) || n < 1 || n > 64) {
      c.error = cat("TRAINRT_CUDA_DEVICE='", d, "': the device count after 'emulated:' must be 1 to 64");
      return c;
    }
    c.devices = static_cast<int>(n);
  }
  if (arch && *arch) {
    std::string_view a = arch;
    if (a.rfind("sm_", 0) == 0) a.remove_prefix(3);
    std::uint64_t major = 0, minor = 0;
    const auto dot = a.find('.');
    bool ok = false;
    if (dot != std::string_view::npos) {
      ok = parse_int(a.substr(0, dot), major) && parse_int(a.substr(dot + 1), minor) && minor < 10;
    } else if (std::uint64_t v = 0; parse_int(a, v)) {
      major = v / 10;
      minor = v % 10;
      ok = true;
    }
    if (!ok || major < 5 || major > 12) {
      c.error = cat("TRAINRT_CUDA_EMULATED_ARCH='", arch, "' is not a compute capability such as 90, 9.0 or sm_80");
      return c;
    }
    c.arch = static_cast<int>(major * 10 + minor);
  }
  if (memory && *memory) {
    const auto bytes = parse_byte_size(memory);
    if (!bytes || *bytes < (1u << 20)) {
      c.error = cat("TRAINRT_CUDA_EMULATED_MEMORY='", memory, "' is not a size of at least 1M (e.g. 512M, 8G)");
      return c;
    }
    c.memory = *bytes;
  }
  if (check && *check) {
    const std::string_view v = check;
    if (v != "0" && v != "1") {
      c.error = cat("TRAINRT_CUDA_EMULATED_CHECK='", v, "' is not 0 or 1");
      return c;
    }
    c.check = v == "1";
  }
  if (seed && *seed && !parse_int(seed, c.seed)) {
    c.error = cat("TRAINRT_CUDA_EMULATED_SEED='", seed, "' is not a non-negative integer");
    return c;
  }
  return c;
}

const EmulatorConfig& emulator_config() {
  // NOLINTBEGIN(concurrency-mt-unsafe): read once, under the static's initialization guard
  static const EmulatorConfig c =
      parse_emulator_config(std::getenv("TRAINRT_CUDA_DEVICE"), std::getenv("TRAINRT_CUDA_EMULATED_ARCH"),
                            std::getenv("TRAINRT_CUDA_EMULATED_MEMORY"), std::getenv("TRAINRT_CUDA_EMULATED_CHECK"),
                            std::getenv("TRAINRT_CUDA_EMULATED_SEED"));
  // NOLINTEND(concurrency-mt-unsafe)
  return c;
}

}  // namespace trainrt::detail
