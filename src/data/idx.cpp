// data/idx.cpp — IDX files (the MNIST layout) and mini-batches over them.
//
// Contents:
//   file bytes     read_file_bytes, gunzip (gzip is recognized by its magic bytes, never by name)
//   IDX parsing    read_idx: magic, element type, dimensions, exact data size
//   readers        read_idx_images, read_idx_labels, load_mnist_split
//   BatchSampler   a counter-based generator keyed by (seed, epoch), Fisher-Yates, batch copies
//
// Every damaged input is reported as a trainrt::Error naming the file and what is wrong; the
// readers never return partial data.
#include "trainrt/data.hpp"

#define ZLIB_CONST  // next_in is a pointer to const: the compressed bytes are never written
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <utility>

#include "core/error.h"

namespace trainrt::data {

using detail::cat;
using detail::fail;

namespace {

using Bytes = std::vector<unsigned char>;

// ---- file bytes --------------------------------------------------------------------------

/// The whole file `path`; `who` prefixes messages ("read_idx_images").
Bytes read_file_bytes(const std::string& path, const char* who) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) fail(ErrorKind::NotFound, cat(who, ": file not found: '", path, "'"));
  if (status.type() == fs::file_type::directory)
    fail(ErrorKind::Io, cat(who, ": '", path, "' is a directory, not an IDX file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::Io, cat(who, ": cannot open '", path, "': ", std::strerror(errno)));
  Bytes bytes;
  // The size is only a hint: reading to the end also works for pipes and growing files.
  const std::uintmax_t size = fs::file_size(path, ec);
  if (!ec && size < (std::uintmax_t{1} << 34)) bytes.reserve(static_cast<std::size_t>(size));
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + kChunk);
    in.read(reinterpret_cast<char*>(bytes.data() + old), static_cast<std::streamsize>(kChunk));
    bytes.resize(old + static_cast<std::size_t>(in.gcount()));
    if (in.bad()) fail(ErrorKind::Io, cat(who, ": error while reading '", path, "': ", std::strerror(errno)));
    if (in.eof()) break;
  }
  return bytes;
}

bool is_gzip(const Bytes& bytes) { return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b; }

/// Frees the z_stream however gunzip leaves (return or throw).
struct InflateGuard {
  z_stream* stream;
  ~InflateGuard() { inflateEnd(stream); }
};

