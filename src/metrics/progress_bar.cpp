// metrics/progress_bar.cpp — metrics::ProgressBar and the duration and rate formats it uses.
//
// The throughput window is a queue of (time, step, cumulative items) samples: the oldest one
// kept is the last that is at least kWindowSeconds old, so the rate always spans the window
// (or the whole run while it is younger), and at most kMaxSamples updates so that a fast loop
// keeps a small queue.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <deque>

#include "core/error.h"
#include "trainrt/metrics.hpp"

namespace trainrt::detail {
namespace {

constexpr double kWindowSeconds = 10.0;
constexpr std::size_t kMaxSamples = 1024;
// A terminal line is redrawn at most this often (a redraw per step of a fast loop would cost
// more than the step), and always for the last step.
constexpr double kRedrawSeconds = 0.1;

std::string printf_string(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string printf_string(const char* format, ...) {
  std::array<char, 128> buffer{};
  va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(buffer.data(), buffer.size(), format, args);
  va_end(args);
  return n < 0 ? std::string() : std::string(buffer.data(), std::min<std::size_t>(n, buffer.size() - 1));
}

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Sample {
  double time = 0;
  std::int64_t step = 0;
  std::int64_t items = 0;  // cumulative since construction
};

}  // namespace

/// The state behind a metrics::ProgressBar.
class ProgressState {
 public:
  ProgressState(std::FILE* out, std::string label, std::int64_t total, metrics::ProgressOptions options)
      : out_(out), label_(std::move(label)), total_(total), options_(std::move(options)) {
    const std::string who = cat("metrics::ProgressBar('", label_, "')");
    if (out_ == nullptr) fail(ErrorKind::InvalidArgument, cat(who, ": the output stream is null"));
    if (total_ < 0) fail(ErrorKind::InvalidArgument, cat(who, ": total_steps ", total_, " is negative"));
    if (options_.plain_every < 1)
      fail(ErrorKind::InvalidArgument, cat(who, ": plain_every ", options_.plain_every, " is below 1"));
    if (options_.width < 1) fail(ErrorKind::InvalidArgument, cat(who, ": width ", options_.width, " is below 1"));
    if (!options_.clock) options_.clock = steady_seconds;
    const int fd = ::fileno(out_);
    terminal_ = options_.terminal.value_or(fd >= 0 && ::isatty(fd) == 1);
    start_ = options_.clock();
  }

  void update(std::int64_t step, std::int64_t items, const metrics::Values& values) {
    const std::string who = cat("metrics::ProgressBar('", label_, "').update");
    if (finished_) fail(ErrorKind::InvalidArgument, cat(who, ": the bar is finished"));
    if (step <= last_step_)
      fail(ErrorKind::InvalidArgument, cat(who, ": step ", step, " is not above the previous step ", last_step_));
    if (total_ > 0 && step > total_)
      fail(ErrorKind::InvalidArgument, cat(who, ": step ", step, " is beyond total_steps ", total_));
    if (items < 0) fail(ErrorKind::InvalidArgument, cat(who, ": items_in_step ", items, " is negative"));
    const double now = options_.clock();
    // The first update is measured from construction, as one step (a resumed run starts
    // anywhere; counting all earlier steps would inflate the rate).
    if (window_.empty()) window_.push_back({start_, step - 1, 0});
    items_ += items;
    window_.push_back({now, step, items_});
    while (window_.size() > 2 && (now - window_[1].time >= kWindowSeconds || window_.size() > kMaxSamples))
      window_.pop_front();
    last_step_ = step;
    values_ = values;
    ++updates_;
    const bool last = total_ > 0 && step == total_;
    printed_last_ = false;
    if (terminal_) {
      if (last || !drawn_ || now - last_draw_ >= kRedrawSeconds) draw(now);
    } else if (last || updates_ % options_.plain_every == 0) {
      print_plain(now);
    }
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    if (updates_ == 0) return;
    if (terminal_) {
      if (!printed_last_) draw(options_.clock());
      emit("\n");
    } else if (!printed_last_) {
      print_plain(options_.clock());
    }
  }

  void message(std::string_view line) {
    if (terminal_ && drawn_ && !finished_) {
      emit(cat("\r", std::string(drawn_length_, ' '), "\r", line, "\n"));
      drawn_ = false;
      draw(options_.clock());
    } else {
      emit(cat(line, "\n"));
    }
  }

