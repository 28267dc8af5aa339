// trainrt/data.hpp — datasets and the loader that cuts them into ready mini-batches.
//
// Contents:
//   IDX files         read_idx_images, read_idx_labels, LabeledImages, load_mnist_split
//   Dataset           the interface every reader implements: size, fields, read one sample
//   readers           TensorDataset (tensors in memory), IdxDataset (MNIST layout),
//                     CifarDataset (CIFAR-10 binary batches), TokenDataset (uint16/uint32 token files)
//   DataLoader        seeded shuffling, drop/pad of the last batch, batches prepared ahead on
//                     oneTBB tasks into a ring of preallocated buffers, wait-time accounting
//
// A complete trainer that uses the loader is examples/fashion_mnist/main.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trainrt/program.hpp"
#include "trainrt/tensor.hpp"

namespace trainrt::detail {
class LoaderImpl;
}

/// Datasets (IDX, CIFAR-10, token files, tensors in memory) and the prefetching DataLoader.
namespace trainrt::data {

// ---- IDX files -------------------------------------------------------------------------------

/// Reads the images of an IDX file (gzip-compressed or not; unsigned-byte pixels) as f32
/// [N, rows, cols] scaled to [0, 1]. Throws trainrt::Error (Io or NotFound) naming the file
/// and what is wrong: missing, wrong magic number, wrong element type, truncated.
Tensor read_idx_images(const std::string& path);

/// Reads the labels of an IDX file (gzip-compressed or not) as i64 [N]; a label >= num_classes
/// throws trainrt::Error naming the file and the offending index.
Tensor read_idx_labels(const std::string& path, std::int64_t num_classes);

/// Images with their labels.
struct LabeledImages {
  Tensor images;  ///< f32 [N, rows, cols]
  Tensor labels;  ///< i64 [N]
};

/// Loads the MNIST-layout split ("train" or "t10k") from `dir`, which holds
/// `<split>-images-idx3-ubyte` and `<split>-labels-idx1-ubyte`, each possibly with ".gz"
/// (Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
/// Checks that images and labels agree in count.
LabeledImages load_mnist_split(const std::string& dir, const std::string& split, std::int64_t num_classes = 10);

// ---- the Dataset interface -------------------------------------------------------------------

/// One field of a sample: `name` becomes the feed name of the batched tensor, which is
/// dtype [batch, shape...] (e.g. {"x", f32, [1,28,28]} is batched as f32 [batch,1,28,28]).
struct Field {
  std::string name;          ///< the feed name of the batched tensor
  DType dtype = DType::f32;  ///< element type
  Shape shape;               ///< of one sample; [] for a scalar such as a class label
};

/// A finite, indexable collection of samples, each made of the same named fields. A
/// DataLoader reads samples from background threads, so every member must be safe to call
/// from several threads at once and must not change what it returns over the dataset's life.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// The number of samples.
  virtual std::int64_t size() const = 0;
  /// The fields of every sample, in the order read() writes them; at least one.
  virtual std::vector<Field> fields() const = 0;
  /// Writes sample `index` (0 <= index < size(), which the caller guarantees): `out[i]` points
  /// to storage for fields()[i], shape.numel() elements of its dtype, aligned for that dtype
  /// and not overlapping the others. Throws trainrt::Error naming the file and the record
  /// when the data is damaged; what it wrote before throwing is unspecified.
  virtual void read(std::int64_t index, std::span<void* const> out) const = 0;
};

// ---- readers ---------------------------------------------------------------------------------

