// codegen/cuda_host_source.h — a CUDA C++ source made into host C++ for the kernel emulator
// (DESIGN decision 12): the same source that NVRTC compiles for the GPU, compiled by the host
// compiler so that the emulated device can run it.
//
// The rewrite is small and checked: the prelude (codegen/emulation/trk_emu_prelude.h) goes in
// front; `__shared__ T name[N];` inside a function becomes a proxy over the block's shared
// memory (`extern __shared__ T name[];` one over the launch's dynamic shared memory); every
// extern "C" __global__ kernel gets an export the emulated driver finds by name; `#line`
// directives keep the source's own file name and line numbers in compiler messages and in the
// emulator's reports. Constructs the emulator cannot run are refused with an Error naming them
// and their line (see emulated_source's documentation); anything else CUDA has and the prelude
// lacks fails the host compile, which names it.
#pragma once

#include <string>
#include <vector>

namespace trainrt::detail {

struct HostSource {
  std::string code;                  // the translation unit for the host compiler
  std::vector<std::string> kernels;  // the extern "C" __global__ kernels, in source order
  bool uses_sync = false;            // calls barriers or warp primitives: threads run as fibers
};

/// The host translation unit of the CUDA source `cuda` (`name`, e.g. "fused_3.cu", names it
/// in errors and #line directives). Throws Error(Unsupported) naming the construct and its
/// line for: a kernel that is not extern "C" or is a template (the emulator finds kernels by
/// their unmangled names), a __shared__ variable at file scope, with an initializer, or with
/// several declarators, inline PTX (asm), __managed__ memory, cooperative groups, tensor-core
/// intrinsics (wmma/mma), and the pre-CUDA 9 warp primitives without _sync. A source with no
/// kernel is Error(InvalidArgument).
HostSource emulated_source(const std::string& cuda, const std::string& name);

/// The prelude alone (with the ABI header inlined): part of every host build's cache key.
const std::string& emulation_prelude();

}  // namespace trainrt::detail
