// tests/log_capture.h — records what the library logs (core/logging.h) while it is alive, so
// that tests can assert "one warning, naming the file" and the like.
#pragma once

#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/logging.h"

namespace trainrt::test {

/// Adds a recording sink to the library's logger for its lifetime. `level` is the lowest
/// level recorded; the logger's own level is lowered to it if needed (and restored).
/// Not for use while other threads change the logger's sinks.
class LogCapture {
 public:
  struct Message {
    spdlog::level::level_enum level;
    std::string text;
  };

  explicit LogCapture(spdlog::level::level_enum level = spdlog::level::warn)
      : sink_(std::make_shared<Sink>()), old_level_(detail::log().level()) {
    sink_->set_level(level);
    if (old_level_ > level) detail::log().set_level(level);
    detail::log().sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = detail::log().sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    detail::log().set_level(old_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  /// The messages recorded at `level` or above.
  std::vector<Message> messages(spdlog::level::level_enum level) const {
    std::lock_guard lock(sink_->records_mutex);
    std::vector<Message> out;
    for (const Message& m : sink_->records)
      if (m.level >= level) out.push_back(m);
    return out;
  }
  /// The warnings (and errors) recorded.
  std::vector<Message> warnings() const { return messages(spdlog::level::warn); }
  /// How many messages at `level` or above contain `part`.
  std::size_t count(spdlog::level::level_enum level, const std::string& part) const {
    std::size_t n = 0;
    for (const Message& m : messages(level)) n += m.text.find(part) != std::string::npos;
    return n;
  }
  /// Every recorded message, one per line (for failure messages).
  std::string dump() const {
    std::string out;
    for (const Message& m : messages(spdlog::level::trace)) out += m.text + "\n";
    return out;
  }

 private:
  struct Sink : spdlog::sinks::base_sink<std::mutex> {
    std::mutex records_mutex;
    std::vector<Message> records;

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      std::lock_guard lock(records_mutex);
      records.push_back({msg.level, std::string(msg.payload.data(), msg.payload.size())});
    }
    void flush_() override {}
  };

  std::shared_ptr<Sink> sink_;
  spdlog::level::level_enum old_level_;
};

}  // namespace trainrt::test
