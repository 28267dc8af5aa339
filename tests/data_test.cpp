// tests/data_test.cpp — the dataset readers of src/data: IDX, TensorDataset, IdxDataset,
// CifarDataset and TokenDataset (the DataLoader is data_loader_test.cpp's).
//
// Contents:
//   helpers          TempDir (a fresh directory, removed afterwards), IDX and gzip writers
//   ReadIdx          values, shapes and scaling; every kind of damaged file
//   LoadMnistSplit   finding plain and .gz files; missing files; count mismatch
//   TensorDataset    fields, rows, columns, argument checks
//   IdxDataset       the channel axis; loading a split; its errors
//   CifarDataset     records, scaling, normalization, several files; missing, truncated, bad label
//   TokenDataset     windows and targets, uint16 and uint32; missing, size, short, bad token
//
// Files are written by the test itself (gzip through zlib), so nothing depends on a dataset
// being installed. CIFAR-10 and token files have no header, hence no magic number to get
// wrong: their only checks are the size and the values, and both are tested.
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

#include "test_util.h"
#include "trainrt/data.hpp"

namespace trainrt::test {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

// ---- helpers -------------------------------------------------------------------------------

using test::TempDir;

void append_be32(Bytes& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<unsigned char>(v >> shift));
}

/// An IDX file: magic, big-endian dims, then `values`.
Bytes idx(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const Bytes& values) {
  Bytes b;
  append_be32(b, magic);
  for (std::uint32_t d : dims) append_be32(b, d);
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

Bytes iota_bytes(std::size_t n, unsigned char first = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(first + i);
  return b;
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

/// `bytes` compressed as a gzip file (one member) in memory.
Bytes gzip(const Bytes& bytes) {
  z_stream zs{};
  // 16 + MAX_WBITS: write a gzip wrapper rather than a zlib one.
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(bytes.size())) + 64);
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// A plain 2x3x2 images file with pixel values 0, 51, 102, ... (multiples of 0.2 after scaling).
Bytes small_images() {
  Bytes px(12);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>((i * 51) % 256);
  return idx(0x00000803, {2, 3, 2}, px);
}

// ---- ReadIdx ---------------------------------------------------------------------------------

TEST(ReadIdx, ImagesPlainValuesShapeAndScaling) {
  TempDir dir;
  const std::string path = dir.file("images-idx3-ubyte");
  write_file(path, small_images());
  const Tensor t = data::read_idx_images(path);
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 2}));
  const std::vector<float> v = t.to_vector<float>();
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_FLOAT_EQ(v[i], static_cast<float>((i * 51) % 256) / 255.0f) << i;
  EXPECT_EQ(*std::min_element(v.begin(), v.end()), 0.0f);
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 1.0f);  // 255 maps to exactly 1
}

TEST(ReadIdx, ImagesGzipMatchesPlain) {
  TempDir dir;
  // The name has no .gz on purpose: compression is recognized by the magic bytes.
  write_file(dir.file("plain"), small_images());
  write_file(dir.file("compressed"), gzip(small_images()));
  const Tensor plain = data::read_idx_images(dir.file("plain"));
  const Tensor compressed = data::read_idx_images(dir.file("compressed"));
  EXPECT_EQ(compressed.shape(), plain.shape());
  EXPECT_EQ(compressed.to_vector<float>(), plain.to_vector<float>());
}

