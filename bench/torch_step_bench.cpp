// bench/torch_step_bench.cpp — the peer of step_bench.cpp: the same models, optimizers,
// batches and timing in libtorch's C++ API, printing the same JSON line with
// "impl":"libtorch".
//
//   torch_step_bench --model mlp|cnn|resnet18|transformer --threads N [--batch B] [--warmup W]
//                    [--steps S] [--seq-len L] [--dropout P] [--tied on|off]
//
// The models mirror examples/fashion_mnist/models.h and bench/models.h layer for layer, with
// the same initializations (PyTorch's module defaults, which libtrainrt's nn layers follow,
// and torchvision's kaiming_normal for ResNet convolutions) and the same parameter names:
//   mlp:         Linear 784-512, ReLU, Linear 512-512, ReLU, Linear 512-10
//   cnn:         3 x [Conv2d 3x3 pad 1 (no bias), BatchNorm2d, ReLU] with 32/64/128 channels,
//                2x2 max pooling after the first two blocks, global average pooling, Linear 128-10
//   resnet18:    torchvision's resnet18 with the CIFAR stem (conv3x3 stride 1, no max pooling)
//   transformer: token + learned positional embedding, 4 pre-norm layers (d 256, 4 heads,
//                FFN 1024, exact GELU), dropout on the embeddings and residual branches,
//                final LayerNorm, untied (or --tied) output projection to 4096 tokens. Causal
//                attention is written out (q k^T * scale, masked_fill -inf, softmax, @ v):
//                libtorch 1.13 has no scaled_dot_product_attention.
// Loss: mean cross-entropy. Optimizers: mlp SGD lr 0.05 momentum 0.9; cnn and resnet18 Adam
// lr 1e-3; transformer AdamW lr 1e-3 weight decay 0.01.
// Threads: at::set_num_threads(N) with one inter-op thread; at::get_parallel_info() and the
// build configuration go to stderr, so that the run records which threading and BLAS ran.
#include <torch/torch.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>

#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : fc1(register_module("fc1", torch::nn::Linear(784, 512))),
        fc2(register_module("fc2", torch::nn::Linear(512, 512))),
        fc3(register_module("fc3", torch::nn::Linear(512, 10))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(fc1(x.flatten(1)));
    h = torch::relu(fc2(h));
    return fc3(h);
  }
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(Mlp);

struct CnnImpl : torch::nn::Module {
  CnnImpl() {
    const std::int64_t widths[] = {32, 64, 128};
    std::int64_t in = 1;
    for (int i = 0; i < 3; ++i) {
      // libtorch forbids dots in submodule names: "block1_conv" stands for trainrt's "block1.conv".
      const std::string name = "block" + std::to_string(i + 1);
      convs.push_back(register_module(
          name + "_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, widths[i], 3).padding(1).bias(false))));
      bns.push_back(register_module(name + "_bn", torch::nn::BatchNorm2d(widths[i])));
      in = widths[i];
    }
    head = register_module("head", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = x;
    for (std::size_t i = 0; i < convs.size(); ++i) {
      h = torch::relu(bns[i](convs[i](h)));
      if (i < 2) h = torch::max_pool2d(h, {2, 2});
    }
    return head(h.mean({2, 3}));
  }
  std::vector<torch::nn::Conv2d> convs;
  std::vector<torch::nn::BatchNorm2d> bns;
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Cnn);

// ---- ResNet-18, CIFAR stem (bench/models.h build_resnet18) --------------------------------

torch::nn::Conv2d resnet_conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
  // torchvision's ResNet initialization.
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  return conv;
}

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(std::int64_t in, std::int64_t out, std::int64_t stride)
      : conv1(register_module("conv1", resnet_conv(in, out, 3, stride))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module("conv2", resnet_conv(out, out, 3, 1))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out)
      downsample = register_module("downsample",
                                   torch::nn::Sequential(resnet_conv(in, out, 1, stride), torch::nn::BatchNorm2d(out)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(bn1(conv1(x)));
    h = bn2(conv2(h));
    return torch::relu(h + (downsample ? downsample->forward(x) : x));
  }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::BatchNorm2d bn1, bn2;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNet18Impl : torch::nn::Module {
  ResNet18Impl()
      : conv1(register_module("conv1", resnet_conv(3, 64, 3, 1))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(64))) {
    const std::int64_t widths[] = {64, 128, 256, 512};
    std::int64_t in = 64;
    for (int stage = 0; stage < 4; ++stage) {
      const std::int64_t stride = stage == 0 ? 1 : 2;
      layers.push_back(register_module(
          "layer" + std::to_string(stage + 1),
          torch::nn::Sequential(BasicBlock(in, widths[stage], stride), BasicBlock(widths[stage], widths[stage], 1))));
      in = widths[stage];
    }
    fc = register_module("fc", torch::nn::Linear(512, 10));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = torch::relu(bn1(conv1(x)));
    for (torch::nn::Sequential& layer : layers) h = layer->forward(h);
    return fc(h.mean({2, 3}));
  }
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet18);

// ---- Transformer encoder language model (bench/models.h build_transformer) -----------------

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(std::int64_t d, std::int64_t heads)
      : heads(heads),
        qkv(register_module("qkv", torch::nn::Linear(d, 3 * d))),
        proj(register_module("proj", torch::nn::Linear(d, d))) {}
  /// Causal self-attention of x [B, L, d]; `masked` is bool [L, L], true above the diagonal.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& masked) {
    const std::int64_t b = x.size(0), l = x.size(1), d = x.size(2), dh = d / heads;
    const torch::Tensor t = qkv(x).view({b, l, 3, heads, dh}).permute({2, 0, 3, 1, 4});
    const torch::Tensor q = t[0], k = t[1], v = t[2];
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(dh)));
    scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
    const torch::Tensor o = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, L, Dh]
    return proj(o.permute({0, 2, 1, 3}).reshape({b, l, d}));
  }
  std::int64_t heads;
  torch::nn::Linear qkv, proj;
};
TORCH_MODULE(Attention);

