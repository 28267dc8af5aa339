// trainrt/data.hpp — reading datasets and cutting them into mini-batches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainrt/tensor.hpp"

namespace trainrt::data {

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
/// <split>-images-idx3-ubyte and <split>-labels-idx1-ubyte, each possibly with ".gz"
/// (Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).
/// Checks that images and labels agree in count.
LabeledImages load_mnist_split(const std::string& dir, const std::string& split, std::int64_t num_classes = 10);

/// Cuts a dataset into mini-batches in a seeded random order (or in order). The order of
/// epoch e is a function of (seed, e) only (splitmix64 and Fisher-Yates, the same on every
/// platform). With drop_last, a last partial batch is skipped; otherwise it is padded by
/// repeating samples from the start of the epoch's order, so every batch has the same
/// static shape. Images may have any rank >= 2 ([N, ...]); batches keep the trailing shape.
/// The constructor starts epoch 0 and throws trainrt::Error when there is no full batch to
/// give (an empty dataset, batch_size <= 0, or drop_last with fewer samples than a batch).
class BatchSampler {
 public:
  BatchSampler(LabeledImages dataset, std::int64_t batch_size, bool shuffle, std::uint64_t seed,
               bool drop_last = true);
  /// Batches per epoch.
  std::int64_t batches_per_epoch() const noexcept;
  /// Starts epoch `epoch` (0-based): fixes its order.
  void start_epoch(std::int64_t epoch);
  /// Fills `images` (f32 [batch, rows, cols]) and `labels` (i64 [batch]) with batch `index`
  /// of the current epoch. The tensors are allocated once by the sampler and reused: the
  /// next call overwrites what this one returned.
  void batch(std::int64_t index, Tensor& images, Tensor& labels);

 private:
  LabeledImages data_;
  std::int64_t batch_size_;
  bool shuffle_;
  std::uint64_t seed_;
  bool drop_last_;
  std::vector<std::int64_t> order_;
  Tensor images_, labels_;
};

}  // namespace trainrt::data