TEST(ReadIdx, GzipWithConcatenatedMembers) {
  TempDir dir;
  const Bytes whole = idx(0x00000801, {6}, {0, 1, 2, 3, 4, 5});
  Bytes two = gzip(Bytes(whole.begin(), whole.begin() + 7));
  const Bytes rest = gzip(Bytes(whole.begin() + 7, whole.end()));
  two.insert(two.end(), rest.begin(), rest.end());  // what `cat a.gz b.gz` makes
  write_file(dir.file("labels.gz"), two);
  EXPECT_EQ(data::read_idx_labels(dir.file("labels.gz"), 10).to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(ReadIdx, LabelsPlainAndGzip) {
  TempDir dir;
  const Bytes file = idx(0x00000801, {5}, {3, 0, 9, 1, 9});
  write_file(dir.file("labels"), file);
  write_file(dir.file("labels.gz"), gzip(file));
  for (const char* name : {"labels", "labels.gz"}) {
    const Tensor t = data::read_idx_labels(dir.file(name), 10);
    EXPECT_EQ(t.dtype(), DType::i64);
    EXPECT_EQ(t.shape(), (Shape{5}));
    EXPECT_EQ(t.to_vector<std::int64_t>(), (std::vector<std::int64_t>{3, 0, 9, 1, 9})) << name;
  }
}

TEST(ReadIdx, EmptyFileSetIsValid) {
  TempDir dir;
  write_file(dir.file("none"), idx(0x00000803, {0, 28, 28}, {}));
  EXPECT_EQ(data::read_idx_images(dir.file("none")).shape(), (Shape{0, 28, 28}));
}

TEST(ReadIdx, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("no-such-file");
  expect_error([&] { data::read_idx_images(path); }, ErrorKind::NotFound, {"read_idx_images", "not found", path});
  expect_error([&] { data::read_idx_labels(path, 10); }, ErrorKind::NotFound, {"read_idx_labels", "not found", path});
}

TEST(ReadIdx, DirectoryIsNotAFile) {
  TempDir dir;
  expect_error([&] { data::read_idx_images(dir.path()); }, ErrorKind::Io, {"is a directory", dir.path()});
}

TEST(ReadIdx, WrongMagic) {
  TempDir dir;
  const std::string path = dir.file("garbage");
  write_file(path, idx(0x12345678, {2, 3, 2}, Bytes(12)));
  expect_error([&] { data::read_idx_images(path); }, ErrorKind::Io,
               {path, "wrong magic number", "expected 0x00000803", "found 0x12345678"});
  // A labels file handed to the images reader: an IDX file, but of the wrong rank.
  const std::string labels = dir.file("labels");
  write_file(labels, idx(0x00000801, {3}, {1, 2, 3}));
  expect_error([&] { data::read_idx_images(labels); }, ErrorKind::Io,
               {labels, "wrong magic number", "expected 0x00000803", "found 0x00000801", "labels file"});
  const std::string images = dir.file("images");
  write_file(images, small_images());
  expect_error([&] { data::read_idx_labels(images, 10); }, ErrorKind::Io,
               {images, "wrong magic number", "expected 0x00000801", "found 0x00000803", "images file"});
}

TEST(ReadIdx, WrongElementType) {
  TempDir dir;
  const std::string path = dir.file("floats");
  write_file(path, idx(0x00000D03, {1, 1, 2}, Bytes(8)));  // 0x0D: float32 values
  expect_error([&] { data::read_idx_images(path); }, ErrorKind::Io,
               {path, "wrong element type", "unsigned byte", "float32", "0x0D"});
  const std::string ints = dir.file("ints");
  write_file(ints, idx(0x00000C01, {2}, Bytes(8)));  // 0x0C: int32 labels
  expect_error([&] { data::read_idx_labels(ints, 10); }, ErrorKind::Io, {ints, "wrong element type", "int32"});
}

TEST(ReadIdx, TruncatedHeader) {
  TempDir dir;
  const std::string tiny = dir.file("tiny");
  write_file(tiny, {0, 0});
  expect_error([&] { data::read_idx_images(tiny); }, ErrorKind::Io,
               {tiny, "truncated header", "expected 4 bytes", "got 2"});
  const std::string partial = dir.file("partial");
  write_file(partial, idx(0x00000803, {60000, 28}, {}));  // the cols dimension is missing
  expect_error([&] { data::read_idx_images(partial); }, ErrorKind::Io,
               {partial, "truncated header", "expected 16 bytes", "got 12"});
}

TEST(ReadIdx, TruncatedData) {
  TempDir dir;
  Bytes file = small_images();  // 16-byte header + 12 values
  file.pop_back();
  write_file(dir.file("short"), file);
  expect_error([&] { data::read_idx_images(dir.file("short")); }, ErrorKind::Io,
               {dir.file("short"), "truncated data", "expected 28 bytes", "2x3x2", "got 27"});
  // The same through gzip: sizes are of the decompressed data, and the message says so.
  write_file(dir.file("short.gz"), gzip(file));
  expect_error([&] { data::read_idx_images(dir.file("short.gz")); }, ErrorKind::Io,
               {dir.file("short.gz"), "truncated data", "expected 28 bytes", "got 27", "decompress"});
  // Dimensions whose product dwarfs the file.
  write_file(dir.file("huge"), idx(0x00000803, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, Bytes(4)));
  expect_error([&] { data::read_idx_images(dir.file("huge")); }, ErrorKind::Io, {"truncated data", "got 20"});
  write_file(dir.file("labels"), idx(0x00000801, {10}, {1, 2, 3}));
  expect_error([&] { data::read_idx_labels(dir.file("labels"), 10); }, ErrorKind::Io,
               {dir.file("labels"), "truncated data", "expected 18 bytes", "got 11"});
}

TEST(ReadIdx, TrailingGarbage) {
  TempDir dir;
  Bytes file = small_images();
  file.push_back(7);
  file.push_back(7);
  write_file(dir.file("long"), file);
  expect_error([&] { data::read_idx_images(dir.file("long")); }, ErrorKind::Io,
               {dir.file("long"), "trailing garbage", "2 bytes"});
}

TEST(ReadIdx, TruncatedGzip) {
  TempDir dir;
  const Bytes z = gzip(idx(0x00000803, {4, 28, 28}, iota_bytes(4 * 28 * 28)));
  for (const std::size_t keep : {std::size_t{2}, std::size_t{10}, z.size() / 2, z.size() - 1}) {
    const std::string path = dir.file("cut" + std::to_string(keep) + ".gz");
    write_file(path, Bytes(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(keep)));
    expect_error([&] { data::read_idx_images(path); }, ErrorKind::Io, {path, "corrupt gzip stream", "truncated"});
  }
}

TEST(ReadIdx, CorruptGzip) {
  TempDir dir;
  Bytes z = gzip(small_images());
  z[z.size() - 8] ^= 0xFF;  // the CRC-32 of the trailer no longer matches the data
  write_file(dir.file("crc.gz"), z);
  expect_error([&] { data::read_idx_images(dir.file("crc.gz")); }, ErrorKind::Io,
               {dir.file("crc.gz"), "corrupt gzip stream", "incorrect data check"});
  Bytes bad_block = gzip(small_images());
  bad_block[10] = 0xFF;  // the first deflate block header now names the reserved block type 3
  write_file(dir.file("block.gz"), bad_block);
  expect_error([&] { data::read_idx_images(dir.file("block.gz")); }, ErrorKind::Io,
               {dir.file("block.gz"), "corrupt gzip stream"});
  Bytes trailing = gzip(small_images());
  trailing.push_back(0);
  write_file(dir.file("trailing.gz"), trailing);
  expect_error([&] { data::read_idx_images(dir.file("trailing.gz")); }, ErrorKind::Io,
               {dir.file("trailing.gz"), "trailing garbage", "gzip"});
}

TEST(ReadIdx, LabelOutOfRange) {
  TempDir dir;
  const std::string path = dir.file("labels");
  write_file(path, idx(0x00000801, {4}, {1, 2, 10, 3}));
  expect_error([&] { data::read_idx_labels(path, 10); }, ErrorKind::InvalidArgument,
               {path, "label 10", "index 2", "num_classes (10)"});
  EXPECT_EQ(data::read_idx_labels(path, 11).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 2, 10, 3}));
  expect_error([&] { data::read_idx_labels(path, 0); }, ErrorKind::InvalidArgument, {"num_classes", "> 0"});
}

