// examples/resnet/main.cpp — trains a ResNet (18, 34 or 50) on Fashion-MNIST or CIFAR-10.
//
//   resnet [--data DIR] [--model resnet18] [--width 16] [--epochs N | --steps N] [--batch N]
//          [--checkpoint-dir DIR [--resume]] [--metrics FILE] [--tensorboard DIR] ... (--help)
//
// Contents:
//   Options, make_cli        flags, with their defaults
//   open_data                Fashion-MNIST (IDX) or CIFAR-10 (binary batches), normalized
//   augment                  random crop (zero-padded) and horizontal flip, keyed by (seed, step)
//   make_optimizer           SGD with Nesterov momentum or AdamW, warm-up and cosine decay
//   evaluate                 test loss and accuracy over (a prefix of) the test set
//   run, main                the loop: steps, progress, metrics, evaluation, checkpoints
//
// Everything random is keyed by the seed and the step (shuffle by epoch, augmentation by step,
// initialization by the seed), so a run resumed from a checkpoint takes exactly the steps the
// uninterrupted run would have taken. The last line of stdout is one JSON object with the
// final metrics.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <trainrt/trainrt.hpp>

#include "../common/cli.h"
#include "../common/training.h"

namespace {

namespace tr = trainrt;
namespace fs = std::filesystem;
using examples::JsonObject;

// ---- flags ---------------------------------------------------------------------------------

struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string dataset = "auto";
  std::string model = "resnet18";
  std::int64_t width = 16;
  std::string stem = "cifar";
  std::int64_t batch = 128;
  std::int64_t epochs = 2;
  std::optional<std::int64_t> steps;
  std::optional<std::int64_t> stop_after;  // stop (with a checkpoint) after this step
  std::string optimizer = "sgd";
  double lr = 0.1;
  double weight_decay = 5e-4;
  double warmup = 0.05;      // fraction of the run
  double max_grad_norm = 0;  // 0: no clipping
  double label_smoothing = 0.0;
  bool augment = true;
  std::string device = "auto";
  std::string precision = "f32";
  std::int64_t threads = 0;
  std::int64_t seed = 0;
  std::int64_t eval_every = 0;    // steps; 0: at the end of every epoch
  std::int64_t eval_batches = 0;  // 0: the whole test set
  std::int64_t log_every = 10;
  std::string checkpoint_dir;
  std::int64_t checkpoint_every = 0;  // steps; 0: at the end of every epoch
  std::int64_t keep_checkpoints = 3;
  bool resume = false;
  std::string metrics;
  std::string tensorboard;
};