 private:
  // "epoch 1/5 [#####.....] 120/469 25.6%  loss 0.512  1843 img/s  ETA 0:42" (bar optional).
  std::string line(double now, bool with_bar) const {
    std::string s = label_;
    if (!s.empty()) s += ' ';
    if (total_ > 0) {
      if (with_bar) {
        const auto filled = static_cast<std::size_t>(options_.width * last_step_ / total_);
        const auto width = static_cast<std::size_t>(options_.width);
        s += cat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ");
      }
      s += cat(last_step_, "/", total_, " ",
               printf_string("%.1f%%", 100.0 * static_cast<double>(last_step_) / static_cast<double>(total_)));
    } else {
      s += cat(last_step_);
    }
    for (const auto& [name, value] : values_) s += cat("  ", name, " ", printf_string("%.4g", value));
    const Sample& first = window_.front();
    const Sample& latest = window_.back();
    const double span = latest.time - first.time;
    const double item_rate = span > 0 ? static_cast<double>(latest.items - first.items) / span : NAN;
    s += cat("  ", metrics::format_rate(item_rate, options_.unit));
    if (total_ > 0 && last_step_ == total_) {
      s += cat("  took ", metrics::format_duration(now - start_));
    } else if (total_ > 0) {
      const double step_rate = span > 0 ? static_cast<double>(latest.step - first.step) / span : NAN;
      s += cat("  ETA ", metrics::format_duration(static_cast<double>(total_ - last_step_) / step_rate));
    }
    return s;
  }

  // Redraws the terminal line in place; a shorter line is padded over the longer one before.
  void draw(double now) {
    std::string s = line(now, true);
    const std::size_t length = s.size();
    if (length < drawn_length_) s.append(drawn_length_ - length, ' ');
    emit(cat("\r", s));
    drawn_length_ = length;
    drawn_ = true;
    printed_last_ = true;
    last_draw_ = now;
  }

  void print_plain(double now) {
    emit(cat(line(now, false), "\n"));
    printed_last_ = true;
  }

  // Progress output is best effort: a closed or full stream must not stop training.
  void emit(const std::string& text) {
    (void)std::fwrite(text.data(), 1, text.size(), out_);
    (void)std::fflush(out_);
  }

  std::FILE* out_;
  std::string label_;
  std::int64_t total_;
  metrics::ProgressOptions options_;
  bool terminal_ = false;
  double start_ = 0;
  std::deque<Sample> window_;
  std::int64_t items_ = 0;
  std::int64_t last_step_ = 0;
  std::int64_t updates_ = 0;
  metrics::Values values_;
  bool drawn_ = false;  // terminal: the bar is on the current line
  std::size_t drawn_length_ = 0;
  double last_draw_ = 0;
  bool printed_last_ = false;  // plain: the latest update's line was printed
  bool finished_ = false;
};

}  // namespace trainrt::detail

namespace trainrt::metrics {

ProgressBar::ProgressBar(std::FILE* out, std::string label, std::int64_t total_steps, Options options)
    : state_(std::make_unique<detail::ProgressState>(out, std::move(label), total_steps, std::move(options))) {}

ProgressBar::~ProgressBar() {
  try {
    if (state_) state_->finish();
  } catch (...) {  // NOLINT(bugprone-empty-catch): only a user clock can throw; a destructor must not
  }
}

ProgressBar::ProgressBar(ProgressBar&&) noexcept = default;

ProgressBar& ProgressBar::operator=(ProgressBar&& other) noexcept {
  if (this != &other) {
    try {
      if (state_) state_->finish();
    } catch (...) {  // NOLINT(bugprone-empty-catch): as in the destructor
    }
    state_ = std::move(other.state_);
  }
  return *this;
}

void ProgressBar::update(std::int64_t step, std::int64_t items_in_step, const Values& values) {
  state_->update(step, items_in_step, values);
}

void ProgressBar::finish() { state_->finish(); }

void ProgressBar::message(std::string_view line) { state_->message(line); }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= 100000.0 * 3600) return "--:--";
  const long long s = std::llround(seconds);
  const long long h = s / 3600, m = s % 3600 / 60, sec = s % 60;
  if (h > 0) return detail::printf_string("%lld:%02lld:%02lld", h, m, sec);
  return detail::printf_string("%lld:%02lld", m, sec);
}

std::string format_rate(double per_second, std::string_view unit) {
  std::string suffix(unit);
  if (!suffix.ends_with("/s")) suffix += "/s";
  const double v = per_second;
  std::string number;
  if (!std::isfinite(v) || v < 0) number = "--";
  else if (v < 10) number = detail::printf_string("%.2f", v);
  else if (v < 1000) number = detail::printf_string("%.1f", v);
  else if (v < 1e5) number = detail::printf_string("%.0f", v);
  else if (v < 1e6) number = detail::printf_string("%.1fk", v / 1e3);
  else if (v < 1e9) number = detail::printf_string("%.2fM", v / 1e6);
  else number = detail::printf_string("%.2fG", v / 1e9);
  // An empty unit reads "1843/s".
  return unit.empty() ? number + suffix : detail::cat(number, " ", suffix);
}

}  // namespace trainrt::metrics