// ---- LoadMnistSplit ------------------------------------------------------------------------

/// Writes a split of `n` 2x2 images whose pixels all equal the image index, labels i % 10.
void write_split(const TempDir& dir, const std::string& split, std::uint32_t n, bool gz, std::uint32_t n_labels = 0) {
  if (n_labels == 0) n_labels = n;
  Bytes px, lb;
  for (std::uint32_t i = 0; i < n; ++i) px.insert(px.end(), 4, static_cast<unsigned char>(i));
  for (std::uint32_t i = 0; i < n_labels; ++i) lb.push_back(static_cast<unsigned char>(i % 10));
  const Bytes images = idx(0x00000803, {n, 2, 2}, px), labels = idx(0x00000801, {n_labels}, lb);
  const std::string suffix = gz ? ".gz" : "";
  write_file(dir.file(split + "-images-idx3-ubyte" + suffix), gz ? gzip(images) : images);
  write_file(dir.file(split + "-labels-idx1-ubyte" + suffix), gz ? gzip(labels) : labels);
}

TEST(LoadMnistSplit, FindsGzipFiles) {
  TempDir dir;
  write_split(dir, "train", 12, /*gz=*/true);
  const data::LabeledImages d = data::load_mnist_split(dir.path(), "train");
  EXPECT_EQ(d.images.shape(), (Shape{12, 2, 2}));
  EXPECT_EQ(d.labels.shape(), (Shape{12}));
  EXPECT_EQ(d.labels.to_vector<std::int64_t>()[11], 1);
  EXPECT_FLOAT_EQ(d.images.to_vector<float>()[11 * 4], 11.0f / 255.0f);
}

