// runtime/cuda/emulated/kernel_runner.h — running a host build of a CUDA kernel over its grid
// (DESIGN decision 12).
//
// Blocks run in parallel on the emulator's task arena. A kernel whose translation unit has no
// barrier or warp primitive runs each block's threads as a plain loop; one that has them runs
// each thread as a fiber, switched where it synchronizes: a round runs every runnable thread
// until it blocks, then warp primitives whose lanes have all arrived complete, then a block
// barrier that every thread has reached opens. A primitive that cannot complete is an error
// naming the kernel, the call's line and the threads that are elsewhere.
//
// Checking mode adds: between two barriers the threads of a round run forward, reversed or
// shuffled (seeded); shared memory starts poisoned; every shared-memory access is tracked, and
// a race (two threads, one writing, no barrier or warp synchronization between them) or a
// read of shared memory no thread wrote is an error naming the kernel, the block, both
// threads, the variable and the byte; a barrier that some thread of the block never reaches
// (it exited, or waits at another barrier) is an error too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/emulation/trk_emu_abi.h"

namespace trainrt::detail {

class LoadedModule;

/// A host build loaded for the emulated device (cuModuleLoadData of an emulated image).
class EmulatedModule {
 public:
  /// Loads an image made by compile/cuda_build.h for the emulated device: TRK_EMU_IMAGE_MAGIC,
  /// the size of the shared object as 8 little-endian bytes, the shared object. Throws
  /// Error(InvalidArgument) for another image (a CUBIN or PTX: "the emulated device runs host
  /// builds"), Error(Runtime) when the loader or the ABI version refuses it.
  static std::unique_ptr<EmulatedModule> load(const void* image);
  /// The kernel named `name`, or nullptr.
  const trk_emu_kernel* function(const std::string& name) const;

 private:
  std::shared_ptr<LoadedModule> module_;
};

/// One launch, as the stream runs it.
struct GridLaunch {
  const trk_emu_kernel* kernel = nullptr;
  trk_emu_dim3 grid{1, 1, 1}, block{1, 1, 1};
  unsigned dynamic_shared = 0;
  std::vector<unsigned char> args;   // the parameter values, copied at the launch
  std::vector<std::size_t> offsets;  // of each parameter in `args`
  bool check = false;
  std::uint64_t seed = 1;
};

/// Runs the whole grid (blocks in parallel on the emulator's task arena). Throws
/// Error(Runtime) naming the kernel for what the kernel did wrong (the checks above, a fault
/// of the prelude, too much shared memory).
void run_grid(const GridLaunch& launch);

/// The largest shared memory of a block (static and dynamic together): 48 KiB, what a kernel
/// gets without opting in through cuFuncSetAttribute (which the emulator does not offer).
inline constexpr std::size_t kEmulatedSharedBytes = std::size_t{48} << 10;

}  // namespace trainrt::detail
