// examples/bert/main.cpp — pre-trains BERT with masked-language modelling on a text corpus.
//
//   bert [--corpus PATH] [--model tiny|mini|small|base] [--vocab FILE | --vocab-size N]
//        [--seq-len N] [--epochs N | --steps N] [--checkpoint-dir DIR [--resume]] ... (--help)
//
// Contents:
//   Options, make_cli      flags, with their defaults
//   load_text              the corpus, split into training and held-out documents
//   make_tokenizer         WordPiece: loaded from a vocab file, or trained on the training split
//   evaluate               masked-LM loss and accuracy on the held-out documents
//   run, main              the loop: steps, progress, metrics, evaluation, checkpoints
//
// The default corpus is Debian's `fortunes` package (/usr/share/games/fortunes: about 2.5 MB
// of English quotations, jokes and verse, entries separated by "%" lines). Masking is keyed by
// (seed, sample) and dropout by (seed, step), so a resumed run takes the same steps as an
// uninterrupted one. The last line of stdout is one JSON object with the final metrics.
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
#include <vector>

#include <trainrt/text.hpp>
#include <trainrt/trainrt.hpp>

#include "../common/cli.h"
#include "../common/training.h"

namespace {

namespace tr = trainrt;
namespace fs = std::filesystem;
using examples::JsonObject;

// ---- flags ---------------------------------------------------------------------------------

struct Options {
  std::string corpus = "/usr/share/games/fortunes";
  std::string format = "fortune";
  std::string vocab;
  std::int64_t vocab_size = 8192;
  std::string model = "tiny";
  std::int64_t seq_len = 64;
  std::int64_t max_predictions = 10;
  double mask_prob = 0.15;
  std::int64_t dupe_factor = 10;  // masked copies of the corpus per epoch
  std::int64_t batch = 32;
  std::int64_t epochs = 1;
  std::optional<std::int64_t> steps;
  std::optional<std::int64_t> stop_after;  // stop (with a checkpoint) after this step
  double lr = 1e-3;
  double weight_decay = 0.01;
  double warmup = 0.05;
  double max_grad_norm = 0;  // 0: no clipping
  double dropout = 0.1;
  std::int64_t holdout = 20;  // every Nth document is held out for evaluation
  std::string device = "auto";
  std::string precision = "f32";
  std::int64_t threads = 0;
  std::int64_t seed = 0;
  std::int64_t eval_every = 500;
  std::int64_t eval_batches = 0;
  std::int64_t log_every = 10;
  std::string checkpoint_dir;
  std::int64_t checkpoint_every = 0;
  std::int64_t keep_checkpoints = 3;
  bool resume = false;
  std::string metrics;
  std::string tensorboard;
};

examples::Cli make_cli(Options& o) {
  examples::Cli cli("bert", "Pre-trains BERT with masked-language modelling (WordPiece tokens) on a text corpus.");
  cli.add_string("--corpus", "PATH", "a text file or a directory of them (default: Debian's fortunes package)",
                 o.corpus);
  cli.add_choice("--format", {"fortune", "lines", "paragraphs"},
                 "documents are %-separated entries, lines, or blank-line-separated paragraphs", o.format);
  cli.add_string("--vocab", "FILE", "WordPiece vocabulary (vocab.txt, one token per line) instead of training one",
                 o.vocab);
  cli.add_int("--vocab-size", "N", "size of the vocabulary trained on the corpus", o.vocab_size, 64, 1 << 20);
  cli.add_choice("--model", {"tiny", "mini", "small", "base"}, "BERT size (L2/H128, L4/H256, L4/H512, L12/H768)",
                 o.model);
  cli.add_int("--seq-len", "N", "tokens per sequence", o.seq_len, 8, 512);
  cli.add_int("--max-predictions", "N", "masked positions per sequence", o.max_predictions, 1, 512);
  cli.add_number("--mask-prob", "P", "fraction of tokens masked", o.mask_prob, 0.01, 0.9);
  cli.add_int("--dupe-factor", "N", "the corpus masked N different ways; an epoch visits every copy", o.dupe_factor, 1,
              1000);
  cli.add_int("--batch", "N", "sequences per step", o.batch, 1, 65536);
  cli.add_int("--epochs", "N", "passes over the training documents", o.epochs, 1, 100000);
  cli.add_int("--steps", "N", "training steps (instead of --epochs)", o.steps, 1, INT64_MAX / 2, "from --epochs");
  cli.add_int("--stop-after", "N", "stop after step N with a checkpoint (a time-limited job; --resume goes on)",
              o.stop_after, 1, INT64_MAX / 2, "none");
  cli.add_number("--lr", "X", "peak learning rate of AdamW", o.lr, 0, 10);
  cli.add_number("--weight-decay", "X", "AdamW's decoupled weight decay", o.weight_decay, 0, 10);
  cli.add_number("--warmup", "F", "linear warm-up, as a fraction of the run, then cosine decay to 0", o.warmup, 0, 1);
  cli.add_number("--max-grad-norm", "X", "clip the gradients to this global L2 norm (0: off)", o.max_grad_norm, 0, 1e9);
  cli.add_number("--dropout", "P", "dropout of the hidden states and attention", o.dropout, 0, 0.9);
  cli.add_int("--holdout", "N", "every Nth document is held out for evaluation", o.holdout, 2, 1000000);
  cli.add_string("--device", "cpu|cuda[:N]|auto", "where to train", o.device);
  cli.add_string("--precision", "f32|bf16|f16", "compute precision", o.precision);
  cli.add_int("--threads", "N", "worker threads, 0 = every core", o.threads, 0, 4096);
  cli.add_int("--seed", "N", "initialization, masking, shuffle and dropout", o.seed, 0, INT64_MAX);
  cli.add_int("--eval-every", "N", "steps between evaluations, 0 = every epoch", o.eval_every, 0, INT64_MAX);
  cli.add_int("--eval-batches", "N", "held-out batches per evaluation, 0 = all", o.eval_batches, 0, INT64_MAX);
  cli.add_int("--log-every", "N", "steps between training metrics in the logs", o.log_every, 1, INT64_MAX);
  cli.add_string("--checkpoint-dir", "DIR", "save checkpoints (step-N.safetensors) and vocab.txt here",
                 o.checkpoint_dir);
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

/// The corpus's documents, every `--holdout`-th held out for evaluation.
tr::text::CorpusSplit load_text(const Options& o) {
  const tr::text::CorpusFormat format = o.format == "lines"        ? tr::text::CorpusFormat::lines
                                        : o.format == "paragraphs" ? tr::text::CorpusFormat::paragraphs
                                                                   : tr::text::CorpusFormat::fortune;
  return tr::text::split_documents(tr::text::read_corpus(o.corpus, format), o.holdout);
}

/// --vocab, else the checkpoint directory's vocab.txt when resuming, else one trained on the
/// training documents (saved to the checkpoint directory, so that a resumed run reads it).
tr::text::WordPieceTokenizer make_tokenizer(const Options& o, const tr::text::CorpusSplit& text,
                                            const std::optional<fs::path>& ckpt_dir, std::string& source) {
  if (!o.vocab.empty()) {
    source = o.vocab;
    return tr::text::WordPieceTokenizer::load(o.vocab);
  }
  if (ckpt_dir && o.resume && fs::exists(*ckpt_dir / "vocab.txt")) {
    source = (*ckpt_dir / "vocab.txt").string();
    return tr::text::WordPieceTokenizer::load(*ckpt_dir / "vocab.txt");
  }
  tr::text::WordPieceTokenizer tok = tr::text::WordPieceTokenizer::train(text.train, {.vocab_size = o.vocab_size});
  source = "trained on the corpus";
  if (ckpt_dir) tok.save(*ckpt_dir / "vocab.txt");
  return tok;
}

// ---- evaluation ----------------------------------------------------------------------------

struct EvalResult {
  double loss = NAN, accuracy = NAN, seconds = 0;
  std::int64_t predictions = 0;
};

/// Masked-LM loss and accuracy over the masked positions of the first `batches` held-out
/// batches (0: all), in order, the last batch padded (only real rows count).
EvalResult evaluate(tr::Program& program, const tr::Value& logits, tr::data::DataLoader& heldout, std::int64_t batches,
                    std::int64_t predictions) {
  const double start = examples::now_seconds();
  heldout.seek(0, 0);
  const std::int64_t n = batches > 0 ? std::min(batches, heldout.batches_per_epoch()) : heldout.batches_per_epoch();
  examples::HostMetrics m;
  for (std::int64_t i = 0; i < n; ++i) {
    const tr::data::Batch& b = heldout.next();
    const std::vector<tr::Tensor> out = program.evaluate(b.feeds, {logits});
    m.add(out.at(0), b.tensor("mlm_labels"), b.samples * predictions);
  }
  return {m.loss(), m.accuracy(), examples::now_seconds() - start, m.count};
}

// ---- the run -------------------------------------------------------------------------------

std::map<std::string, std::string> run_identity(const Options& o, std::int64_t vocab, std::int64_t total_steps) {
  return {{"trainer", "bert"},
          {"corpus", o.corpus},
          {"model", o.model},
          {"vocab_size", std::to_string(vocab)},
          {"seq_len", std::to_string(o.seq_len)},
          {"max_predictions", std::to_string(o.max_predictions)},
          {"dupe_factor", std::to_string(o.dupe_factor)},
          {"batch", std::to_string(o.batch)},
          {"total_steps", std::to_string(total_steps)}};
}

int run(const Options& o) {
  const double t0 = examples::now_seconds();
  const tr::Device device = examples::parse_device(o.device);
  const tr::Precision precision = examples::parse_precision(o.precision);
  if (o.resume && o.checkpoint_dir.empty()) throw examples::UsageError("--resume needs --checkpoint-dir");
  std::optional<examples::CheckpointDir> ckpt;
  if (!o.checkpoint_dir.empty()) ckpt.emplace(o.checkpoint_dir, static_cast<int>(o.keep_checkpoints));
  const std::optional<fs::path> ckpt_dir = ckpt ? std::optional<fs::path>(ckpt->dir()) : std::nullopt;

  const tr::text::CorpusSplit text = load_text(o);
  std::string vocab_source;
  const tr::text::WordPieceTokenizer tok = make_tokenizer(o, text, ckpt_dir, vocab_source);
  const tr::text::MaskedLMOptions mlm{.seq_len = o.seq_len,
                                      .max_predictions = o.max_predictions,
                                      .mask_prob = o.mask_prob,
                                      .seed = static_cast<std::uint64_t>(o.seed),
                                      .duplicates = o.dupe_factor};
  auto train_set = std::make_shared<tr::text::MaskedLMDataset>(tok, text.train, mlm);
  tr::text::MaskedLMOptions heldout_mlm = mlm;
  heldout_mlm.seed = mlm.seed + 1;
  heldout_mlm.duplicates = 1;
  auto heldout_set = std::make_shared<tr::text::MaskedLMDataset>(tok, text.eval, heldout_mlm);
  tr::data::DataLoader train(train_set, o.batch, {.shuffle = true, .seed = static_cast<std::uint64_t>(o.seed)});
  tr::data::DataLoader heldout(heldout_set, o.batch, {.shuffle = false, .last_batch = tr::data::LastBatch::Pad});
  const std::int64_t per_epoch = train.batches_per_epoch();
  const std::int64_t total_steps = o.steps.value_or(o.epochs * per_epoch);
  const examples::Cadence cadence{.per_epoch = per_epoch,
                                  .total_steps = total_steps,
                                  .eval_every = o.eval_every,
                                  .checkpoint_every = o.checkpoint_every,
                                  .stop_after = o.stop_after};
  const double load_seconds = examples::now_seconds() - t0;

  tr::nn::BertConfig config = tr::nn::bert_config(o.model, tok.vocab_size());
  config.dropout = o.dropout;
  config.attention_dropout = o.dropout;
  tr::Graph g;
  const tr::Value ids = g.input("input_ids", {o.batch, o.seq_len}, tr::i64);
  const tr::Value types = g.input("token_type_ids", {o.batch, o.seq_len}, tr::i64);
  const tr::Value mask = g.input("attention_mask", {o.batch, o.seq_len}, tr::boolean);
  const tr::Value positions = g.input("mlm_positions", {o.batch, o.max_predictions}, tr::i64);
  const tr::Value labels = g.input("mlm_labels", {o.batch, o.max_predictions}, tr::i64);
  const tr::nn::BertForMaskedLM model(g, config);
  const tr::Value logits = model.logits(ids, types, mask, positions);
  const tr::Value loss = tr::cross_entropy(logits, labels);
  const std::int64_t warmup = static_cast<std::int64_t>(std::llround(o.warmup * static_cast<double>(total_steps)));
  const tr::optim::AdamW optimizer{
      .lr = o.lr,
      .weight_decay = o.weight_decay,
      .schedule = tr::optim::cosine(std::max<std::int64_t>(1, total_steps - warmup), warmup)};
  const double compile_start = examples::now_seconds();
  tr::Program program = tr::compile(g, loss, optimizer,
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

  const auto identity = run_identity(o, tok.vocab_size(), total_steps);
  bool resumed = false;
  if (o.resume) {
    resumed = ckpt->resume(program, identity, train);
  }
  examples::RunLog::Options log_options = examples::RunLog::files(o.metrics, o.tensorboard, ckpt ? &*ckpt : nullptr);
  log_options.append = resumed;
  log_options.unit = "tok";
  log_options.plain_every = o.log_every * 5;
  examples::RunLog log(log_options, total_steps);
  std::cout << "corpus: " << o.corpus << ": " << text.train.size() << " training and " << text.eval.size()
            << " held-out documents -> " << train_set->sequences() << " + " << heldout_set->size() << " sequences of "
            << o.seq_len << " tokens (training ones masked " << o.dupe_factor << " ways); vocabulary "
            << tok.vocab_size() << " (" << vocab_source << "); " << per_epoch << " steps per epoch (" << load_seconds
            << " s)" << std::endl;
  std::cout << "model: bert-" << o.model << " (" << config.layers << " layers, hidden " << config.hidden << ", "
            << config.heads << " heads), " << params << " parameters; adamw lr " << o.lr << "; device "
            << examples::device_name(device) << ", compiled in " << compile_seconds << " s" << std::endl;

  auto save = [&](std::int64_t step) {
    if (!ckpt) return;
    tr::CheckpointInfo info{.epoch = step / per_epoch, .batch = step % per_epoch, .user = identity};
    log.flush();
    const fs::path p = ckpt->save(program, info);
    log.message("checkpoint: " + p.string());
  };

  EvalResult last_eval;
  double loss_window = 0, train_seconds = 0, final_loss = NAN;
  std::int64_t window = 0, tokens = 0;
  const std::int64_t start_step = program.step_count();
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
    const tr::StepResult r = program.step(b.feeds);
    train_seconds += examples::now_seconds() - step_start;
    tokens += o.batch * o.seq_len;
    loss_window += r.get();
    ++window;
    log.step(in_epoch + 1, o.batch * o.seq_len, {{"loss", r.get()}, {"lr", program.learning_rate()}});
    const std::int64_t done = step + 1;
    if (done % o.log_every == 0 || done == total_steps) {
      final_loss = loss_window / static_cast<double>(window);
      log.record(done, "train",
                 {{"loss", final_loss},
                  {"lr", program.learning_rate()},
                  {"tokens_per_second", static_cast<double>(tokens) / train_seconds}});
      loss_window = 0;
      window = 0;
    }
    if (cadence.evaluate_after(done)) {
      last_eval = evaluate(program, logits, heldout, o.eval_batches, o.max_predictions);
      log.record(done, "eval", {{"loss", last_eval.loss}, {"accuracy", last_eval.accuracy}});
      char line[200];
      std::snprintf(line, sizeof line,
                    "step %lld: held-out MLM loss %.4f (perplexity %.1f), accuracy %.4f (%lld predictions, %.1f s)",
                    static_cast<long long>(done), last_eval.loss, std::exp(last_eval.loss), last_eval.accuracy,
                    static_cast<long long>(last_eval.predictions), last_eval.seconds);
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
  summary.add("trainer", "bert")
      .add("model", "bert-" + o.model)
      .add("loss", final_loss)
      .add("eval_loss", last_eval.loss)
      .add("eval_accuracy", last_eval.accuracy)
      .add("steps", program.step_count())
      .add("epochs", static_cast<double>(program.step_count()) / static_cast<double>(per_epoch))
      .add("batch", o.batch)
      .add("seq_len", o.seq_len)
      .add("vocab_size", tok.vocab_size())
      .add("parameters", params)
      .add("tokens_per_second", train_seconds > 0 ? static_cast<double>(tokens) / train_seconds : 0.0)
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
  return examples::trainer_main("bert", argc, argv, cli, [&o] { return run(o); });
}