TEST(LoadMnistSplit, FindsPlainFiles) {
  TempDir dir;
  write_split(dir, "t10k", 3, /*gz=*/false);
  const data::LabeledImages d = data::load_mnist_split(dir.path(), "t10k");
  EXPECT_EQ(d.images.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(d.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1, 2}));
}

TEST(LoadMnistSplit, MixedPlainAndGzip) {
  TempDir dir;
  write_split(dir, "train", 5, /*gz=*/true);
  fs::remove(dir.file("train-images-idx3-ubyte.gz"));
  write_split(dir, "tmp", 5, /*gz=*/false);
  fs::rename(dir.file("tmp-images-idx3-ubyte"), dir.file("train-images-idx3-ubyte"));
  EXPECT_EQ(data::load_mnist_split(dir.path(), "train").images.shape(), (Shape{5, 2, 2}));
}

TEST(LoadMnistSplit, MissingFilesListPathsTried) {
  TempDir dir;
  const std::string images = dir.file("train-images-idx3-ubyte");
  expect_error([&] { data::load_mnist_split(dir.path(), "train"); }, ErrorKind::NotFound,
               {"images", "'train'", images, images + ".gz"});
  write_split(dir, "train", 4, /*gz=*/true);
  fs::remove(dir.file("train-labels-idx1-ubyte.gz"));
  const std::string labels = dir.file("train-labels-idx1-ubyte");
  expect_error([&] { data::load_mnist_split(dir.path(), "train"); }, ErrorKind::NotFound,
               {"labels", labels, labels + ".gz"});
}

TEST(LoadMnistSplit, MissingDirectory) {
  TempDir dir;
  const std::string missing = dir.file("nowhere");
  expect_error([&] { data::load_mnist_split(missing, "train"); }, ErrorKind::NotFound,
               {missing, "does not exist", "train-images-idx3-ubyte"});
}

TEST(LoadMnistSplit, CountMismatchNamesBothFiles) {
  TempDir dir;
  write_split(dir, "train", 6, /*gz=*/false, /*n_labels=*/5);
  expect_error([&] { data::load_mnist_split(dir.path(), "train"); }, ErrorKind::Io,
               {dir.file("train-images-idx3-ubyte"), dir.file("train-labels-idx1-ubyte"), "6 images", "5 labels"});
}

TEST(LoadMnistSplit, BadLabelIsReported) {
  TempDir dir;
  write_split(dir, "train", 12, /*gz=*/true);  // labels 0..9, 0, 1
  expect_error([&] { data::load_mnist_split(dir.path(), "train", 5); }, ErrorKind::InvalidArgument,
               {dir.file("train-labels-idx1-ubyte.gz"), "label 5", "index 5"});
}

// ---- TensorDataset ---------------------------------------------------------------------------

/// Reads sample `index` of `d` into freshly allocated tensors, one per field.
std::vector<Tensor> read_sample(const data::Dataset& d, std::int64_t index) {
  std::vector<Tensor> out;
  std::vector<void*> ptrs;
  for (const data::Field& f : d.fields()) {
    out.push_back(Tensor::zeros(f.shape, f.dtype));
    ptrs.push_back(out.back().raw_data());
  }
  d.read(index, ptrs);
  return out;
}