examples::Cli make_cli(Options& o) {
  examples::Cli cli("resnet",
                    "Trains a ResNet on Fashion-MNIST (Debian's dataset-fashion-mnist) or CIFAR-10 binary batches.");
  cli.add_string("--data", "DIR", "Fashion-MNIST IDX files, or CIFAR-10 data_batch_*.bin / test_batch.bin", o.data);
  cli.add_choice("--dataset", {"auto", "fashion-mnist", "cifar10"}, "what --data holds (auto: by its files)",
                 o.dataset);
  cli.add_choice("--model", {"resnet18", "resnet34", "resnet50"}, "architecture", o.model);
  cli.add_int("--width", "N", "channels of the first stage (64 is torchvision's ResNet)", o.width, 1, 1024);
  cli.add_choice("--stem", {"cifar", "imagenet"}, "cifar: 3x3 conv, no pooling; imagenet: 7x7/2 conv + max-pool",
                 o.stem);
  cli.add_int("--batch", "N", "mini-batch size", o.batch, 1, 65536);
  cli.add_int("--epochs", "N", "passes over the training set", o.epochs, 1, 100000);
  cli.add_int("--steps", "N", "training steps (instead of --epochs)", o.steps, 1, INT64_MAX / 2, "from --epochs");
  cli.add_int("--stop-after", "N", "stop after step N with a checkpoint (a time-limited job; --resume goes on)",
              o.stop_after, 1, INT64_MAX / 2, "none");
  cli.add_choice("--optimizer", {"sgd", "adamw"}, "sgd: Nesterov momentum 0.9; adamw", o.optimizer);
  cli.add_number("--lr", "X", "peak learning rate", o.lr, 0, 100);
  cli.add_number("--weight-decay", "X", "weight decay (L2 for sgd, decoupled for adamw)", o.weight_decay, 0, 10);
  cli.add_number("--warmup", "F", "linear warm-up, as a fraction of the run, then cosine decay to 0", o.warmup, 0, 1);
  cli.add_number("--max-grad-norm", "X", "clip the gradients to this global L2 norm (0: off)", o.max_grad_norm, 0, 1e9);
  cli.add_number("--label-smoothing", "X", "label smoothing of the cross-entropy", o.label_smoothing, 0, 0.99);
  cli.add_switch("--augment", "random crop and horizontal flip of the training images", o.augment);
  cli.add_string("--device", "cpu|cuda[:N]|auto", "where to train", o.device);
  cli.add_string("--precision", "f32|bf16|f16", "compute precision", o.precision);
  cli.add_int("--threads", "N", "worker threads, 0 = every core", o.threads, 0, 4096);
  cli.add_int("--seed", "N", "initialization, shuffle and augmentation", o.seed, 0, INT64_MAX);
  cli.add_int("--eval-every", "N", "steps between evaluations, 0 = every epoch", o.eval_every, 0, INT64_MAX);
  cli.add_int("--eval-batches", "N", "test batches per evaluation, 0 = the whole test set", o.eval_batches, 0,
              INT64_MAX);
  cli.add_int("--log-every", "N", "steps between training metrics in the logs", o.log_every, 1, INT64_MAX);
  cli.add_string("--checkpoint-dir", "DIR", "save checkpoints (step-N.safetensors) here", o.checkpoint_dir);
  cli.add_int("--checkpoint-every", "N", "steps between checkpoints, 0 = every epoch", o.checkpoint_every, 0,
              INT64_MAX);
  cli.add_int("--keep-checkpoints", "N", "newest checkpoints kept", o.keep_checkpoints, 1, 1000);
  cli.add_switch("--resume", "continue from the newest checkpoint in --checkpoint-dir", o.resume);
  cli.add_string("--metrics", "FILE", "metrics as JSON lines (default DIR/metrics.jsonl with --checkpoint-dir)",
                 o.metrics);
  cli.add_string("--tensorboard", "DIR", "TensorBoard event files (default DIR/tensorboard with --checkpoint-dir)",
                 o.tensorboard);
  cli.set_epilog(
      "Ctrl-C saves a checkpoint (with --checkpoint-dir) and stops; --resume continues from it.\n"
      "The last line of stdout is one JSON object with the final metrics.");
  return cli;
}

// ---- data ----------------------------------------------------------------------------------

struct Data {
  std::string name;
  std::shared_ptr<const tr::data::Dataset> train, test;
  tr::Shape image;          // [C, H, W]
  std::vector<float> fill;  // per channel: the normalized value of a black pixel (crop padding)
  std::int64_t pad = 0;     // crop padding
};

// Fashion-MNIST training-set statistics of pixels scaled to [0, 1]; CIFAR-10's per channel.
constexpr float kFashionMean = 0.2860f, kFashionStd = 0.3530f;
constexpr std::array<float, 3> kCifarMean{0.4914f, 0.4822f, 0.4465f}, kCifarStd{0.2470f, 0.2435f, 0.2616f};

std::shared_ptr<const tr::data::Dataset> fashion_split(const std::string& dir, const std::string& split) {
  tr::data::LabeledImages d = tr::data::load_mnist_split(dir, split, 10);
  float* p = d.images.data<float>();
  for (std::int64_t i = 0, n = d.images.numel(); i < n; ++i) p[i] = (p[i] - kFashionMean) / kFashionStd;
  return std::make_shared<tr::data::IdxDataset>(d);
}

Data open_data(const Options& o) {
  fs::path dir = o.data;
  std::string kind = o.dataset;
  if (kind == "auto") {
    if (fs::exists(dir / "cifar-10-batches-bin" / "data_batch_1.bin")) dir /= "cifar-10-batches-bin";
    kind = fs::exists(dir / "data_batch_1.bin") ? "cifar10" : "fashion-mnist";
  }
  Data d;
  d.name = kind;
  if (kind == "cifar10") {
    const tr::data::CifarOptions norm{kCifarMean, kCifarStd};
    d.train =
        std::make_shared<tr::data::CifarDataset>(tr::data::CifarDataset::split_files(dir.string(), "train"), norm);
    d.test = std::make_shared<tr::data::CifarDataset>(tr::data::CifarDataset::split_files(dir.string(), "test"), norm);
    d.pad = 4;
    for (int c = 0; c < 3; ++c) d.fill.push_back(-kCifarMean[c] / kCifarStd[c]);
  } else {
    d.train = fashion_split(dir.string(), "train");
    d.test = fashion_split(dir.string(), "t10k");
    d.pad = 2;
    d.fill = {-kFashionMean / kFashionStd};
  }
  d.image = d.train->fields().at(0).shape;
  return d;
}

