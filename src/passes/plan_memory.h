// passes/plan_memory.h — where every value of a scheduled graph lives.
//
// Inputs live in the caller's feed tensors, variables in the Program's variable store,
// constants in buffers filled once, reshapes in their operand's buffer. Everything else is
// placed in one arena by liveness over the schedule: a buffer is allocated when its
// producer runs and released after its last reader, and released space is reused best-fit.
// Elementwise ops write in place over an operand of the same type that dies at that op; no
// other op ever gets a result buffer that overlaps one of its operands (library calls such
// as oneDNN's convolution write their result while still reading their inputs).
// An assignment whose value is computed after every other read of the variable (and after
// the loss is known, so a failed finite-loss check changes nothing) is elided: the producer
// writes straight into the variable. Each node's scratch space is a block live only while
// the node runs. Sizes are rounded up to 64 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

enum class Storage : std::uint8_t {
  none,      // absent operand, or a value nothing reads
  arena,     // offset into the arena
  variable,  // the variable of node `node`, plus offset
  input,     // the feed of input node `node`, plus offset
  constant,  // the constant buffer of node `node`, plus offset
};

struct BufferRef {
  Storage storage = Storage::none;
  std::int32_t node = -1;   // owning node for variable/input/constant
  std::size_t offset = 0;   // bytes
};

struct MemoryPlan {
  /// buffers[node][output].
  std::vector<std::vector<BufferRef>> buffers;
  /// Arena offset of each node's scratch block (valid when its scratch size > 0).
  std::vector<std::size_t> scratch_offset;
  /// Assign nodes whose copy is elided (the value already lives in the variable).
  std::vector<bool> elided;
  std::size_t arena_bytes = 0;
  /// The arena needed if no two buffers shared memory.
  std::size_t naive_bytes = 0;
  /// The largest arena buffers, for reports: (bytes, node).
  std::vector<std::pair<std::size_t, std::int32_t>> largest;

  const BufferRef& at(ValueId v) const {
    return buffers[static_cast<std::size_t>(v.node)][static_cast<std::size_t>(v.output)];
  }
};

struct PlanOptions {
  std::vector<ValueId> keep_alive;           // read after the step (fetches): never reused
  std::vector<std::size_t> scratch_bytes;    // per node index
  std::int32_t guard_node = -1;              // no variable is written before this node runs
};

MemoryPlan plan_memory(const GraphImpl& graph, const std::vector<std::int32_t>& schedule, const PlanOptions& options);

}  // namespace trainrt::detail
