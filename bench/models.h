// bench/models.h — the two larger models of the CPU benchmark, built with trainrt's public
// API (the Fashion-MNIST mlp and cnn live in examples/fashion_mnist/models.h). Their libtorch
// twins, layer for layer, are in torch_step_bench.cpp.
//
//   build_resnet18     ResNet-18 with the CIFAR stem, 10 classes, inputs x f32 [B, 3, 32, 32]
//                      and y i64 [B]; parameter names as torchvision's resnet18
//   build_transformer  a pre-norm transformer encoder language model, inputs tokens and
//                      targets i64 [B, L]; next-token cross-entropy
#pragma once

#include <cstdint>
#include <string>

#include <trainrt/trainrt.hpp>

namespace bench_models {

/// What a builder returns.
struct Model {
  trainrt::Value logits;  ///< [B, 10] (resnet18) or [B, L, vocab] (transformer)
  trainrt::Value loss;    ///< mean cross-entropy
};

// ---- ResNet-18, CIFAR stem ------------------------------------------------------------------
//
// conv3x3(3->64, stride 1, pad 1, no bias) + BN + ReLU and no max pooling (the CIFAR variant
// of He et al. 2016, as in most CIFAR-10 training recipes), then four stages of two
// BasicBlocks with 64/128/256/512 channels; the first block of stages 2-4 halves the
// resolution with stride 2 and has a 1x1 conv + BN projection shortcut. Global average
// pooling, Linear(512, 10). Convolution weights are initialized as torchvision does
// (kaiming_normal, fan_out, ReLU gain); batch norm with ones/zeros; the classifier with
// Linear's default. Input 32x32 gives 32/16/8/4 pixels per stage.

namespace detail {

/// A bias-free convolution whose weight is initialized like torchvision's ResNet.
inline trainrt::Value resnet_conv(trainrt::Graph& g, const std::string& name, const trainrt::Value& x, std::int64_t in,
                                  std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  namespace tr = trainrt;
  const tr::Value w =
      g.parameter(name + ".weight", {out, in, kernel, kernel},
                  tr::init::kaiming_normal(0.0, tr::Init::FanMode::fan_out, tr::Init::Nonlinearity::relu));
  const std::int64_t pad = kernel / 2;
  return tr::conv2d(x, w, {}, {.stride = {stride, stride}, .padding = {pad, pad}});
}

inline trainrt::Value resnet_bn(trainrt::Graph& g, const std::string& name, const trainrt::Value& x,
                                std::int64_t channels) {
  return trainrt::nn::BatchNorm2d(g, name, channels)(x);
}

/// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
inline trainrt::Value basic_block(trainrt::Graph& g, const std::string& name, const trainrt::Value& x, std::int64_t in,
                                  std::int64_t out, std::int64_t stride) {
  namespace tr = trainrt;
  tr::Value h = tr::relu(resnet_bn(g, name + ".bn1", resnet_conv(g, name + ".conv1", x, in, out, 3, stride), out));
  h = resnet_bn(g, name + ".bn2", resnet_conv(g, name + ".conv2", h, out, out, 3, 1), out);
  tr::Value shortcut = x;
  if (stride != 1 || in != out) {
    shortcut = resnet_bn(g, name + ".downsample.1", resnet_conv(g, name + ".downsample.0", x, in, out, 1, stride), out);
  }
  return tr::relu(tr::add(h, shortcut));
}

}  // namespace detail

/// x: f32 [B, 3, 32, 32] (normalized pixels), y: i64 [B] in [0, 10).
inline Model build_resnet18(trainrt::Graph& g, const trainrt::Value& x, const trainrt::Value& y) {
  namespace tr = trainrt;
  tr::Value h = tr::relu(detail::resnet_bn(g, "bn1", detail::resnet_conv(g, "conv1", x, 3, 64, 3, 1), 64));
  const std::int64_t widths[] = {64, 128, 256, 512};
  std::int64_t in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const std::string layer = "layer" + std::to_string(stage + 1);
    const std::int64_t stride = stage == 0 ? 1 : 2;
    h = detail::basic_block(g, layer + ".0", h, in, widths[stage], stride);
    h = detail::basic_block(g, layer + ".1", h, widths[stage], widths[stage], 1);
    in = widths[stage];
  }
  tr::nn::Linear fc(g, "fc", 512, 10);
  const tr::Value logits = fc(tr::global_avg_pool2d(h));
  return {logits, tr::cross_entropy(logits, y)};
}