TEST(TensorDataset, FieldsAndRows) {
  const Tensor x = Tensor::from_vector(Shape{3, 2}, std::vector<float>{0, 1, 10, 11, 20, 21});
  const Tensor y = Tensor::from_vector(Shape{3}, std::vector<std::int64_t>{7, 8, 9});
  const data::TensorDataset d({{"x", x}, {"y", y}});
  EXPECT_EQ(d.size(), 3);
  const std::vector<data::Field> f = d.fields();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].name, "x");
  EXPECT_EQ(f[0].dtype, DType::f32);
  EXPECT_EQ(f[0].shape, (Shape{2}));
  EXPECT_EQ(f[1].name, "y");
  EXPECT_EQ(f[1].dtype, DType::i64);
  EXPECT_EQ(f[1].shape, Shape{});
  const std::vector<Tensor> s = read_sample(d, 2);
  EXPECT_EQ(s[0].to_vector<float>(), (std::vector<float>{20, 21}));
  EXPECT_EQ(s[1].item(), 9);
  EXPECT_EQ(d.column("y").raw_data(), y.raw_data());  // shared, not copied
  expect_error([&] { d.column("z"); }, ErrorKind::NotFound, {"'z'", "x, y"});
}

TEST(TensorDataset, BadColumnsThrow) {
  const Tensor x = Tensor::zeros(Shape{4, 2}, DType::f32);
  expect_error([] { data::TensorDataset({}); }, ErrorKind::InvalidArgument, {"no columns"});
  expect_error(
      [&] {
        data::TensorDataset({{"x", x}, {"y", Tensor::zeros(Shape{3}, DType::i64)}});
      },
      ErrorKind::InvalidArgument, {"'x'", "[4,2]", "'y'", "[3]"});
  expect_error([&] { data::TensorDataset({{"x", x}, {"x", x}}); }, ErrorKind::InvalidArgument, {"'x'", "twice"});
  expect_error([&] { data::TensorDataset({{"", x}}); }, ErrorKind::InvalidArgument, {"empty name"});
  expect_error([&] { data::TensorDataset({{"x", Tensor()}}); }, ErrorKind::InvalidArgument, {"'x'", "undefined"});
  expect_error(
      [&] {
        data::TensorDataset({{"s", Tensor::zeros(Shape{}, DType::f32)}});
      },
      ErrorKind::InvalidArgument, {"'s'", "scalar"});
}

// ---- IdxDataset ------------------------------------------------------------------------------

TEST(IdxDataset, AddsAChannelAxis) {
  TempDir dir;
  write_split(dir, "train", 12, /*gz=*/true);
  const data::IdxDataset d(dir.path(), "train");
  EXPECT_EQ(d.size(), 12);
  const std::vector<data::Field> f = d.fields();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].name, "x");
  EXPECT_EQ(f[0].shape, (Shape{1, 2, 2}));
  EXPECT_EQ(f[1].name, "y");
  EXPECT_EQ(f[1].shape, Shape{});
  const std::vector<Tensor> s = read_sample(d, 11);
  EXPECT_EQ(s[0].to_vector<float>(), std::vector<float>(4, 11.0f / 255.0f));
  EXPECT_EQ(s[1].item(), 1);
}

TEST(IdxDataset, ErrorsOfTheSplitAndOfTheTensors) {
  TempDir dir;
  write_split(dir, "train", 12, /*gz=*/false);
  expect_error([&] { data::IdxDataset(dir.path(), "train", 5); }, ErrorKind::InvalidArgument,
               {dir.file("train-labels-idx1-ubyte"), "label 5", "index 5"});
  expect_error([&] { data::IdxDataset(dir.path(), "t10k"); }, ErrorKind::NotFound, {"t10k-images-idx3-ubyte"});
  data::LabeledImages flat{Tensor::zeros(Shape{3, 4}, DType::f32), Tensor::zeros(Shape{3}, DType::i64)};
  expect_error([&] { data::IdxDataset{flat}; }, ErrorKind::InvalidArgument, {"f32 [N, rows, cols]", "[3,4]"});
  data::LabeledImages mismatch{Tensor::zeros(Shape{3, 2, 2}, DType::f32), Tensor::zeros(Shape{2}, DType::i64)};
  expect_error([&] { data::IdxDataset{mismatch}; }, ErrorKind::InvalidArgument, {"3 images", "2 labels"});
}

