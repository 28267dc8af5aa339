// exec/cuda_backend.h — the CUDA backend (DESIGN decisions 3, 5, 6, 11, 12): plans compiled for
// CompileTarget::cuda run on one CUDA device, real or emulated (TRAINRT_CUDA_DEVICE=emulated).
//
// What it holds today: one device arena per plan from the caching allocator, sized by the
// memory plan; variables on the device (uploaded when a plan first needs them, read and written
// through Backend::read_variable/write_variable); constants uploaded once; each feed staged in
// pinned memory and copied on the step's stream. Kernels: fused and elementwise groups through
// the emitter's CUDA wrapper (their sources built for the device's architecture, in parallel,
// through the kernel cache), matmuls through GemmPlan (cuBLASLt, or its emulation), and the
// copies of assignments. A plan with any other op is refused at compile() with Unsupported,
// naming the op and where the user's code made it. The step runs its kernels in schedule order
// on one stream and waits for them at its end (counted in ExecStats::blocking_waits); the
// stream plan, CUDA graphs and the never-waiting step are the next part of this backend.
#pragma once

#include <memory>

#include "exec/backend.h"

namespace trainrt::detail {

/// The backend of CUDA device `ordinal`; `threads` size the task arena its kernel builds run
/// in. Throws Error(Unsupported) when this build has no CUDA support or no device is usable
/// (saying why), Error(InvalidArgument) for an ordinal past the last device.
std::unique_ptr<Backend> make_cuda_backend(int ordinal, int threads);

}  // namespace trainrt::detail
