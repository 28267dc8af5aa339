// trainrt/metrics.hpp — what a trainer reports while it runs: metrics logs and a progress bar.
//
// Contents:
//   JsonlWriter        one JSON object per line ({"step":N,"split":"train","wall_time":...,"loss":...})
//   TensorBoardWriter  TensorBoard event files (scalars, text), written without a protobuf library
//   ProgressBar        a bar redrawn in place on a terminal, plain lines otherwise; throughput and ETA
//   format_duration    "0:42", "1:02:03"; format_rate "1843 img/s"
//
// The writers and the bar are used from one thread at a time. tests/metrics_test.cpp shows
// every feature; tests/metrics_tb_writer.cpp is a small program that writes event files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainrt::detail {
class JsonlFile;
class EventFile;
class ProgressState;
}  // namespace trainrt::detail

/// Metrics logs (JSONL, TensorBoard event files) and the training progress bar.
namespace trainrt::metrics {

/// Named values of one record, in the order they are written: {{"loss", 0.51}, {"acc", 0.9}}.
using Values = std::vector<std::pair<std::string, double>>;

/// Appends records to a JSON Lines file, one object per line and flushed per record, so that
/// a crash loses at most the record being written and another process may follow the file:
///   {"step":120,"split":"train","wall_time":1718000000.123,"loss":0.512,"acc":0.875}
/// Numbers are written in the shortest form that reads back to the same double; NaN and
/// infinities are written as null, so that every line is valid JSON.
class JsonlWriter {
 public:
  /// Opens `path` for writing, creating missing parent directories. With `append` the records
  /// follow what the file holds (resuming a run; a last line left unfinished by a crash is
  /// ended first so that new records start on a line of their own), otherwise the file is
  /// truncated. Throws trainrt::Error (Io) naming the path and the system's reason when the
  /// directory or the file cannot be created or opened.
  JsonlWriter(const std::filesystem::path& path, bool append);
  /// Closes the file (everything was flushed already).
  ~JsonlWriter();
  /// Takes over the other writer's file; that one is left moved-from (only destroyable).
  JsonlWriter(JsonlWriter&&) noexcept;
  /// Closes this writer's file and takes over the other's.
  JsonlWriter& operator=(JsonlWriter&&) noexcept;
  JsonlWriter(const JsonlWriter&) = delete;  ///< a writer owns its open file
  JsonlWriter& operator=(const JsonlWriter&) = delete;

  /// Writes {"step":step,"split":split,"wall_time":now, values...} (now: seconds since the
  /// Unix epoch) and flushes it. Throws trainrt::Error (InvalidArgument) for step < 0, an empty split, an
  /// empty name, or a name given twice or equal to "step", "split" or "wall_time" (JSON
  /// readers disagree on repeated keys); (Io) naming the file and the system's reason when
  /// writing fails. Nothing is written when it throws InvalidArgument.
  void write(std::int64_t step, std::string_view split, const Values& values);
  /// Writes `json_object_line`, which must be one JSON object on one line (checked: it is
  /// parsed; a trailing newline is allowed), and flushes it: for records of the caller's own
  /// shape (a config, a summary). Throws trainrt::Error (InvalidArgument) naming the problem
  /// and where in the text it is, (Io) as write() does.
  void write_raw(std::string_view json_object_line);
  /// The file written to.
  const std::filesystem::path& path() const noexcept;

 private:
  std::unique_ptr<detail::JsonlFile> file_;
};

/// Writes TensorBoard event files: TFRecord framing (u64 length, masked CRC32C of the length,
/// data, masked CRC32C of the data) around tensorflow.Event protobufs encoded by hand. The
/// first event holds file_version "brain.Event:2"; scalars are Summary.Value{tag,
/// simple_value} (a float: doubles are rounded to float, as TensorBoard stores them), text
/// goes to TensorBoard's text plugin. The file is
/// `<logdir>/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`, never an existing
/// one: a resumed run writes a new file in the same directory and TensorBoard merges them.
/// Events are buffered; they reach the file on flush(), at most 5 seconds after the previous
/// flush when another event is added, and on destruction.
class TensorBoardWriter {
 public:
  /// Creates `logdir` if missing and a new event file in it, and writes the file_version
  /// event. Throws trainrt::Error (Io) naming the directory or file and the system's reason.
  explicit TensorBoardWriter(const std::filesystem::path& logdir);
  /// Flushes and closes the file; a failure then is logged (a destructor does not throw).
  ~TensorBoardWriter();
  /// Takes over the other writer's file; that one is left moved-from (only destroyable).
  TensorBoardWriter(TensorBoardWriter&&) noexcept;
  /// Closes this writer's file (as the destructor does) and takes over the other's.
  TensorBoardWriter& operator=(TensorBoardWriter&&) noexcept;
  TensorBoardWriter(const TensorBoardWriter&) = delete;  ///< a writer owns its open file
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// Adds the scalar `value` of series `tag` ("train/loss") at `step`, stamped `wall_time`
  /// (seconds since the Unix epoch; now when not given). Throws trainrt::Error
  /// (InvalidArgument) for an empty tag or step < 0, (Io) naming the file when writing fails.
  void add_scalar(std::string_view tag, std::int64_t step, double value, std::optional<double> wall_time = {});
  /// Adds `text` (markdown, shown by TensorBoard's Text tab: a config, hyperparameters) under
  /// `tag` at `step`. Throws as add_scalar() does.
  void add_text(std::string_view tag, std::int64_t step, std::string_view text);
  /// Writes the buffered events to the file. Throws trainrt::Error (Io) naming the file and
  /// the system's reason when that fails.
  void flush();
  /// The event file written to.
  std::filesystem::path file() const;

