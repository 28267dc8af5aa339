// data/idx.cpp — IDX files (the MNIST layout) and IdxDataset.
//
// Contents:
//   IDX parsing    read_idx: magic, element type, dimensions, exact data size
//   readers        read_idx_images, read_idx_labels, load_mnist_split
//   IdxDataset     images and labels as a Dataset (a TensorDataset with a channel axis)
//
// Whole files and gzip are data/files.h's job (shared with the other readers). Every damaged
// input is reported as a trainrt::Error naming the file and what is wrong; the readers never
// return partial data.
#include "trainrt/data.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "data/files.h"

namespace trainrt::data {

using detail::Bytes;
using detail::cat;
using detail::fail;

namespace {

// ---- IDX parsing -------------------------------------------------------------------------

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(v));
  return buf;
}

std::uint32_t load_be32(const unsigned char* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]};
}

/// The element type named by the third byte of an IDX magic number, or nullptr when the byte
/// names none (then the file is not IDX at all).
const char* idx_type_name(unsigned char code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return nullptr;
  }
}

/// An IDX file checked against what the caller expects: dims and a view of the values.
struct Idx {
  Bytes bytes;  // the (decompressed) file
  std::vector<std::int64_t> dims;
  std::size_t data_offset = 0;
  std::size_t count = 0;  // number of values
  const unsigned char* values() const { return bytes.data() + data_offset; }
};

/// Reads `path` and checks that it is an unsigned-byte IDX file of `ndims` dimensions whose
/// size matches its header exactly; `what` names the contents ("images") for messages.
Idx read_idx(const std::string& path, unsigned char ndims, const char* what, const char* who) {
  Idx idx;
  idx.bytes = detail::read_file_bytes(path, who, "an IDX file");
  const bool compressed = detail::is_gzip(idx.bytes);
  if (compressed) idx.bytes = detail::gunzip(idx.bytes, path, who);
  const Bytes& b = idx.bytes;
  // Sizes in messages are of the decompressed data; say so, or they look wrong next to ls -l.
  const std::string sizes_of = compressed ? " (sizes after gzip decompression)" : "";
  const std::string prefix = cat(who, ": '", path, "': ");
  const std::uint32_t expected_magic = 0x00000800u | ndims;
  const std::string expected_desc = cat(hex32(expected_magic), " (unsigned-byte ", what, ", ", int{ndims},
                                        ndims == 1 ? " dimension)" : " dimensions)");

  if (b.size() < 4)
    fail(ErrorKind::Io, cat(prefix, "truncated header: expected 4 bytes of magic number, got ", b.size(), sizes_of));
  const std::uint32_t magic = load_be32(b.data());
  const char* type = idx_type_name(b[2]);
  if (b[0] != 0 || b[1] != 0 || type == nullptr)
    fail(ErrorKind::Io, cat(prefix, "wrong magic number: expected ", expected_desc, ", found ", hex32(magic),
                            "; this is not an IDX file"));
  if (b[2] != 0x08)
    fail(ErrorKind::Io, cat(prefix, "wrong element type: expected unsigned byte (type code 0x08), found ", type,
                            " (type code 0x", hex32(b[2]).substr(8), ", magic ", hex32(magic), ")"));
  if (b[3] != ndims)
    fail(ErrorKind::Io, cat(prefix, "wrong magic number: expected ", expected_desc, ", found ", hex32(magic), " (",
                            int{b[3]}, b[3] == 1 ? " dimension" : " dimensions", ")",
                            b[3] == 1   ? "; is this a labels file?"
                            : b[3] == 3 ? "; is this an images file?"
                                        : ""));

  const std::size_t header = 4 + 4 * std::size_t{ndims};
  if (b.size() < header)
    fail(ErrorKind::Io, cat(prefix, "truncated header: expected ", header, " bytes (magic and ", int{ndims},
                            " dimension sizes), got ", b.size(), sizes_of));
  // The product of the dimensions can overflow 64 bits (three of 2^32 - 1), so it is formed
  // only while it stays within the file size; a larger one means a truncated file anyway.
  std::string dims_text;
  for (unsigned char i = 0; i < ndims; ++i) {
    idx.dims.push_back(load_be32(b.data() + 4 + 4 * std::size_t{i}));
    dims_text += cat(i ? "x" : "", idx.dims.back());
  }
  const bool empty = std::find(idx.dims.begin(), idx.dims.end(), 0) != idx.dims.end();
  // An empty file may still name huge other dimensions (0x4000000000x4000000000): the size
  // check below does not bound them, yet every Shape computation multiplies them. Cap them
  // as a real tensor would be capped (2^48 elements).
  if (empty) {
    constexpr std::uint64_t kMaxValues = std::uint64_t{1} << 48;
    std::uint64_t others = 1;
    for (std::int64_t d : idx.dims) {
      if (d == 0) continue;
      if (static_cast<std::uint64_t>(d) > kMaxValues / others)
        fail(ErrorKind::Io, cat(prefix, "damaged header: dimensions ", dims_text,
                                " multiply to more than 2^48 values besides the zero one"));
      others *= static_cast<std::uint64_t>(d);
    }
  }
  bool too_big = false;
  std::size_t count = empty ? 0 : 1;
  for (std::size_t i = 0; i < idx.dims.size() && !empty; ++i) {
    const auto d = static_cast<std::size_t>(idx.dims[i]);
    if (count > b.size() / d) {
      too_big = true;
      break;
    }
    count *= d;
  }
  if (too_big || b.size() - header < count)
    fail(ErrorKind::Io,
         cat(prefix, "truncated data: expected ",
             too_big ? std::string("more than ") + std::to_string(b.size()) : std::to_string(header + count),
             " bytes (", header, "-byte header and ", dims_text, " values), got ", b.size(), sizes_of));
  if (b.size() - header > count)
    fail(ErrorKind::Io, cat(prefix, "trailing garbage: ", b.size() - header - count, " bytes after the ", dims_text,
                            " values (expected ", header + count, " bytes, got ", b.size(), ")", sizes_of));
  idx.data_offset = header;
  idx.count = count;
  return idx;
}

}  // namespace