// ---- CifarDataset ----------------------------------------------------------------------------

/// A CIFAR-10 binary batch of `labels.size()` records: record r has label labels[r] and pixel
/// bytes (r + i) % 256 at position i (channel i / 1024).
Bytes cifar_records(const Bytes& labels) {
  Bytes b;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (std::size_t i = 0; i < 3072; ++i) b.push_back(static_cast<unsigned char>((r + i) % 256));
  }
  return b;
}

TEST(CifarDataset, RecordsScaledToUnitRange) {
  TempDir dir;
  write_file(dir.file("data_batch_1.bin"), cifar_records({3, 9, 0}));
  const data::CifarDataset d({dir.file("data_batch_1.bin")});
  EXPECT_EQ(d.size(), 3);
  const std::vector<data::Field> f = d.fields();
  EXPECT_EQ(f[0].name, "x");
  EXPECT_EQ(f[0].dtype, DType::f32);
  EXPECT_EQ(f[0].shape, (Shape{3, 32, 32}));
  EXPECT_EQ(f[1].name, "y");
  EXPECT_EQ(f[1].dtype, DType::i64);
  const std::vector<Tensor> s = read_sample(d, 1);
  EXPECT_EQ(s[1].item(), 9);
  const std::vector<float> x = s[0].to_vector<float>();
  for (const std::size_t i : {std::size_t{0}, std::size_t{5}, std::size_t{1024}, std::size_t{3071}})
    EXPECT_EQ(x[i], static_cast<float>((1 + i) % 256) / 255.0f) << i;
}

TEST(CifarDataset, PerChannelNormalization) {
  TempDir dir;
  write_file(dir.file("b.bin"), cifar_records({1}));
  const data::CifarDataset d({dir.file("b.bin")}, {.mean = {0.5f, 0.25f, 0.0f}, .stddev = {0.5f, 2.0f, 1.0f}});
  const std::vector<float> x = read_sample(d, 0)[0].to_vector<float>();
  EXPECT_FLOAT_EQ(x[10], (10.0f / 255.0f - 0.5f) / 0.5f);          // red
  EXPECT_FLOAT_EQ(x[1024 + 10], (10.0f / 255.0f - 0.25f) / 2.0f);  // green: byte (1024 + 10) % 256
  EXPECT_FLOAT_EQ(x[2048 + 255], 255.0f / 255.0f);                 // blue, unnormalized
  expect_error(
      [&] {
        data::CifarDataset({dir.file("b.bin")}, {.stddev = {1.0f, 0.0f, 1.0f}});
      },
      ErrorKind::InvalidArgument, {"channel 1", "stddev"});
}

TEST(CifarDataset, SeveralFilesAreOneSequence) {
  TempDir dir;
  write_file(dir.file("a.bin"), cifar_records({1, 2}));
  write_file(dir.file("b.bin"), cifar_records({7}));
  const data::CifarDataset d({dir.file("a.bin"), dir.file("b.bin")});
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(read_sample(d, 1)[1].item(), 2);
  EXPECT_EQ(read_sample(d, 2)[1].item(), 7);
  EXPECT_EQ(read_sample(d, 2)[0].to_vector<float>()[0], 0.0f);  // record 0 of b.bin
}

TEST(CifarDataset, SplitFiles) {
  const std::vector<std::string> train = data::CifarDataset::split_files("/d", "train");
  ASSERT_EQ(train.size(), 5u);
  EXPECT_EQ(train[0], "/d/data_batch_1.bin");
  EXPECT_EQ(train[4], "/d/data_batch_5.bin");
  EXPECT_EQ(data::CifarDataset::split_files("/d", "test"), (std::vector<std::string>{"/d/test_batch.bin"}));
  expect_error([] { data::CifarDataset::split_files("/d", "valid"); }, ErrorKind::InvalidArgument,
               {"'valid'", "'train'", "'test'"});
}

