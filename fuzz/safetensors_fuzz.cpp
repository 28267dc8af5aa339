// fuzz/safetensors_fuzz.cpp — safetensors checkpoint parsing (src/io/safetensors.h, which
// another change adds). One input is one whole file, parsed in memory. Not built yet: when
// the parser lands, enable it with the line trainrt_add_fuzzer(safetensors) in
// fuzz/CMakeLists.txt (the corpus in corpus/safetensors/ is ready).
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trainrt::detail;
  fuzz::expect_clean("safetensors", [&] {
    try {
      (void)parse_safetensors(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "fuzz input");
    } catch (const trainrt::Error& e) {
      // Io for damage; Unsupported for a valid dtype of the format that trainrt does not read
      // (I8, U16, F8...), as io/safetensors.h documents.
      if (e.kind() != trainrt::ErrorKind::Io && e.kind() != trainrt::ErrorKind::Unsupported)
        fuzz::property_failed("safetensors", cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
    }
  });
  return 0;
}
