#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <memory>

namespace trainrt::detail {

spdlog::logger& log() {
  // A function-local static: built once, thread-safe, and owned by this library alone
  // (not registered in spdlog's global registry, so an application's own spdlog setup is
  // left alone).
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("trainrt", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    const char* env = std::getenv("TRAINRT_LOG_LEVEL");
    l->set_level(env ? spdlog::level::from_str(env) : spdlog::level::warn);
    l->set_pattern("[trainrt %L] %v");
    return l;
  }();
  return *logger;
}

}  // namespace trainrt::detail