TEST(CifarDataset, MissingFile) {
  TempDir dir;
  write_file(dir.file("data_batch_1.bin"), cifar_records({0}));
  const std::vector<std::string> files = data::CifarDataset::split_files(dir.path(), "train");
  expect_error([&] { data::CifarDataset{files}; }, ErrorKind::NotFound, {"not found", dir.file("data_batch_2.bin")});
  expect_error([&] { data::CifarDataset({dir.path()}); }, ErrorKind::Io, {dir.path(), "is a directory"});
  expect_error([] { data::CifarDataset({}); }, ErrorKind::InvalidArgument, {"no files"});
}

TEST(CifarDataset, TruncatedFile) {
  TempDir dir;
  Bytes b = cifar_records({1, 2, 3});
  b.resize(b.size() - 100);
  write_file(dir.file("cut.bin"), b);
  expect_error(
      [&] { data::CifarDataset({dir.file("cut.bin")}); }, ErrorKind::Io,
      {dir.file("cut.bin"), "truncated", "9119 bytes", "3073-byte records", "2 records and 2973 bytes left over"});
  write_file(dir.file("empty.bin"), {});
  expect_error([&] { data::CifarDataset({dir.file("empty.bin")}); }, ErrorKind::Io, {dir.file("empty.bin"), "empty"});
}

TEST(CifarDataset, LabelOutOfRange) {
  TempDir dir;
  write_file(dir.file("good.bin"), cifar_records({0, 1}));
  write_file(dir.file("bad.bin"), cifar_records({0, 9, 10, 3}));
  expect_error(
      [&] {
        data::CifarDataset({dir.file("good.bin"), dir.file("bad.bin")});
      },
      ErrorKind::Io, {dir.file("bad.bin"), "record 2", "byte offset 6146", "label 10", "0 to 9"});
}

// ---- TokenDataset ----------------------------------------------------------------------------

/// `ids` as a raw little-endian token file of `bytes` (2 or 4) per token.
Bytes token_file(const std::vector<std::uint32_t>& ids, int bytes) {
  Bytes b;
  for (std::uint32_t id : ids)
    for (int i = 0; i < bytes; ++i) b.push_back(static_cast<unsigned char>(id >> (8 * i)));
  return b;
}

TEST(TokenDataset, WindowsAndShiftedTargets) {
  TempDir dir;
  std::vector<std::uint32_t> ids(11);
  std::iota(ids.begin(), ids.end(), 100u);  // 100 .. 110
  ids[4] = 300;                             // a byte above 255: checks the little-endian decoding
  write_file(dir.file("t16"), token_file(ids, 2));
  const data::TokenDataset d(dir.file("t16"), {.type = data::TokenType::U16, .seq_len = 3, .vocab_size = 512});
  EXPECT_EQ(d.tokens(), 11);
  EXPECT_EQ(d.size(), 3);  // (11 - 1) / 3 windows; the last token is only a target
  const std::vector<data::Field> f = d.fields();
  EXPECT_EQ(f[0].name, "input");
  EXPECT_EQ(f[0].dtype, DType::i64);
  EXPECT_EQ(f[0].shape, (Shape{3}));
  EXPECT_EQ(f[1].name, "target");
  std::vector<Tensor> s = read_sample(d, 1);
  EXPECT_EQ(s[0].to_vector<std::int64_t>(), (std::vector<std::int64_t>{103, 300, 105}));
  EXPECT_EQ(s[1].to_vector<std::int64_t>(), (std::vector<std::int64_t>{300, 105, 106}));
  s = read_sample(d, 2);
  EXPECT_EQ(s[1].to_vector<std::int64_t>(), (std::vector<std::int64_t>{107, 108, 109}));
}