struct FeedForwardImpl : torch::nn::Module {
  FeedForwardImpl(std::int64_t d, std::int64_t hidden)
      : fc1(register_module("fc1", torch::nn::Linear(d, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, d))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::gelu(fc1(x))); }  // exact (erf) GELU
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(FeedForward);

/// One pre-norm layer: h + dropout(attn(ln1(h))), then h + dropout(ffn(ln2(h))).
struct EncoderLayerImpl : torch::nn::Module {
  EncoderLayerImpl(std::int64_t d, std::int64_t heads, std::int64_t hidden, double p)
      : p(p),
        ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        attn(register_module("attn", Attention(d, heads))),
        ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        ffn(register_module("ffn", FeedForward(d, hidden))) {}
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& masked) {
    h = h + torch::dropout(attn(ln1(h), masked), p, is_training());
    return h + torch::dropout(ffn(ln2(h)), p, is_training());
  }
  double p;
  torch::nn::LayerNorm ln1;
  Attention attn;
  torch::nn::LayerNorm ln2;
  FeedForward ffn;
};
TORCH_MODULE(EncoderLayer);

struct TransformerImpl : torch::nn::Module {
  TransformerImpl(std::int64_t seq_len, double p, bool tied)
      : p(p),
        tied(tied),
        tok_emb(register_module("tok_emb", torch::nn::Embedding(bench::kVocab, bench::kDModel))),
        // An [L, d] table added to every sequence; an Embedding so that it gets nn.Embedding's
        // N(0, 1) initialization and the name "pos_emb.weight", as in bench/models.h.
        pos_emb(register_module("pos_emb", torch::nn::Embedding(seq_len, bench::kDModel))),
        layers(register_module("layers", torch::nn::ModuleList())),
        ln_f(register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({bench::kDModel})))),
        causal_mask(torch::triu(torch::ones({seq_len, seq_len}, torch::kBool), 1)) {
    for (std::int64_t i = 0; i < bench::kLayers; ++i)
      layers->push_back(EncoderLayer(bench::kDModel, bench::kHeads, bench::kFfn, p));
    if (!tied)
      head = register_module("head",
                             torch::nn::Linear(torch::nn::LinearOptions(bench::kDModel, bench::kVocab).bias(false)));
  }
  /// tokens i64 [B, L] -> logits [B, L, vocab].
  torch::Tensor forward(const torch::Tensor& tokens) {
    torch::Tensor h = torch::dropout(tok_emb(tokens) + pos_emb->weight, p, is_training());
    for (const auto& layer : *layers) h = layer->as<EncoderLayer>()->forward(h, causal_mask);
    h = ln_f(h);
    return tied ? torch::matmul(h, tok_emb->weight.t()) : head(h);
  }
  double p;
  bool tied;
  torch::nn::Embedding tok_emb, pos_emb;
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm ln_f;
  torch::nn::Linear head{nullptr};
  torch::Tensor causal_mask;  ///< true above the diagonal: keys after the query are masked
};
TORCH_MODULE(Transformer);

