// core/logging.h — the library's spdlog logger ("trainrt").
//
// Level comes from TRAINRT_LOG_LEVEL (trace, debug, info, warn, error, off; default warn),
// read once when the logger is first used. spdlog stays out of public headers.
#pragma once

#include <spdlog/spdlog.h>

namespace trainrt::detail {

/// The shared logger; created on first use, thread-safe.
spdlog::logger& log();

}  // namespace trainrt::detail
