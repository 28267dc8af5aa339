// runtime/cuda/fused_launch.cpp — the buffer struct of a generated kernel, and its launch.
#include "runtime/cuda/fused_launch.h"

#include <limits>

#include "core/error.h"

namespace trainrt::detail {

void launch_fused(const CudaModule& module, void* function, const KernelSpec& spec, const CudaLaunch& launch,
                  const std::vector<std::uint64_t>& buffers, void* stream) {
  check_internal(buffers.size() == spec.operands.size() + spec.outputs.size(),
                 "a fused kernel gets one address per operand and output");
  const std::int64_t grid = launch.grid();
  if (grid == 0) return;  // every group is empty
  check_internal(grid >= 1 && grid <= std::numeric_limits<std::int32_t>::max(),
                 "a fused kernel's grid fits the device");
  // The kernel's one parameter is `struct { void* p[N]; }` by value: N addresses in a row,
  // which is what `buffers` holds (a device address is 64 bits, as a device pointer is).
  static_assert(sizeof(std::uint64_t) == sizeof(void*));
  void* params[] = {const_cast<std::uint64_t*>(buffers.data())};
  LaunchShape shape;
  shape.grid_x = static_cast<unsigned>(grid);
  shape.block_x = static_cast<unsigned>(launch.block);
  // What it reads and writes, for the emulated device's happens-before check: every operand
  // whole (broadcast ones too: their whole extent is read), every output whole.
  std::vector<CudaAccess> accesses;
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const bool output = i >= spec.operands.size();
    const TensorType& t = output ? spec.outputs[i - spec.operands.size()] : spec.operands[i];
    accesses.push_back({buffers[i], static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype), output});
  }
  module.launch(function, shape, stream, params, accesses);
}

}  // namespace trainrt::detail