/// Decompresses a gzip file held in memory. Concatenated members (as `cat a.gz b.gz` makes)
/// are one stream, as gzip(1) reads them. A stream that ends early, fails its CRC or has
/// bytes after its last member is damaged.
Bytes gunzip(const Bytes& in, const std::string& path, const char* who) {
  z_stream zs{};
  // 16 + MAX_WBITS: accept the gzip wrapper only (a zlib or raw deflate stream is not a .gz file).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    fail(ErrorKind::Io, cat(who, ": '", path, "': cannot start zlib's inflate: ", zs.msg ? zs.msg : "out of memory"));
  InflateGuard guard{&zs};

  // ISIZE, the last four bytes of a member, is the uncompressed size modulo 2^32: a good first
  // allocation for a single-member file. It is untrusted, hence capped by deflate's largest
  // ratio (about 1032:1) and 1 GiB; the buffer grows as needed anyway.
  Bytes out;
  std::size_t hint = std::size_t{1} << 16;
  if (in.size() >= 18) {
    const std::size_t n = in.size();
    const std::size_t isize = std::size_t{in[n - 4]} | std::size_t{in[n - 3]} << 8 | std::size_t{in[n - 2]} << 16 |
                              std::size_t{in[n - 1]} << 24;
    hint = std::max(hint, std::min({isize + 1, in.size() * 1032, std::size_t{1} << 30}));
  }
  out.resize(hint);

  const unsigned char* const end = in.data() + in.size();
  std::size_t produced = 0;
  constexpr std::size_t kMaxAvail = UINT_MAX;  // avail_in/avail_out are 32-bit
  zs.next_in = in.data();
  zs.avail_in = 0;
  for (;;) {
    if (zs.avail_in == 0) {
      zs.avail_in = static_cast<uInt>(std::min<std::size_t>(static_cast<std::size_t>(end - zs.next_in), kMaxAvail));
    }
    if (out.size() - produced < (std::size_t{1} << 16))
      out.resize(std::max(out.size() * 2, produced + (std::size_t{1} << 20)));
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - produced, kMaxAvail));
    const uInt avail_out_before = zs.avail_out;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    produced += avail_out_before - zs.avail_out;
    const std::size_t left = static_cast<std::size_t>(end - zs.next_in);
    if (ret == Z_STREAM_END) {
      if (left == 0) break;
      if (left >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {  // another member follows
        inflateReset(&zs);
        continue;
      }
      fail(ErrorKind::Io, cat(who, ": '", path, "': trailing garbage: ", left,
                              " bytes after the end of the gzip stream (file has ", in.size(), " bytes)"));
    }
    if (ret == Z_BUF_ERROR && left == 0)
      fail(ErrorKind::Io,
           cat(who, ": '", path, "': corrupt gzip stream: it is truncated (the compressed data ends after ", in.size(),
               " bytes, ", produced, " bytes decompressed, before the end of the stream)"));
    if (ret != Z_OK && ret != Z_BUF_ERROR)
      fail(ErrorKind::Io, cat(who, ": '", path, "': corrupt gzip stream: ", zs.msg ? zs.msg : zError(ret), " (after ",
                              produced, " bytes decompressed)"));
  }
  out.resize(produced);
  return out;
}

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
  idx.bytes = read_file_bytes(path, who);
  const bool compressed = is_gzip(idx.bytes);
  if (compressed) idx.bytes = gunzip(idx.bytes, path, who);
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
  float* out = images.data<float>();
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
  std::int64_t* out = labels.data<std::int64_t>();
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

// ---- BatchSampler ------------------------------------------------------------------------

namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio, splitmix64's increment

/// splitmix64's output function (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014): a bijection of 64-bit words with good avalanche.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// A counter-based generator: draw i of key k is mix64(k + (i + 1) * kGolden), i.e. the
/// splitmix64 sequence started at k. Being written out here (rather than std::mt19937 with
/// std::uniform_int_distribution, whose algorithm the standard leaves open) makes an epoch's
/// order the same with every standard library.
class CounterRng {
 public:
  explicit CounterRng(std::uint64_t key) : key_(key) {}
  std::uint64_t next() { return mix64(key_ + ++counter_ * kGolden); }
  /// Uniform in [0, bound), bound > 0: rejecting the lowest (2^64 mod bound) values removes
  /// the modulo bias.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  std::uint64_t key_;
  std::uint64_t counter_ = 0;
};

/// The key of epoch `epoch` under `seed`. Mixing the seed first keeps (seed, epoch) and
/// (seed + 1, epoch - 1)-style pairs from sharing a stream.
std::uint64_t epoch_key(std::uint64_t seed, std::int64_t epoch) {
  return mix64(mix64(seed ^ 0x5DA7A5A4B1E5EEDull) + static_cast<std::uint64_t>(epoch) * kGolden);
}

}  // namespace

