// passes/plan_memory.h — where every value of a scheduled graph lives.
//
// Inputs live in the caller's feed tensors, variables in the Program's variable store,
// constants in buffers filled once, reshapes in their operand's buffer. Everything else is
// placed in one arena by liveness over the schedule: a buffer is allocated when its
// producer runs and released after its last reader, and released space is reused best-fit.
//
// The step may run independent nodes at the same time (the DAG of passes/schedule.h), so
// two nodes that may run at once must never share memory. Released space is reused by a
// node, best-fit, preferably when every node that touched it is already an ancestor of that
// node in the DAG. When no such block fits, the best-fitting block is reused anyway and the
// plan adds ordering edges from its previous users to the new writer (MemoryPlan::
// extra_preds, which the executor adds to the DAG): the arena grows only when no free block
// fits at all, so memory stays close to a sequential plan's and parallelism is given up
// only where memory would be paid for it. Three other reuses follow the "already ordered"
// rule alone (they add no edges):
//  - elementwise ops write in place over an operand of the same type that dies at that op
//    (when every other reader of the operand is an ancestor); no other op ever gets a
//    result buffer that overlaps one of its operands (library calls such as oneDNN's
//    convolution write their result while still reading their inputs);
//  - an assignment whose value's producer comes after every other reader of the variable
//    (and after the DAG's barriers, so a step that throws changes nothing) is elided: the
//    producer writes straight into the variable;
//  - each node's scratch space is a block live only while the node runs.
// With a chain DAG (a sequential run) this is plain liveness planning. Sizes are rounded
// up to 64 bytes.
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
  std::int32_t node = -1;  // owning node for variable/input/constant
  std::size_t offset = 0;  // bytes
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
  /// Ordering the plan relies on beyond the DAG: extra_preds[node] must finish before node.
  std::vector<std::vector<std::int32_t>> extra_preds;

  const BufferRef& at(ValueId v) const {
    return buffers[static_cast<std::size_t>(v.node)][static_cast<std::size_t>(v.output)];
  }
};

struct PlanOptions {
  std::vector<ValueId> keep_alive;         // read after the step (fetches): never reused
  std::vector<std::size_t> scratch_bytes;  // per node index
};

struct Dag;

/// `dag` orders the nodes of `schedule` (a topological order of it); see the header comment.
MemoryPlan plan_memory(const GraphImpl& graph, const std::vector<std::int32_t>& schedule, const Dag& dag,
                       const PlanOptions& options);

}  // namespace trainrt::detail
