// examples/common/training.h — what the example trainers share besides their flags: the device
// and precision flags, the checkpoint directory, the run log (progress, JSONL, TensorBoard), the
// summary line, host-side metrics over fetched logits, and stopping cleanly on Ctrl-C.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <trainrt/trainrt.hpp>

namespace examples {

/// "cpu", "cuda", "cuda:N" or "auto" (the CUDA device when the library has a CUDA backend and
/// a device exists, else the CPU). Throws UsageError for anything else.
trainrt::Device parse_device(const std::string& text);
/// "f32", "bf16" or "f16". Throws UsageError for anything else.
trainrt::Precision parse_precision(const std::string& text);
/// The device in words ("cpu", "cuda:0").
std::string device_name(const trainrt::Device& device);

/// Checkpoints of one run in a directory: step-<8 digits>.safetensors, the newest `keep` kept.
class CheckpointDir {
 public:
  /// Creates `dir` when missing (Io error naming it when that fails).
  CheckpointDir(std::filesystem::path dir, int keep);
  /// The newest checkpoint in the directory (highest step), if any.
  std::optional<std::filesystem::path> latest() const;
  /// Saves `program` as the checkpoint of its current step (atomically), then removes all but
  /// the newest `keep`. Returns the path written.
  std::filesystem::path save(const trainrt::Program& program, const trainrt::CheckpointInfo& info);
  /// The directory.
  const std::filesystem::path& dir() const { return dir_; }
  /// Restores the newest checkpoint into `program` and moves `loader` to the position it
  /// recorded; returns false (and prints so) when the directory holds none. The checkpoint
  /// must have been written with the same `identity` (the settings a resumed run must share,
  /// stored in CheckpointInfo::user by save()): a difference throws InvalidArgument naming the
  /// setting. load_checkpoint()'s errors (a damaged file, another model) pass through.
  bool resume(trainrt::Program& program, const std::map<std::string, std::string>& identity,
              trainrt::data::DataLoader& loader) const;

 private:
  std::vector<std::pair<std::int64_t, std::filesystem::path>> list() const;
  std::filesystem::path dir_;
  int keep_;
};

/// One JSON object, built key by key (keys and strings escaped; non-finite numbers as null).
class JsonObject {
 public:
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, std::int64_t value);
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonObject& add(const std::string& key, bool value);
  JsonObject& add(const std::string& key, const std::vector<double>& values);
  /// The object as one line.
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

/// Mean cross-entropy and accuracy of `rows` rows of logits [..., C] (flattened to [R, C])
/// against integer labels (i64, R of them); labels equal to `ignore` are skipped.
struct HostMetrics {
  double loss_sum = 0;  ///< sum of per-row cross-entropy
  std::int64_t correct = 0;
  std::int64_t count = 0;  ///< rows counted
  void add(const trainrt::Tensor& logits, const trainrt::Tensor& labels, std::int64_t rows, std::int64_t ignore = -100);
  double loss() const { return count ? loss_sum / static_cast<double>(count) : 0.0; }
  double accuracy() const { return count ? static_cast<double>(correct) / static_cast<double>(count) : 0.0; }
};

/// Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process, so that the loop can
/// save a checkpoint and stop between steps; a second signal kills as usual.
void install_stop_handler();
/// Whether a stop was asked for.
bool stop_requested();

/// Progress on the terminal (or plain lines), and the metrics to a JSONL file and TensorBoard.
class RunLog {
 public:
  struct Options {
    std::string jsonl;        ///< path of the JSONL file, "" for none
    std::string tensorboard;  ///< TensorBoard log directory, "" for none
    bool append = false;      ///< resuming: append to the JSONL file
    std::string unit = "samples";
    std::int64_t plain_every = 50;  ///< steps between plain progress lines (not a terminal)
  };
  RunLog(const Options& options, std::int64_t total_steps);
  /// Options whose files are `metrics` and `tensorboard` when given, else metrics.jsonl and
  /// tensorboard/ in the checkpoint directory when there is one, else none.
  static Options files(const std::string& metrics, const std::string& tensorboard, const CheckpointDir* checkpoints);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;
  /// Starts the progress bar of one epoch (or of the run when it is counted in steps).
  void begin(const std::string& label, std::int64_t steps_in_bar);
  /// One training step done (`step_in_bar` is 1-based within the bar).
  void step(std::int64_t step_in_bar, std::int64_t items,
            const std::vector<std::pair<std::string, double>>& bar_values);
  /// Records metrics of `split` at global step `step` to the JSONL file and TensorBoard
  /// ("<split>/<name>").
  void record(std::int64_t step, const std::string& split, const std::vector<std::pair<std::string, double>>& values);
  /// A line printed above the progress bar.
  void message(const std::string& line);
  /// Ends the current bar.
  void end();
  /// Flushes the files (before a checkpoint, so the log is never behind it).
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// When a trainer evaluates, saves a checkpoint and stops: the same rules for every trainer.
/// `eval_every` and `checkpoint_every` of 0 mean at the end of each epoch; the last step always
/// evaluates and saves; a stop (a signal, or --stop-after before the last step) saves too.
struct Cadence {
  std::int64_t per_epoch = 1;    ///< steps in an epoch
  std::int64_t total_steps = 0;  ///< steps of the whole run
  std::int64_t eval_every = 0;
  std::int64_t checkpoint_every = 0;
  std::optional<std::int64_t> stop_after;

  bool epoch_end(std::int64_t done) const { return done % per_epoch == 0 || done == total_steps; }
  /// Whether to evaluate after step `done` (1-based).
  bool evaluate_after(std::int64_t done) const {
    return (eval_every > 0 ? done % eval_every == 0 : epoch_end(done)) || done == total_steps;
  }
  enum class Stop { no, signal, stop_after };
  /// Whether to stop after step `done`, and why (reads stop_requested()).
  Stop stop_after_step(std::int64_t done) const;
  /// "stopped by a signal after step 12" (for a Stop other than no).
  static std::string describe(Stop stop, std::int64_t done);
  /// Whether to save a checkpoint after step `done`, given whether the run stops there.
  bool save_after(std::int64_t done, bool stopping) const {
    return (checkpoint_every > 0 ? done % checkpoint_every == 0 : epoch_end(done)) || done == total_steps || stopping;
  }
};

class Cli;

/// A trainer's main(): parses the flags into the variables bound to `cli` (--help prints the
/// usage: exit status 0; a bad flag prints the reason and the usage: 2), makes Ctrl-C and
/// SIGTERM stop between steps (install_stop_handler), and returns what `train` returns. An
/// exception that escapes is printed on stderr with `name` and the error's kind: exit status
/// 1 (2 for a UsageError found later).
int trainer_main(const char* name, int argc, char** argv, Cli& cli, const std::function<int()>& train);

/// Seconds on a steady clock since the first call (process start, in practice).
double now_seconds();

}  // namespace examples
