// data/cifar.cpp — CifarDataset: CIFAR-10 binary batches (cifar-10-batches-bin).
//
// The format (https://www.cs.toronto.edu/~kriz/cifar.html): a file is records of 3073 bytes,
// one label byte (0-9) then 3072 pixel bytes, the 1024 red values of a 32x32 image in row-major
// order, then the 1024 green, then the 1024 blue ones. There is no header, so the size and the
// label bytes are the only checks a reader can make; both are made once, when the dataset is
// built, so that a damaged file fails before training rather than in the middle of an epoch.
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "data/files.h"
#include "trainrt/data.hpp"

namespace trainrt::data {

using detail::cat;
using detail::fail;

namespace {

constexpr std::size_t kPixels = std::size_t{3} * 32 * 32;
constexpr std::size_t kRecord = 1 + kPixels;
constexpr int kClasses = 10;

}  // namespace

CifarDataset::CifarDataset(const std::vector<std::string>& files, const CifarOptions& options) {
  if (files.empty()) fail(ErrorKind::InvalidArgument, "CifarDataset: no files given");
  for (int c = 0; c < 3; ++c) {
    const float mean = options.mean[static_cast<std::size_t>(c)];
    const float sd = options.stddev[static_cast<std::size_t>(c)];
    if (!(sd > 0) || !std::isfinite(sd) || !std::isfinite(mean))
      fail(ErrorKind::InvalidArgument, cat("CifarDataset: channel ", c, " has mean ", mean, " and stddev ", sd,
                                           "; the stddev must be finite and > 0 and the mean finite"));
    // A table makes the conversion exact and identical everywhere: one rounding per step.
    for (int v = 0; v < 256; ++v)
      table_[static_cast<std::size_t>(c) * 256 + static_cast<std::size_t>(v)] =
          (static_cast<float>(v) / 255.0f - mean) / sd;
  }
  for (const std::string& path : files) {
    detail::Bytes bytes = detail::read_file_bytes(path, "CifarDataset", "a CIFAR-10 batch file");
    const std::string prefix = cat("CifarDataset: '", path, "': ");
    if (bytes.empty()) fail(ErrorKind::Io, cat(prefix, "the file is empty; expected records of ", kRecord, " bytes"));
    if (bytes.size() % kRecord != 0)
      fail(ErrorKind::Io,
           cat(prefix, "truncated or not a CIFAR-10 binary batch: its size, ", bytes.size(),
               " bytes, is not a whole number of ", kRecord, "-byte records (1 label byte + ", kPixels,
               " pixel bytes): ", bytes.size() / kRecord, " records and ", bytes.size() % kRecord, " bytes left over"));
    const std::size_t records = bytes.size() / kRecord;
    for (std::size_t r = 0; r < records; ++r) {
      const unsigned char label = bytes[r * kRecord];
      if (label >= kClasses)
        fail(ErrorKind::Io, cat(prefix, "record ", r, " (byte offset ", r * kRecord, ") has label ", int{label},
                                "; CIFAR-10 labels are 0 to ", kClasses - 1));
    }
    if (records_.empty()) records_ = std::move(bytes);  // the common single-file case copies nothing
    else records_.insert(records_.end(), bytes.begin(), bytes.end());
  }
  size_ = static_cast<std::int64_t>(records_.size() / kRecord);
}

std::vector<std::string> CifarDataset::split_files(const std::string& dir, const std::string& split) {
  const auto in_dir = [&](const std::string& name) { return (std::filesystem::path(dir) / name).string(); };
  if (split == "test") return {in_dir("test_batch.bin")};
  if (split != "train")
    fail(ErrorKind::InvalidArgument,
         cat("CifarDataset::split_files: unknown split '", split, "'; CIFAR-10 has 'train' and 'test'"));
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i) out.push_back(in_dir(cat("data_batch_", i, ".bin")));
  return out;
}

std::vector<Field> CifarDataset::fields() const {
  return {{"x", DType::f32, Shape{3, 32, 32}}, {"y", DType::i64, Shape{}}};
}

void CifarDataset::read(std::int64_t index, std::span<void* const> out) const {
  const unsigned char* record = records_.data() + static_cast<std::size_t>(index) * kRecord;
  auto* x = static_cast<float*>(out[0]);
  const unsigned char* pixels = record + 1;
  for (std::size_t c = 0; c < 3; ++c) {
    const float* table = table_.data() + c * 256;
    for (std::size_t i = c * 1024; i < (c + 1) * 1024; ++i) x[i] = table[pixels[i]];
  }
  *static_cast<std::int64_t*>(out[1]) = record[0];
}

}  // namespace trainrt::data
