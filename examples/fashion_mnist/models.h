// examples/fashion_mnist/models.h — the two Fashion-MNIST models of the example trainer,
// shared with bench/ so that the benchmark measures exactly what the example trains.
//
//   mlp: 784-512-512-10 with ReLU
//   cnn: three blocks conv3x3 (no bias) + batch norm + ReLU with 32, 64, 128 channels,
//        2x2 max pooling after the first two, global average pooling, linear 128-10
#pragma once

#include <stdexcept>
#include <string>

#include <trainrt/trainrt.hpp>

namespace fashion {

struct Model {
  trainrt::Value logits;  ///< [batch, 10]
  trainrt::Value loss;    ///< mean cross-entropy
};

/// x: f32 [batch, 1, 28, 28] (normalized pixels), y: i64 [batch].
inline Model build_mlp(trainrt::Graph& g, const trainrt::Value& x, const trainrt::Value& y) {
  namespace tr = trainrt;
  tr::nn::Linear fc1(g, "fc1", 784, 512), fc2(g, "fc2", 512, 512), fc3(g, "fc3", 512, 10);
  const tr::Value h = tr::relu(fc2(tr::relu(fc1(tr::flatten(x)))));
  const tr::Value logits = fc3(h);
  return {logits, tr::cross_entropy(logits, y)};
}

inline Model build_cnn(trainrt::Graph& g, const trainrt::Value& x, const trainrt::Value& y) {
  namespace tr = trainrt;
  tr::Value h = x;
  const std::int64_t widths[] = {32, 64, 128};
  std::int64_t in = 1;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "block" + std::to_string(i + 1);
    tr::nn::Conv2d conv(g, name + ".conv", in, widths[i], {3, 3}, {.padding = {1, 1}}, /*bias=*/false);
    tr::nn::BatchNorm2d bn(g, name + ".bn", widths[i]);
    h = tr::relu(bn(conv(h)));
    if (i < 2) h = tr::max_pool2d(h, {.kernel = {2, 2}});
    in = widths[i];
  }
  tr::nn::Linear head(g, "head", 128, 10);
  const tr::Value logits = head(tr::global_avg_pool2d(h));
  return {logits, tr::cross_entropy(logits, y)};
}

/// build_mlp or build_cnn by name ("mlp", "cnn"); throws std::invalid_argument otherwise.
inline Model build_model(const std::string& name, trainrt::Graph& g, const trainrt::Value& x, const trainrt::Value& y) {
  if (name == "mlp") return build_mlp(g, x, y);
  if (name == "cnn") return build_cnn(g, x, y);
  throw std::invalid_argument("unknown model '" + name + "' (expected mlp or cnn)");
}

}  // namespace fashion