// ---- augmentation --------------------------------------------------------------------------

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Writes into `out` (same shape as `in`, [B, C, H, W]) each image shifted by a random offset
/// in [-pad, pad] on both axes (uncovered pixels take `fill`) and flipped left-right with
/// probability 1/2: the usual CIFAR augmentation. The draws depend only on (seed, step, row).
void augment(const tr::Tensor& in, tr::Tensor& out, const Data& d, std::uint64_t seed, std::int64_t step) {
  const tr::Shape& s = in.shape();
  const std::int64_t B = s[0], C = s[1], H = s[2], W = s[3];
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  for (std::int64_t b = 0; b < B; ++b) {
    const std::uint64_t r = mix(mix(seed ^ 0x5EEDull) + static_cast<std::uint64_t>(step) * 0x100000001B3ull +
                                static_cast<std::uint64_t>(b));
    const std::int64_t span = 2 * d.pad + 1;
    const std::int64_t dy = static_cast<std::int64_t>(r % static_cast<std::uint64_t>(span)) - d.pad;
    const std::int64_t dx = static_cast<std::int64_t>((r >> 16) % static_cast<std::uint64_t>(span)) - d.pad;
    const bool flip = ((r >> 40) & 1u) != 0;
    for (std::int64_t c = 0; c < C; ++c) {
      const float* si = src + (b * C + c) * H * W;
      float* di = dst + (b * C + c) * H * W;
      for (std::int64_t y = 0; y < H; ++y)
        for (std::int64_t x = 0; x < W; ++x) {
          const std::int64_t sy = y + dy, sx0 = x + dx;
          const std::int64_t sx = flip ? W - 1 - sx0 : sx0;
          di[y * W + x] =
              (sy < 0 || sy >= H || sx0 < 0 || sx0 >= W) ? d.fill[static_cast<std::size_t>(c)] : si[sy * W + sx];
        }
    }
  }
}

// ---- optimizer -----------------------------------------------------------------------------

/// Peak rate after a linear warm-up over `warmup` of the run, then a cosine to zero.
tr::optim::Optimizer make_optimizer(const Options& o, std::int64_t total_steps) {
  const std::int64_t warmup = static_cast<std::int64_t>(std::llround(o.warmup * static_cast<double>(total_steps)));
  const tr::optim::Schedule schedule = tr::optim::cosine(std::max<std::int64_t>(1, total_steps - warmup), warmup);
  if (o.optimizer == "adamw") return tr::optim::AdamW{.lr = o.lr, .weight_decay = o.weight_decay, .schedule = schedule};
  return tr::optim::SGD{
      .lr = o.lr, .momentum = 0.9, .nesterov = true, .weight_decay = o.weight_decay, .schedule = schedule};
}

tr::nn::ResNetConfig model_config(const Options& o, const Data& d) {
  const auto stem = o.stem == "cifar" ? tr::nn::ResNetConfig::Stem::cifar : tr::nn::ResNetConfig::Stem::imagenet;
  tr::nn::ResNetConfig c = o.model == "resnet50"   ? tr::nn::resnet50(10, stem)
                           : o.model == "resnet34" ? tr::nn::resnet34(10, stem)
                                                   : tr::nn::resnet18(10, stem);
  c.in_channels = d.image[0];
  c.width = o.width;
  return c;
}

// ---- evaluation ----------------------------------------------------------------------------

struct EvalResult {
  double loss = 0, accuracy = 0, seconds = 0;
  std::int64_t images = 0;
};

/// Test loss and accuracy over the first `batches` batches of the test set (0: all), visited in
/// order with the last batch padded (only real rows count).
EvalResult evaluate(tr::Program& program, const tr::Value& logits, tr::data::DataLoader& test, std::int64_t batches) {
  const double start = examples::now_seconds();
  test.seek(0, 0);
  const std::int64_t n = batches > 0 ? std::min(batches, test.batches_per_epoch()) : test.batches_per_epoch();
  examples::HostMetrics m;
  for (std::int64_t i = 0; i < n; ++i) {
    const tr::data::Batch& b = test.next();
    const std::vector<tr::Tensor> out = program.evaluate(b.feeds, {logits});
    m.add(out.at(0), b.tensor("y"), b.samples);
  }
  return {m.loss(), m.accuracy(), examples::now_seconds() - start, m.count};
}

