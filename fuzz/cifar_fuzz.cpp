// fuzz/cifar_fuzz.cpp — CIFAR-10 binary batches (CifarDataset, data/cifar.cpp). One input is
// one batch file, loaded alone and twice over (the multi-file path); an accepted file must
// have a whole number of records, and every record must read back with a label in 0..9 and
// finite pixel values.
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "trainrt/data.hpp"

namespace {

using namespace trainrt::detail;

constexpr const char* kTarget = "cifar";
constexpr std::size_t kRecord = 1 + 3 * 32 * 32;

void load(const std::vector<std::string>& files, std::size_t bytes_per_file) {
  const trainrt::data::CifarDataset set(files);
  if (static_cast<std::size_t>(set.size()) * kRecord != bytes_per_file * files.size())
    fuzz::property_failed(kTarget, cat(set.size(), " records from ", bytes_per_file, "-byte files"));
  std::vector<float> x(3 * 32 * 32);
  std::int64_t y = -1;
  void* const out[] = {x.data(), &y};
  for (std::int64_t i = 0; i < set.size(); ++i) {
    set.read(i, out);
    if (y < 0 || y > 9) fuzz::property_failed(kTarget, cat("record ", i, " has label ", y));
    for (float v : x)
      if (!std::isfinite(v)) fuzz::property_failed(kTarget, cat("record ", i, " has pixel value ", v));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);
  fuzz::expect_clean(kTarget, [&] {
    const fuzz::MemFile file(bytes);
    try {
      load({file.path()}, bytes.size());
      load({file.path(), file.path()}, bytes.size());
    } catch (const trainrt::Error& e) {
      if (e.kind() != trainrt::ErrorKind::Io)
        fuzz::property_failed(kTarget, cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
    }
  });
  return 0;
}