// ---- readers -----------------------------------------------------------------------------

Tensor read_idx_images(const std::string& path) {
  const Idx idx = read_idx(path, 3, "images", "read_idx_images");
  Tensor images = Tensor::empty(Shape(idx.dims), DType::f32);
  // A table makes the conversion exact and identical everywhere: byte / 255 rounded once.
  std::array<float, 256> scale{};
  for (int v = 0; v < 256; ++v) scale[static_cast<std::size_t>(v)] = static_cast<float>(v) / 255.0f;
  auto* out = images.data<float>();
  const unsigned char* in = idx.values();
  for (std::size_t i = 0; i < idx.count; ++i) out[i] = scale[in[i]];
  return images;
}

Tensor read_idx_labels(const std::string& path, std::int64_t num_classes) {
  if (num_classes <= 0)
    fail(ErrorKind::InvalidArgument,
         cat("read_idx_labels: num_classes must be > 0, got ", num_classes, " (file '", path, "')"));
  const Idx idx = read_idx(path, 1, "labels", "read_idx_labels");
  Tensor labels = Tensor::empty(Shape(idx.dims), DType::i64);
  auto* out = labels.data<std::int64_t>();
  const unsigned char* in = idx.values();
  for (std::size_t i = 0; i < idx.count; ++i) {
    if (in[i] >= num_classes)
      fail(ErrorKind::InvalidArgument, cat("read_idx_labels: '", path, "': label ", int{in[i]}, " at index ", i,
                                           " is out of range: it must be < num_classes (", num_classes, ")"));
    out[i] = in[i];
  }
  return labels;
}

LabeledImages load_mnist_split(const std::string& dir, const std::string& split, std::int64_t num_classes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail(ErrorKind::NotFound,
         cat("load_mnist_split: the data directory '", dir, "' does not exist or is not a directory (it should hold ",
             split, "-images-idx3-ubyte and ", split, "-labels-idx1-ubyte, each possibly with .gz)"));
  // The uncompressed file wins when both exist: it is what a user unpacked on purpose.
  const auto find = [&](const std::string& stem, const char* what) {
    const std::string base = (fs::path(dir) / (split + stem)).string();
    for (const std::string& candidate : {base, base + ".gz"})
      if (fs::is_regular_file(candidate, ec)) return candidate;
    fail(ErrorKind::NotFound, cat("load_mnist_split: no ", what, " file for split '", split, "' in '", dir,
                                  "'; tried '", base, "' and '", base, ".gz'"));
  };
  const std::string images_path = find("-images-idx3-ubyte", "images");
  const std::string labels_path = find("-labels-idx1-ubyte", "labels");
  LabeledImages out{read_idx_images(images_path), read_idx_labels(labels_path, num_classes)};
  if (out.images.shape()[0] != out.labels.shape()[0])
    fail(ErrorKind::Io, cat("load_mnist_split: count mismatch: '", images_path, "' holds ", out.images.shape()[0],
                            " images but '", labels_path, "' holds ", out.labels.shape()[0], " labels"));
  return out;
}

// ---- IdxDataset ------------------------------------------------------------------------------

namespace {

/// The columns of an IdxDataset: images get a channel axis of 1 (a view, no copy).
std::vector<std::pair<std::string, Tensor>> idx_columns(const LabeledImages& data) {
  const Tensor& x = data.images;
  const Tensor& y = data.labels;
  if (!x.defined() || !y.defined())
    fail(ErrorKind::InvalidArgument, "IdxDataset: the images or labels are undefined tensors");
  if (x.dtype() != DType::f32 || x.shape().rank() != 3)
    fail(ErrorKind::InvalidArgument,
         cat("IdxDataset: images must be f32 [N, rows, cols], got ", name(x.dtype()), x.shape().to_string()));
  if (y.dtype() != DType::i64 || y.shape().rank() != 1)
    fail(ErrorKind::InvalidArgument,
         cat("IdxDataset: labels must be i64 [N], got ", name(y.dtype()), y.shape().to_string()));
  if (y.shape()[0] != x.shape()[0])
    fail(ErrorKind::InvalidArgument, cat("IdxDataset: ", x.shape()[0], " images but ", y.shape()[0], " labels"));
  const Shape& s = x.shape();
  return {{"x", x.reshape(Shape{s[0], 1, s[1], s[2]})}, {"y", y}};
}

}  // namespace

IdxDataset::IdxDataset(const LabeledImages& data) : TensorDataset(idx_columns(data)) {}

IdxDataset::IdxDataset(const std::string& dir, const std::string& split, std::int64_t num_classes)
    : IdxDataset(load_mnist_split(dir, split, num_classes)) {}

}  // namespace trainrt::data
