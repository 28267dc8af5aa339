// metrics/tensorboard_writer.cpp — metrics::TensorBoardWriter: a new event file per writer,
// records framed and encoded by event_encoding.h, flushed on request and every few seconds.
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/logging.h"
#include "metrics/event_encoding.h"
#include "metrics/output_file.h"
#include "trainrt/metrics.hpp"

namespace trainrt::detail {
namespace {

constexpr const char* kWho = "metrics::TensorBoardWriter";
// Events reach the file at most this long after the previous flush (when another comes):
// TensorBoard shows a run while it trains, and a crash loses only the last seconds.
constexpr std::chrono::seconds kFlushInterval{5};

// Tells apart the files of writers opened in the same second by one process (the name has
// one-second resolution). Process-wide by necessity: file names are.
std::uint64_t next_file_number() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1);
}

std::string host_name() {
  std::array<char, 256> buffer{};
  if (::gethostname(buffer.data(), buffer.size() - 1) != 0 || buffer[0] == '\0') return "localhost";
  std::string name(buffer.data());
  for (char& c : name)
    if (c == '/') c = '_';
  return name;
}

}  // namespace

/// The open event file behind a metrics::TensorBoardWriter.
class EventFile {
 public:
  explicit EventFile(const std::filesystem::path& logdir) {
    create_directories(logdir, kWho);
    const double now = unix_time_now();
    const std::string prefix =
        cat("events.out.tfevents.", static_cast<std::int64_t>(std::floor(now)), ".", host_name(), ".", ::getpid(), ".");
    // "x": never reuse a file, even one a resumed run of the same process left this second.
    for (int attempt = 0; attempt < 1000 && !file_; ++attempt) {
      path_ = logdir / cat(prefix, next_file_number());
      file_ = open_output(path_, "wbx", kWho);
    }
    if (!file_)
      fail(ErrorKind::Io, cat(kWho, ": cannot create a new event file in '", logdir.string(),
                              "': 1000 names starting with '", prefix, "' exist"));
    write_event(encode_file_version_event(now));
    flush();
  }

  ~EventFile() {
    try {
      flush();
    } catch (const Error& e) {
      log().warn("{} (events since the last flush are lost)", e.what());
    }
  }
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;
  EventFile(EventFile&&) = delete;
  EventFile& operator=(EventFile&&) = delete;

  void write_event(const std::string& event) {
    write_output(file_.get(), frame_record(event), path_, kWho);
    if (std::chrono::steady_clock::now() - last_flush_ >= kFlushInterval) flush();
  }

  void flush() {
    flush_output(file_.get(), path_, kWho);
    last_flush_ = std::chrono::steady_clock::now();
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  // Checks the arguments every event shares.
  void check(std::string_view call, std::string_view tag, std::int64_t step) const {
    if (tag.empty())
      fail(ErrorKind::InvalidArgument, cat(kWho, "('", path_.string(), "').", call, ": the tag is empty"));
    if (step < 0)
      fail(ErrorKind::InvalidArgument,
           cat(kWho, "('", path_.string(), "').", call, ": step ", step, " of tag '", tag, "' is negative"));
  }

 private:
  std::filesystem::path path_;
  FilePtr file_;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
};

}  // namespace trainrt::detail

namespace trainrt::metrics {

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& logdir)
    : file_(std::make_unique<detail::EventFile>(logdir)) {}
TensorBoardWriter::~TensorBoardWriter() = default;
TensorBoardWriter::TensorBoardWriter(TensorBoardWriter&&) noexcept = default;
TensorBoardWriter& TensorBoardWriter::operator=(TensorBoardWriter&&) noexcept = default;

void TensorBoardWriter::add_scalar(std::string_view tag, std::int64_t step, double value,
                                   std::optional<double> wall_time) {
  file_->check("add_scalar", tag, step);
  // simple_value is a float in the protobuf: TensorBoard stores and shows scalars as float.
  file_->write_event(
      detail::encode_scalar_event(wall_time.value_or(detail::unix_time_now()), step, tag, static_cast<float>(value)));
}

void TensorBoardWriter::add_text(std::string_view tag, std::int64_t step, std::string_view text) {
  file_->check("add_text", tag, step);
  file_->write_event(detail::encode_text_event(detail::unix_time_now(), step, tag, text));
}

void TensorBoardWriter::flush() { file_->flush(); }

std::filesystem::path TensorBoardWriter::file() const { return file_->path(); }

}  // namespace trainrt::metrics
