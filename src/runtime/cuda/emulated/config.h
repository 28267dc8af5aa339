// runtime/cuda/emulated/config.h — what the environment asks of the emulated CUDA device
// (DESIGN decision 12). Read once per process, by probe_cuda() and by the emulated driver.
//
//   TRAINRT_CUDA_DEVICE=emulated | emulated:N   the CUDA driver is the emulator, with N devices
//                                               (default 1); unset or "" keeps the real driver
//   TRAINRT_CUDA_EMULATED_ARCH=90 | 9.0 | sm_80 compute capability (default 9.0)
//   TRAINRT_CUDA_EMULATED_MEMORY=8G             memory per device (default 8 GiB)
//   TRAINRT_CUDA_EMULATED_CHECK=1               checking mode (default off): happens-before,
//                                               red zones after every operation, kernel checks
//   TRAINRT_CUDA_EMULATED_SEED=N                seeds the thread orders of checking mode (default 1)
#pragma once

#include <cstdint>
#include <string>

namespace trainrt::detail {

struct EmulatorConfig {
  bool requested = false;  // TRAINRT_CUDA_DEVICE names the emulator
  std::string error;       // why the request cannot be served (a malformed value); "" when fine
  int devices = 1;         // 1 .. 64
  int arch = 90;           // major*10 + minor
  std::uint64_t memory = 8ull << 30;
  bool check = false;
  std::uint64_t seed = 1;
};

/// Parses the variables above (each passed as its value; nullptr when unset). Never throws: a
/// malformed value sets `error` naming the variable and what it accepts.
EmulatorConfig parse_emulator_config(const char* device, const char* arch, const char* memory, const char* check,
                                     const char* seed);

/// The process's configuration, from the environment on first call. Thread-safe.
const EmulatorConfig& emulator_config();

}  // namespace trainrt::detail