/// Named tensors already in memory, all with the same leading dimension N: sample i is row i
/// of each (fields have the tensors' trailing shapes). The tensors are shared, not copied:
/// the caller must not write them while a DataLoader reads them.
class TensorDataset : public Dataset {
 public:
  /// Throws trainrt::Error (InvalidArgument) for no columns, an undefined or rank-0 tensor,
  /// an empty or repeated name, or leading dimensions that differ.
  explicit TensorDataset(std::vector<std::pair<std::string, Tensor>> columns);
  std::int64_t size() const override { return size_; }  ///< N, the tensors' leading dimension
  /// One field per column, named after it, with the column's trailing shape.
  std::vector<Field> fields() const override;
  /// Copies row `index` of every column into `out`.
  void read(std::int64_t index, std::span<void* const> out) const override;
  /// The tensor of column `name` ([N, ...]); throws NotFound listing the columns.
  const Tensor& column(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, Tensor>> columns_;
  std::int64_t size_ = 0;
};

/// An MNIST-layout split as a Dataset with fields "x" f32 [1, rows, cols] (one channel: the
/// layout conv2d takes) and "y" i64 [].
class IdxDataset : public TensorDataset {
 public:
  /// Wraps images and labels already loaded (e.g. normalized by the caller); shares their
  /// storage. Throws InvalidArgument unless images are f32 [N, rows, cols] and labels i64 [N].
  explicit IdxDataset(const LabeledImages& data);
  /// Loads the split with load_mnist_split() (its errors, unchanged).
  IdxDataset(const std::string& dir, const std::string& split, std::int64_t num_classes = 10);
};

/// Per-channel normalization of CifarDataset: x = (byte / 255 - mean[c]) / stddev[c].
struct CifarOptions {
  std::array<float, 3> mean{0.0f, 0.0f, 0.0f};    ///< per channel (red, green, blue)
  std::array<float, 3> stddev{1.0f, 1.0f, 1.0f};  ///< per channel, each > 0
};

/// CIFAR-10 binary batches (cifar-10-batches-bin): each record is one label byte (0-9) and
/// 3072 pixel bytes, 32x32 red then green then blue. Fields "x" f32 [3, 32, 32] (CHW, scaled
/// to [0, 1] and normalized by CifarOptions) and "y" i64 []. The files are read into memory
/// (as bytes, 3073 per sample) and checked when the dataset is built.
class CifarDataset final : public Dataset {
 public:
  /// Reads `files` in order (samples are numbered across them). Throws trainrt::Error naming
  /// the file: NotFound for a missing one; Io for a size that is not a whole number of
  /// 3073-byte records or a label > 9 (naming the record); InvalidArgument for no files or a
  /// stddev <= 0.
  explicit CifarDataset(const std::vector<std::string>& files, const CifarOptions& options = {});
  /// The files of `split` in `dir`: "train" is data_batch_1.bin ... data_batch_5.bin, "test"
  /// is test_batch.bin. Checks nothing on disk; throws InvalidArgument for another split.
  static std::vector<std::string> split_files(const std::string& dir, const std::string& split);
  std::int64_t size() const override { return size_; }
  std::vector<Field> fields() const override;
  void read(std::int64_t index, std::span<void* const> out) const override;

 private:
  std::vector<unsigned char> records_;  // every file's records, back to back
  std::int64_t size_ = 0;
  std::array<float, std::size_t{3} * 256> table_{};  // channel c, byte v -> normalized value, at c * 256 + v
};

/// The element type of a token file: raw little-endian unsigned integers, no header.
enum class TokenType { U16, U32 };

/// What a TokenDataset cuts from its file. Designated initializers follow member order.
struct TokenOptions {
  TokenType type = TokenType::U16;  ///< width of each token in the file
  std::int64_t seq_len = 0;         ///< tokens per window, > 0
  std::int64_t vocab_size = 0;      ///< token ids must be < vocab_size, > 0
};

/// Language-model pairs from a token file: sample i is the window of tokens starting at
/// i * seq_len, with fields "input" i64 [seq_len] (tokens i*L .. i*L+L-1) and "target" i64
/// [seq_len] (the next token of each, i*L+1 .. i*L+L). Windows do not overlap, so there are
/// (tokens - 1) / seq_len of them; the rest of the file is not used. The file is read on
/// demand with pread(2) (it may be larger than memory) and must not change while it is open.
class TokenDataset final : public Dataset {
 public:
  /// Opens `path`. Throws trainrt::Error naming the file: NotFound for a missing one; Io for
  /// a size that is not a multiple of the token size; InvalidArgument for seq_len or
  /// vocab_size <= 0, or a file too short for one window (seq_len + 1 tokens).
  TokenDataset(const std::string& path, const TokenOptions& options);
  ~TokenDataset() override;
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;
  std::int64_t size() const override { return windows_; }
  std::vector<Field> fields() const override;
  /// Throws InvalidArgument naming the file, the token's byte offset and its value when a
  /// token id is >= vocab_size (ids are checked as windows are read, not when opening), and
  /// Io when the file became shorter.
  void read(std::int64_t index, std::span<void* const> out) const override;
  /// Tokens in the file.
  std::int64_t tokens() const noexcept { return tokens_; }