/// The kernel set OpenBLAS chose for this CPU ("SkylakeX", "Haswell", ...), or "" when the
/// BLAS in use is not OpenBLAS. A too-old OpenBLAS falls back to "Prescott" (SSE3) on CPUs
/// it does not know, several times slower; run_cpu_bench.sh then sets OPENBLAS_CORETYPE.
std::string openblas_core() {
  using CoreName = char* (*)();
  auto* fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn != nullptr ? std::string(fn()) : std::string();
}

template <class Model>
int run_model(const bench::BenchArgs& args, Model model, torch::optim::Optimizer& optimizer, double build_s) {
  const std::vector<bench::HostBatch> host = bench::make_batches(args);
  const bool tokens = bench::is_language_model(args);
  std::vector<torch::Tensor> inputs, labels;
  for (const bench::HostBatch& b : host) {
    inputs.push_back(
        tokens ? torch::from_blob(const_cast<std::int64_t*>(b.tokens.data()), bench::input_dims(args), torch::kInt64)
               : torch::from_blob(const_cast<float*>(b.images.data()), bench::input_dims(args), torch::kFloat32));
    labels.push_back(
        torch::from_blob(const_cast<std::int64_t*>(b.labels.data()), bench::label_dims(args), torch::kInt64));
  }
  model->train();

  const std::vector<torch::Tensor> params = model->parameters();
  int step = 0;
  // One training step, as a PyTorch user writes it; item() mirrors trainrt's StepResult::get().
  // Gradients are reset to undefined rather than zeroed: zero_grad(set_to_none=True), the
  // default since PyTorch 2.0 and the faster choice (libtorch 1.13's zero_grad() can only
  // zero), so backward writes fresh gradients instead of accumulating into zeros. Logits of
  // the transformer [B, L, V] are flattened to [B*L, V] against targets [B*L].
  auto train_step = [&]() -> float {
    const std::size_t k = static_cast<std::size_t>(step++) % inputs.size();
    for (const torch::Tensor& p : params) p.mutable_grad() = torch::Tensor();
    const torch::Tensor logits = model->forward(inputs[k]);
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), labels[k].reshape({-1}));
    loss.backward();
    optimizer.step();
    return loss.item<float>();
  };

  std::vector<double> losses;
  for (int i = 0; i < args.warmup; ++i) losses.push_back(train_step());
  bench::StepTimes times;
  for (int i = 0; i < args.steps; ++i) {
    times.start();
    const float loss = train_step();
    times.stop();
    losses.push_back(loss);
  }

  // libtorch has no compile step: compile_s is the time to build the model and optimizer.
  bench::JsonLine line = bench::common_fields("libtorch", args, times, build_s, losses);
  line.null("inter_op")
      .null("planned_arena_mb")
      .null("naive_mb")
      .null("variables_mb")
      .null("recomputed")
      .null("allocations_in_steps")
      .add("blas_libs", bench::mapped_libraries({"blas", "lapack", "mkl_"}))
      .add("openblas_core", openblas_core());
  std::printf("%s\n", line.str().c_str());
  return 0;
}

int run(const bench::BenchArgs& args) {
  // Inter-op threads must be set before any parallel work starts.
  at::set_num_interop_threads(1);
  at::set_num_threads(args.threads);
  torch::manual_seed(0);
  std::fprintf(stderr, "torch_step_bench: libtorch build configuration:\n%s\n", at::show_config().c_str());
  std::fprintf(stderr, "torch_step_bench: parallel info:\n%s\n", at::get_parallel_info().c_str());

  using Clock = bench::StepTimes::Clock;
  const Clock::time_point build_start = Clock::now();
  auto built = [&] { return std::chrono::duration<double>(Clock::now() - build_start).count(); };
  if (args.model == "cnn") {
    Cnn model;
    torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
    return run_model(args, model, optimizer, built());
  }
  if (args.model == "resnet18") {
    ResNet18 model;
    torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
    return run_model(args, model, optimizer, built());
  }
  if (args.model == "transformer") {
    Transformer model(args.seq_len, args.dropout, args.tied);
    torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
    return run_model(args, model, optimizer, built());
  }
  Mlp model;
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  return run_model(args, model, optimizer, built());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(bench::parse_args(argc, argv, /*ours=*/false));
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "torch_step_bench: libtorch error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "torch_step_bench: %s\n", e.what());
    return 2;
  }
}
