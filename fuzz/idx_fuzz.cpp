// fuzz/idx_fuzz.cpp — IDX files, plain or gzip-compressed (read_idx_images,
// read_idx_labels; data/idx.cpp, data/files.cpp). One input is one file, read as an images
// file and as a labels file; whatever is accepted must have exactly as many values as its
// shape says and, for labels, values below the class count.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "trainrt/data.hpp"

namespace {

using namespace trainrt::detail;

constexpr const char* kTarget = "idx";
constexpr std::int64_t kClasses = 10;

void read(std::string_view bytes) {
  const fuzz::MemFile file(bytes);
  try {
    const trainrt::Tensor images = trainrt::data::read_idx_images(file.path());
    if (images.shape().rank() != 3 || images.dtype() != trainrt::DType::f32)
      fuzz::property_failed(kTarget, cat("images of type ", images.shape().to_string()));
    for (float v : images.to_vector<float>())
      if (!(v >= 0.0f && v <= 1.0f)) fuzz::property_failed(kTarget, cat("an image value ", v, " outside [0, 1]"));
  } catch (const trainrt::Error& e) {
    if (e.kind() != trainrt::ErrorKind::Io)
      fuzz::property_failed(kTarget, cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
  }
  try {
    const trainrt::Tensor labels = trainrt::data::read_idx_labels(file.path(), kClasses);
    if (labels.shape().rank() != 1 || labels.dtype() != trainrt::DType::i64)
      fuzz::property_failed(kTarget, cat("labels of type ", labels.shape().to_string()));
    for (std::int64_t v : labels.to_vector<std::int64_t>())
      if (v < 0 || v >= kClasses) fuzz::property_failed(kTarget, cat("a label ", v, " outside [0, 10)"));
  } catch (const trainrt::Error& e) {
    // InvalidArgument: a label out of range, which the reader reports as the caller's.
    if (e.kind() != trainrt::ErrorKind::Io && e.kind() != trainrt::ErrorKind::InvalidArgument)
      fuzz::property_failed(kTarget, cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::expect_clean(kTarget, [&] { read(fuzz::as_text(data, size)); });
  return 0;
}