 private:
  std::string path_;
  TokenOptions options_;
  int fd_ = -1;
  std::int64_t tokens_ = 0;
  std::int64_t windows_ = 0;
};

// ---- DataLoader ------------------------------------------------------------------------------

/// What to do with the last batch of an epoch when the batch size does not divide the dataset.
enum class LastBatch {
  Drop,  ///< skip it: every batch holds distinct samples
  Pad,   ///< fill it up by repeating samples from the start of the epoch's order
};

/// Options of a DataLoader. Designated initializers must follow this member order.
struct LoaderOptions {
  /// Visit samples in a seeded random order, else in index order.
  bool shuffle = true;
  /// With `epoch`, the only input of the order: splitmix64 keyed by (seed, epoch) and
  /// Fisher-Yates, the same on every platform and for any prefetch depth or thread timing.
  std::uint64_t seed = 0;
  /// What to do with the last, partial batch of an epoch.
  LastBatch last_batch = LastBatch::Drop;
  /// Batch buffers in the ring, >= 1: next() hands one out while up to prefetch - 1 later
  /// batches are prepared in the background (2 is double buffering; 1 prepares each batch
  /// only once it is asked for).
  int prefetch = 2;
  /// Batches prepared at the same time by background tasks, >= 1 (each batch is one task).
  int threads = 1;
  /// Data-parallel training: this process is rank `rank` of `world` (0 <= rank < world).
  /// With world > 1 the loader's batch_size is the global batch, which must divide by
  /// `world` (else InvalidArgument); each batch this loader hands out holds rows
  /// [rank * b, (rank + 1) * b) of the global batch, b = batch_size / world. Give every rank
  /// the same seed: their parts are then disjoint and together make the global batch.
  int rank = 0;
  /// The number of ranks sharing each global batch, >= 1 (1: this process reads whole batches).
  int world = 1;
};

/// One mini-batch handed out by DataLoader::next().
struct Batch {
  std::int64_t epoch = 0;    ///< the epoch it belongs to
  std::int64_t index = 0;    ///< its position in the epoch, 0 <= index < batches_per_epoch()
  std::int64_t samples = 0;  ///< leading rows that are distinct samples; the rest (LastBatch::Pad) repeat
  /// One tensor per Field, named after it, of dtype [batch_size, shape...]: ready for
  /// Program::step() or Program::evaluate().
  Feeds feeds;
  /// The feed named `name`; throws NotFound listing the names.
  const Tensor& tensor(std::string_view name) const;
};

/// What the loader measured. Waiting is time next() spent blocked because its batch was not
/// ready yet (including preparing it on the caller's thread when no background thread had
/// started it); in steady state with prefetch >= 2 and a dataset faster than the step, it
/// stays near zero.
struct LoaderStats {
  double wait_seconds = 0;   ///< total time next() waited
  std::int64_t batches = 0;  ///< batches handed out by next()
  std::int64_t waits = 0;    ///< of those, the ones that were not ready when asked for
};

/// Cuts a Dataset into mini-batches of a fixed size, epoch after epoch, as an endless
/// stream: epoch 0 batch 0, 1, ..., then epoch 1, and so on (seek() moves it). Batches are
/// assembled by oneTBB tasks ahead of consumption into `prefetch` buffers allocated once, so
/// that the steady state allocates nothing per batch (each epoch allocates its order once).
/// A loader is used from one thread at a time; it is movable, not copyable, and a moved-from
/// loader may only be destroyed or assigned to.
class DataLoader {
 public:
  /// Starts preparing the first batches of epoch 0 at once. Throws trainrt::Error
  /// (InvalidArgument) for a null or empty dataset, batch_size <= 0, prefetch or threads < 1,
  /// fields that are missing, unnamed or named twice, or LastBatch::Drop with fewer samples
  /// than one batch.
  DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, const LoaderOptions& options = {});
  /// Stops the background work: tasks not started do nothing, running ones stop at their
  /// next sample, and the destructor returns after the last has finished.
  ~DataLoader();
  /// Takes over the other loader's stream and background work; that one is left moved-from.
  DataLoader(DataLoader&&) noexcept;
  /// Stops this loader's background work (as the destructor does) and takes over the other's.
  DataLoader& operator=(DataLoader&&) noexcept;
  DataLoader(const DataLoader&) = delete;  ///< a loader owns its worker threads
  DataLoader& operator=(const DataLoader&) = delete;

  /// The next batch of the stream, waiting only if it is not ready. The Batch and its tensors
  /// belong to the loader and stay valid until the next call to next() or seek(), or the
  /// loader's destruction: clone() what must live longer. If preparing the batch failed (a
  /// damaged record, say) the Dataset's trainrt::Error is thrown here, its message extended
  /// with the batch and epoch; the stream then goes on with the following batch.
  const Batch& next();
  /// Makes the next call to next() return batch `batch` of `epoch` (both >= 0, batch <
  /// batches_per_epoch(), else InvalidArgument); discards the batches prepared so far.
  void seek(std::int64_t epoch, std::int64_t batch = 0);
  /// Batches per epoch: N / batch_size with LastBatch::Drop, rounded up with LastBatch::Pad.
  std::int64_t batches_per_epoch() const noexcept;
  /// Rows of every batch tensor: the batch size given to the constructor, divided by
  /// LoaderOptions::world.
  std::int64_t batch_size() const noexcept;
  /// The dataset's fields (the feeds of every batch, in order).
  const std::vector<Field>& fields() const noexcept;
  /// Counters since construction (seek() keeps them).
  LoaderStats stats() const noexcept;

 private:
  std::unique_ptr<trainrt::detail::LoaderImpl> impl_;
};

}  // namespace trainrt::data