TEST(TokenDataset, Uint32AndLongWindows) {
  TempDir dir;
  // 3000 uint32 tokens in windows of 2500: one window, read in several 4 KiB chunks.
  std::vector<std::uint32_t> ids(3000);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::uint32_t>(70000 + 3 * i);
  write_file(dir.file("t32"), token_file(ids, 4));
  const data::TokenDataset d(dir.file("t32"), {.type = data::TokenType::U32, .seq_len = 2500, .vocab_size = 100000});
  EXPECT_EQ(d.size(), 1);
  const std::vector<Tensor> s = read_sample(d, 0);
  const std::vector<std::int64_t> in = s[0].to_vector<std::int64_t>(), out = s[1].to_vector<std::int64_t>();
  for (std::size_t i = 0; i < 2500; ++i) {
    ASSERT_EQ(in[i], 70000 + 3 * static_cast<std::int64_t>(i)) << i;
    ASSERT_EQ(out[i], in[i] + 3) << i;
  }
}

TEST(TokenDataset, MissingFileAndBadOptions) {
  TempDir dir;
  const std::string missing = dir.file("none.bin");
  expect_error([&] { data::TokenDataset(missing, {.seq_len = 4, .vocab_size = 10}); }, ErrorKind::NotFound,
               {"not found", missing});
  expect_error([&] { data::TokenDataset(dir.path(), {.seq_len = 4, .vocab_size = 10}); }, ErrorKind::Io,
               {dir.path(), "directory"});
  write_file(dir.file("t"), token_file({1, 2, 3}, 2));
  expect_error([&] { data::TokenDataset(dir.file("t"), {.seq_len = 0, .vocab_size = 10}); }, ErrorKind::InvalidArgument,
               {"seq_len", "> 0"});
  expect_error([&] { data::TokenDataset(dir.file("t"), {.seq_len = 2, .vocab_size = 0}); }, ErrorKind::InvalidArgument,
               {"vocab_size", "> 0"});
}

TEST(TokenDataset, SizeNotAMultipleOfTheTokenSize) {
  TempDir dir;
  Bytes b = token_file({1, 2, 3, 4, 5}, 4);
  b.pop_back();
  write_file(dir.file("t"), b);
  const data::TokenOptions u32{.type = data::TokenType::U32, .seq_len = 2, .vocab_size = 9};
  expect_error([&] { data::TokenDataset(dir.file("t"), u32); }, ErrorKind::Io,
               {dir.file("t"), "uint32", "19 bytes", "not a multiple of 4", "4 tokens and 3 bytes"});
  Bytes odd = token_file({1, 2, 3}, 2);
  odd.push_back(0);
  write_file(dir.file("odd"), odd);
  expect_error([&] { data::TokenDataset(dir.file("odd"), {.seq_len = 1, .vocab_size = 9}); }, ErrorKind::Io,
               {dir.file("odd"), "uint16", "7 bytes", "multiple of 2"});
}

TEST(TokenDataset, TooShortForOneWindow) {
  TempDir dir;
  write_file(dir.file("t"), token_file({1, 2, 3, 4}, 2));
  expect_error([&] { data::TokenDataset(dir.file("t"), {.seq_len = 4, .vocab_size = 9}); }, ErrorKind::InvalidArgument,
               {dir.file("t"), "4 tokens", "seq_len + 1 = 5"});
  EXPECT_EQ(data::TokenDataset(dir.file("t"), {.seq_len = 3, .vocab_size = 9}).size(), 1);
}

TEST(TokenDataset, TokenOutOfRangeNamesFileAndOffset) {
  TempDir dir;
  write_file(dir.file("t"), token_file({1, 2, 3, 4, 5, 6, 60000, 8, 9}, 2));
  const data::TokenDataset d(dir.file("t"), {.seq_len = 2, .vocab_size = 50000});
  EXPECT_EQ(d.size(), 4);
  EXPECT_NO_THROW(read_sample(d, 0));
  EXPECT_NO_THROW(read_sample(d, 1));
  // Token 6 is the last target of window 2 and the first input of window 3.
  for (const std::int64_t window : {2, 3})
    expect_error([&] { read_sample(d, window); }, ErrorKind::InvalidArgument,
                 {dir.file("t"), "token id 60000", "byte offset 12", "token 6", "vocab_size (50000)"});
}

}  // namespace
}  // namespace trainrt::test