// ---- the run -------------------------------------------------------------------------------

/// The settings a resumed run must share with the run that wrote the checkpoint.
std::map<std::string, std::string> run_identity(const Options& o, const Data& d, std::int64_t total_steps) {
  return {{"trainer", "resnet"},
          {"dataset", d.name},
          {"model", o.model},
          {"width", std::to_string(o.width)},
          {"stem", o.stem},
          {"batch", std::to_string(o.batch)},
          {"total_steps", std::to_string(total_steps)},
          {"optimizer", o.optimizer},
          {"augment", o.augment ? "on" : "off"}};
}

int run(const Options& o) {
  const double t0 = examples::now_seconds();
  const tr::Device device = examples::parse_device(o.device);
  const tr::Precision precision = examples::parse_precision(o.precision);
  const Data data = open_data(o);
  tr::data::DataLoader train(data.train, o.batch, {.shuffle = true, .seed = static_cast<std::uint64_t>(o.seed)});
  tr::data::DataLoader test(data.test, o.batch, {.shuffle = false, .last_batch = tr::data::LastBatch::Pad});
  const std::int64_t per_epoch = train.batches_per_epoch();
  const std::int64_t total_steps = o.steps.value_or(o.epochs * per_epoch);
  const examples::Cadence cadence{.per_epoch = per_epoch,
                                  .total_steps = total_steps,
                                  .eval_every = o.eval_every,
                                  .checkpoint_every = o.checkpoint_every,
                                  .stop_after = o.stop_after};
  const double load_seconds = examples::now_seconds() - t0;

  tr::Graph g;
  std::vector<std::int64_t> xs{o.batch};
  xs.insert(xs.end(), data.image.begin(), data.image.end());
  const tr::Value x = g.input("x", tr::Shape(xs));
  const tr::Value y = g.input("y", {o.batch}, tr::i64);
  const tr::nn::ResNet net(g, model_config(o, data));
  const tr::Value logits = net(x);
  const tr::Value loss = tr::cross_entropy(logits, y, {.label_smoothing = o.label_smoothing});
  const double compile_start = examples::now_seconds();
  tr::Program program = tr::compile(g, loss, make_optimizer(o, total_steps),
                                    {.device = device,
                                     .precision = precision,
                                     .max_grad_norm = o.max_grad_norm,
                                     .threads = static_cast<int>(o.threads),
                                     .seed = static_cast<std::uint64_t>(o.seed),
                                     .outputs = {logits},
                                     // Under f16 an overflowing step is the loss scaler's to skip.
                                     .check_finite_loss = precision != tr::Precision::f16});
  const double compile_seconds = examples::now_seconds() - compile_start;
  std::int64_t params = 0;
  for (const std::string& name : program.variables(tr::VariableKind::parameter)) params += program.get(name).numel();

  std::optional<examples::CheckpointDir> ckpt;
  if (!o.checkpoint_dir.empty()) ckpt.emplace(o.checkpoint_dir, static_cast<int>(o.keep_checkpoints));
  const auto identity = run_identity(o, data, total_steps);
  bool resumed = false;
  if (o.resume) {
    if (!ckpt) throw examples::UsageError("--resume needs --checkpoint-dir");
    resumed = ckpt->resume(program, identity, train);
  }
  examples::RunLog::Options log_options = examples::RunLog::files(o.metrics, o.tensorboard, ckpt ? &*ckpt : nullptr);
  log_options.append = resumed;
  log_options.unit = "img";
  log_options.plain_every = o.log_every * 5;
  examples::RunLog log(log_options, total_steps);
  std::cout << "data: " << data.name << " from " << o.data << ", " << data.train->size() << " training and "
            << data.test->size() << " test images " << data.image.to_string() << "; " << per_epoch << " steps per epoch"
            << std::endl;
  std::cout << "model: " << o.model << " width " << o.width << " (" << o.stem << " stem), " << params << " parameters; "
            << o.optimizer << " lr " << o.lr << "; device " << examples::device_name(device) << ", compiled in "
            << compile_seconds << " s" << std::endl;

  auto save = [&](std::int64_t step) {
    if (!ckpt) return;
    tr::CheckpointInfo info{.epoch = step / per_epoch, .batch = step % per_epoch, .user = identity};
    log.flush();
    const fs::path p = ckpt->save(program, info);
    log.message("checkpoint: " + p.string());
  };

  tr::Tensor augmented;
  EvalResult last_eval;
  double loss_window = 0, train_seconds = 0;
  std::int64_t window = 0, correct_window = 0, start_step = program.step_count(), images = 0;
  double final_loss = NAN;
  bool stopped = false, signalled = false;
  for (std::int64_t step = start_step; step < total_steps; ++step) {
    const std::int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
    if (step == start_step || in_epoch == 0) {
      const std::int64_t left = std::min(per_epoch, total_steps - (step - in_epoch));
      log.begin("epoch " + std::to_string(epoch + 1) + "/" + std::to_string((total_steps + per_epoch - 1) / per_epoch),
                left);
    }
    const double step_start = examples::now_seconds();
    const tr::data::Batch& b = train.next();
    tr::Feeds feeds = b.feeds;
    if (o.augment) {
      const tr::Tensor& bx = b.tensor("x");
      if (!augmented.defined()) augmented = bx.clone();
      augment(bx, augmented, data, static_cast<std::uint64_t>(o.seed), step);
      feeds = tr::Feeds{{"x", augmented}, {"y", b.tensor("y")}};
    }
    const tr::StepResult r = program.step(feeds);
    train_seconds += examples::now_seconds() - step_start;
    images += o.batch;
    examples::HostMetrics m;
    m.add(r.outputs().at(0), b.tensor("y"), o.batch);
    loss_window += r.get();
    correct_window += m.correct;
    ++window;
    log.step(in_epoch + 1, o.batch, {{"loss", r.get()}, {"acc", m.accuracy()}, {"lr", program.learning_rate()}});
    const std::int64_t done = step + 1;
    if (done % o.log_every == 0 || done == total_steps) {
      final_loss = loss_window / static_cast<double>(window);
      log.record(done, "train",
                 {{"loss", final_loss},
                  {"accuracy", static_cast<double>(correct_window) / static_cast<double>(window * o.batch)},
                  {"lr", program.learning_rate()},
                  {"images_per_second", static_cast<double>(images) / train_seconds}});
      loss_window = 0;
      correct_window = 0;
      window = 0;
    }
    if (cadence.evaluate_after(done)) {
      last_eval = evaluate(program, logits, test, o.eval_batches);
      log.record(done, "test", {{"loss", last_eval.loss}, {"accuracy", last_eval.accuracy}});
      char line[160];
      std::snprintf(line, sizeof line, "step %lld: test loss %.4f, test accuracy %.4f (%lld images, %.1f s)",
                    static_cast<long long>(done), last_eval.loss, last_eval.accuracy,
                    static_cast<long long>(last_eval.images), last_eval.seconds);
      log.message(line);
    }
    const examples::Cadence::Stop stop = cadence.stop_after_step(done);
    stopped = stop != examples::Cadence::Stop::no;
    signalled = signalled || stop == examples::Cadence::Stop::signal;
    if (cadence.save_after(done, stopped)) save(done);
    if (stopped) {
      log.message(examples::Cadence::describe(stop, done));
      break;
    }
  }
  log.end();

  JsonObject summary;
  summary.add("trainer", "resnet")
      .add("model", o.model)
      .add("dataset", data.name)
      .add("loss", final_loss)
      .add("test_loss", last_eval.loss)
      .add("test_accuracy", last_eval.accuracy)
      .add("steps", program.step_count())
      .add("epochs", static_cast<double>(program.step_count()) / static_cast<double>(per_epoch))
      .add("batch", o.batch)
      .add("width", o.width)
      .add("parameters", params)
      .add("images_per_second", train_seconds > 0 ? static_cast<double>(images) / train_seconds : 0.0)
      .add("train_seconds", train_seconds)
      .add("load_seconds", load_seconds)
      .add("compile_seconds", compile_seconds)
      .add("resumed", resumed)
      .add("stopped", stopped)
      .add("device", examples::device_name(device))
      .add("precision", o.precision)
      .add("seed", o.seed);
  std::cout << summary.str() << std::endl;
  return signalled ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Cli cli = make_cli(o);
  return examples::trainer_main("resnet", argc, argv, cli, [&o] { return run(o); });
}
