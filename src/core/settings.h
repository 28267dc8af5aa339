// core/settings.h — environment knobs, read once into typed settings.
//
//   TRAINRT_DUMP_IR=1       print the graph after every compiler pass (stderr)
//   TRAINRT_TIME_PASSES=1   print a table of pass timings after each compile (stderr)
//   TRAINRT_VERIFY=0|1      run the IR verifier after every pass (default: on in debug
//                           builds, off in release builds)
//   TRAINRT_PROFILE=1       time every kernel of every step; each plan prints a table of
//                           the ops that took longest when its Program is destroyed (stderr)
//   TRAINRT_LOG_LEVEL       spdlog level of the library's logger (see core/logging.h)
#pragma once

namespace trainrt::detail {

struct Settings {
  bool dump_ir = false;
  bool time_passes = false;
  bool verify = false;
  bool profile = false;
};

/// The settings of this process, read from the environment on first use.
const Settings& settings();

}  // namespace trainrt::detail