// ---- Transformer encoder language model ---------------------------------------------------------
//
// h = dropout(tok_emb[tokens] + pos_emb[0:L])
// per layer (pre-norm, as nn.TransformerEncoderLayer with norm_first=True):
//   h = h + dropout(proj(attention(ln1(h))))     causal, heads of d_model / heads
//   h = h + dropout(fc2(gelu(fc1(ln2(h)))))       exact (erf) GELU
// logits = head(ln_f(h)), or ln_f(h) tok_emb^T when tied; loss = mean cross-entropy of
// logits[B, L, vocab] against targets[B, L].
//
// Dropout sits on the embeddings and on the two residual branches; there is none on the
// attention probabilities (trainrt's scaled_dot_product_attention has no dropout) nor inside
// the feed-forward block, and the libtorch twin does exactly the same. q, k and v come from one
// fused Linear(d, 3d), as in torch.nn.MultiheadAttention's in_proj. Initializations are
// PyTorch's module defaults: Embedding N(0, 1) (the positional table too), Linear
// kaiming_uniform(sqrt 5), LayerNorm ones/zeros.

struct TransformerConfig {
  std::int64_t vocab = 4096;
  std::int64_t seq_len = 128;
  std::int64_t d_model = 256;
  std::int64_t heads = 4;
  std::int64_t ffn = 1024;
  std::int64_t layers = 4;
  double dropout = 0.1;         ///< 0 removes the dropout ops
  bool tie_embeddings = false;  ///< true: the output projection is tok_emb.weight transposed
};

namespace detail {

inline trainrt::Value maybe_dropout(const trainrt::Value& x, double p) { return p > 0.0 ? trainrt::dropout(x, p) : x; }

/// Causal multi-head self-attention of x [B, L, d]: one fused qkv projection, heads split
/// with reshape/permute, trainrt's scaled_dot_product_attention, heads merged, out projection.
inline trainrt::Value self_attention(trainrt::Graph& g, const std::string& name, const trainrt::Value& x,
                                     const TransformerConfig& c) {
  namespace tr = trainrt;
  const std::int64_t b = x.shape()[0], l = x.shape()[1], dh = c.d_model / c.heads;
  tr::nn::Linear qkv(g, name + ".qkv", c.d_model, 3 * c.d_model);
  tr::nn::Linear proj(g, name + ".proj", c.d_model, c.d_model);
  // [B, L, 3d] -> [B, L, 3, H, Dh] -> [3, B, H, L, Dh]; q, k, v are its three slices.
  const tr::Value heads = tr::permute(tr::reshape(qkv(x), {b, l, 3, c.heads, dh}), {2, 0, 3, 1, 4});
  auto part = [&](std::int64_t i) { return tr::squeeze(tr::slice(heads, 0, i, i + 1), 0); };
  const tr::Value o = tr::scaled_dot_product_attention(part(0), part(1), part(2), {.causal = true});
  // [B, H, L, Dh] -> [B, L, H, Dh] -> [B, L, d]
  return proj(tr::reshape(tr::permute(o, {0, 2, 1, 3}), {b, l, c.d_model}));
}

}  // namespace detail

/// tokens, targets: i64 [B, c.seq_len] with values in [0, c.vocab).
inline Model build_transformer(trainrt::Graph& g, const trainrt::Value& tokens, const trainrt::Value& targets,
                               const TransformerConfig& c = {}) {
  namespace tr = trainrt;
  tr::nn::Embedding tok_emb(g, "tok_emb", c.vocab, c.d_model);
  // A [L, d] table added to every sequence: the same as nn.Embedding looked up at 0..L-1.
  const tr::Value pos_emb = g.parameter("pos_emb.weight", {c.seq_len, c.d_model}, tr::init::normal(0.0, 1.0));
  tr::Value h = detail::maybe_dropout(tr::add(tok_emb(tokens), pos_emb), c.dropout);
  for (std::int64_t i = 0; i < c.layers; ++i) {
    const std::string name = "layers." + std::to_string(i);
    tr::nn::LayerNorm ln1(g, name + ".ln1", {c.d_model}), ln2(g, name + ".ln2", {c.d_model});
    h = tr::add(h, detail::maybe_dropout(detail::self_attention(g, name + ".attn", ln1(h), c), c.dropout));
    tr::nn::Linear fc1(g, name + ".ffn.fc1", c.d_model, c.ffn), fc2(g, name + ".ffn.fc2", c.ffn, c.d_model);
    h = tr::add(h, detail::maybe_dropout(fc2(tr::gelu(fc1(ln2(h)))), c.dropout));
  }
  tr::nn::LayerNorm ln_f(g, "ln_f", {c.d_model});
  h = ln_f(h);
  tr::Value logits;
  if (c.tie_embeddings) {
    // Flattened to one [B*L, d] x [d, vocab] product, as Linear does, so that the table's
    // gradient is one matrix product rather than a batch of them summed.
    const tr::Value flat = tr::matmul(tr::flatten(h, 0, 1), tok_emb.weight, {.transpose_b = true});
    logits = tr::reshape(flat, {h.shape()[0], h.shape()[1], c.vocab});
  } else {
    logits = tr::nn::Linear(g, "head", c.d_model, c.vocab, /*bias=*/false)(h);
  }
  return {logits, tr::cross_entropy(logits, targets)};
}

}  // namespace bench_models
