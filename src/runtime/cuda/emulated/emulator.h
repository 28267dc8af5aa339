// runtime/cuda/emulated/emulator.h — the emulated CUDA device (DESIGN decision 12): the same
// CudaDriver entry-point table the real driver fills, over host memory, worker threads and
// host builds of the CUDA sources. docs/cuda-emulation.md tells what it checks and what only
// a real GPU can tell.
//
// Selected by TRAINRT_CUDA_DEVICE=emulated[:N] (runtime/cuda/emulated/config.h); nothing above
// the table knows which driver it talks to, except that images for it are host builds
// (CudaDriver::emulated, used by compile/cuda_build.h). What the emulator adds to the driver:
//  - memory: red zones, poison, quarantine (emulated/memory.h); a copy or launch whose pointers
//    fall outside a live allocation fails, naming it;
//  - streams are queues run by worker threads of their own; events have the driver's
//    record/wait/query/synchronize semantics; the legacy default stream orders against
//    blocking streams; blocking host waits are counted by kind (emulator_waits());
//  - stream capture across streams forked and joined by events, graphs replayed by their
//    dependencies (not in capture order), and the driver's refusals during capture;
//  - checking mode (TRAINRT_CUDA_EMULATED_CHECK=1): the happens-before check of every access
//    (emulated/happens_before.h), red zones after every operation, and the kernel checks of
//    emulated/kernel_runner.h. A failing check is the context's sticky error: every later call
//    returns it, and cuGetErrorString tells what was found.
#pragma once

#include <cstdint>

#include "runtime/cuda/driver.h"

namespace trainrt::detail {

/// The emulator's entry-point table (process-wide; made on first call from emulator_config()).
const CudaDriver& emulated_driver();

/// Blocking host waits the emulated driver has seen, by kind.
struct EmulatorWaits {
  std::int64_t stream_synchronize = 0;   // cuStreamSynchronize
  std::int64_t event_synchronize = 0;    // cuEventSynchronize
  std::int64_t context_synchronize = 0;  // cuCtxSynchronize
  std::int64_t synchronous_copy = 0;     // cuMemcpyHtoD/DtoH, cuMemsetD8 (they wait for the copy)
  std::int64_t pageable_copy = 0;        // cuMemcpyDtoHAsync into pageable memory (the driver waits)
  std::int64_t free = 0;                 // cuMemFree, which waits for the context's streams
  std::int64_t total() const {
    return stream_synchronize + event_synchronize + context_synchronize + synchronous_copy + pageable_copy + free;
  }
};
/// The counts since the process started (or the last reset). Thread-safe.
EmulatorWaits emulator_waits();
void emulator_reset_waits();

/// What the emulated device has run (for tests and the benchmark).
struct EmulatorCounts {
  std::int64_t launches = 0;        // kernels run (graph nodes included)
  std::int64_t host_functions = 0;  // cuLaunchHostFunc calls run
  std::int64_t graph_launches = 0;
  std::int64_t checked_accesses = 0;  // byte ranges the happens-before check saw
};
EmulatorCounts emulator_counts();

}  // namespace trainrt::detail