BatchSampler::BatchSampler(LabeledImages dataset, std::int64_t batch_size, bool shuffle, std::uint64_t seed,
                           bool drop_last)
    : data_(std::move(dataset)), batch_size_(batch_size), shuffle_(shuffle), seed_(seed), drop_last_(drop_last) {
  const Tensor& x = data_.images;
  const Tensor& y = data_.labels;
  if (batch_size_ <= 0)
    fail(ErrorKind::InvalidArgument, cat("BatchSampler: batch_size must be > 0, got ", batch_size_));
  if (!x.defined() || !y.defined())
    fail(ErrorKind::InvalidArgument, "BatchSampler: the dataset's images or labels are undefined tensors");
  // Images are documented as [N, rows, cols]; any trailing shape works the same way, so
  // [N, channels, rows, cols] is accepted too (batches are then [batch, channels, rows, cols]).
  if (x.dtype() != DType::f32 || x.shape().rank() < 2)
    fail(ErrorKind::InvalidArgument,
         cat("BatchSampler: images must be f32 [N, rows, cols], got ", name(x.dtype()), x.shape().to_string()));
  if (y.dtype() != DType::i64 || y.shape().rank() != 1)
    fail(ErrorKind::InvalidArgument,
         cat("BatchSampler: labels must be i64 [N], got ", name(y.dtype()), y.shape().to_string()));
  const std::int64_t n = x.shape()[0];
  if (y.shape()[0] != n)
    fail(ErrorKind::InvalidArgument, cat("BatchSampler: ", n, " images but ", y.shape()[0], " labels"));
  if (n == 0) fail(ErrorKind::InvalidArgument, "BatchSampler: the dataset is empty");
  if (drop_last_ && n < batch_size_)
    fail(ErrorKind::InvalidArgument, cat("BatchSampler: with drop_last, ", n, " samples and batch_size ", batch_size_,
                                         " leave no batch in an epoch"));
  std::vector<std::int64_t> dims = x.shape().dims();
  dims[0] = batch_size_;
  images_ = Tensor::empty(Shape(std::move(dims)), DType::f32);
  labels_ = Tensor::empty(Shape{batch_size_}, DType::i64);
  start_epoch(0);  // so that batch() works before the first start_epoch()
}

std::int64_t BatchSampler::batches_per_epoch() const noexcept {
  const std::int64_t n = data_.labels.shape()[0];
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

void BatchSampler::start_epoch(std::int64_t epoch) {
  if (epoch < 0) fail(ErrorKind::InvalidArgument, cat("BatchSampler::start_epoch: epoch must be >= 0, got ", epoch));
  order_.resize(static_cast<std::size_t>(data_.labels.shape()[0]));
  std::iota(order_.begin(), order_.end(), std::int64_t{0});
  if (!shuffle_) return;
  // Fisher-Yates (Durstenfeld): position i takes a uniform pick among positions [0, i].
  CounterRng rng(epoch_key(seed_, epoch));
  for (std::size_t i = order_.size() - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
}

void BatchSampler::batch(std::int64_t index, Tensor& images, Tensor& labels) {
  const std::int64_t batches = batches_per_epoch();
  if (index < 0 || index >= batches)
    fail(ErrorKind::InvalidArgument,
         cat("BatchSampler::batch: index ", index, " is out of range: an epoch has ", batches, " batches (",
             order_.size(), " samples, batch_size ", batch_size_, drop_last_ ? ", drop_last)" : ")"));
  const std::size_t n = order_.size();
  const std::size_t sample_floats = static_cast<std::size_t>(data_.images.numel()) / n;
  const float* src = data_.images.data<float>();
  const std::int64_t* src_labels = data_.labels.data<std::int64_t>();
  float* dst = images_.data<float>();
  std::int64_t* dst_labels = labels_.data<std::int64_t>();
  for (std::int64_t k = 0; k < batch_size_; ++k) {
    // Past the end of the epoch (only in the last batch without drop_last) positions wrap
    // to the start of this epoch's order: the padding repeats the first samples.
    const std::size_t pos = static_cast<std::size_t>(index * batch_size_ + k) % n;
    const std::size_t sample = static_cast<std::size_t>(order_[pos]);
    std::memcpy(dst + static_cast<std::size_t>(k) * sample_floats, src + sample * sample_floats,
                sample_floats * sizeof(float));
    dst_labels[k] = src_labels[sample];
  }
  images = images_;
  labels = labels_;
}

}  // namespace trainrt::data