 private:
  std::unique_ptr<detail::EventFile> file_;
};

/// How a ProgressBar looks and where its time comes from.
struct ProgressOptions {
  std::string unit = "samples";     ///< what update() counts: "img" shows "1843 img/s" ("img/s" too)
  std::int64_t plain_every = 100;   ///< plain mode: a line every this many updates (>= 1)
  std::optional<bool> terminal{};   ///< redraw in place; unset: isatty(fileno(out))
  int width = 30;                   ///< characters between the bar's brackets (>= 1)
  std::function<double()> clock{};  ///< monotonic seconds; unset: std::chrono::steady_clock
};

/// Training progress with throughput and time left. On a terminal it is one line redrawn in
/// place with a carriage return (at most 10 times a second, and always for the last step):
///   epoch 1/5 [#####.........................] 120/469 25.6%  loss 0.512  1843 img/s  ETA 0:42
/// Otherwise (a log file, a pipe) it prints the same fields without the bar as a plain line
/// every Options::plain_every updates and for the last step. Throughput is measured over a
/// sliding window of the last ~10 seconds (or 1024 updates, if fewer), and the ETA is the
/// steps left divided by the step rate over that window; at the last step the time since
/// construction is shown instead ("took 1:23"). With total_steps == 0 (unknown) there is no
/// bar, percentage or ETA.
/// Failures to write to the stream are ignored: progress output never stops training.
class ProgressBar {
 public:
  /// The bar's options (a namespace-scope struct, so that `= {}` works as a default argument).
  using Options = ProgressOptions;

  /// A bar titled `label` ("epoch 1/5") for steps 1..total_steps written to `out`, which the
  /// caller keeps open for the bar's life. The clock starts now: the first update's rate
  /// counts the time since construction. Throws trainrt::Error (InvalidArgument) for a null
  /// stream, total_steps < 0, plain_every < 1 or width < 1.
  ProgressBar(std::FILE* out, std::string label, std::int64_t total_steps, Options options = {});
  /// Calls finish().
  ~ProgressBar();
  /// Takes over the other bar; that one is left moved-from (only destroyable).
  ProgressBar(ProgressBar&&) noexcept;
  /// Finishes this bar and takes over the other.
  ProgressBar& operator=(ProgressBar&&) noexcept;
  ProgressBar(const ProgressBar&) = delete;  ///< a bar owns its line on the stream
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Records that steps up to `step` (1-based, counting steps done; a resumed run may start
  /// anywhere) are done, the last of them with `items_in_step` items, and shows `values`
  /// ("loss 0.512", printed with 4 significant digits) until the next update. Throws
  /// trainrt::Error (InvalidArgument) naming the bar for step not above the previous one,
  /// step > total_steps (when known), items_in_step < 0, or an update after finish().
  void update(std::int64_t step, std::int64_t items_in_step, const Values& values);
  /// Ends the bar: on a terminal, draws the last state and ends the line; in plain mode,
  /// prints the last state if that line was not printed yet. Later calls do nothing.
  void finish();
  /// Prints `line` (an evaluation result, a warning) on a line of its own; on a terminal the
  /// bar is cleared first and redrawn below it.
  void message(std::string_view line);

 private:
  std::unique_ptr<detail::ProgressState> state_;
};

/// A duration as "m:ss" below an hour and "h:mm:ss" from there ("0:42", "1:02:03"), rounded
/// to the nearest second; "--:--" for a negative or non-finite value or one of 100000 hours
/// or more.
std::string format_duration(double seconds);

/// A throughput with its unit, "/s" appended unless `unit` ends with it: "0.52 img/s",
/// "25.6 img/s", "1843 img/s", "124.5k tok/s", "3.21M tok/s", "1.50G tok/s"; "-- img/s" for a
/// negative or non-finite rate.
std::string format_rate(double per_second, std::string_view unit);

}  // namespace trainrt::metrics
