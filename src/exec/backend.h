// exec/backend.h — what a Program needs of the machine it runs on.
//
// compile() makes a backend-neutral plan: the scheduled graph (passes/pipeline.h), compiled for
// the backend's CompileTarget. A Backend makes each plan runnable (kernels, memory plan, arena,
// constants) as a PlanRunner, and holds the variables' values where that machine computes on
// them. ProgramImpl (exec/program.cpp) talks to these two interfaces only: the CPU backend
// (exec/cpu_backend.h) runs runtime/cpu kernels on a TBB flow graph; a CUDA backend places the
// same plans on CUDA streams.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exec/variables.h"
#include "passes/pipeline.h"
#include "passes/plan_memory.h"
#include "trainrt/program.hpp"

namespace trainrt::dist {
class Communicator;
}

namespace trainrt::detail {

/// How one plan runs.
struct RunnerOptions {
  std::vector<ValueId> keep_alive;     // values read after run()
  std::int32_t guard_node = -1;        // on_guard() runs right after this node
  bool inter_op = true;                // run independent nodes at the same time
  dist::Communicator* comm = nullptr;  // for collective nodes; must outlive the runner
};

/// One plan (a training step, or an evaluation's fetch set) ready to run, again and again.
class PlanRunner {
 public:
  virtual ~PlanRunner() = default;
  /// Input nodes that the schedule reads (each needs a feed).
  virtual const std::vector<std::int32_t>& required_inputs() const noexcept = 0;
  /// Runs one pass. `feeds[node]` is the host data of each required input node (read during
  /// the call only). `on_guard` (may be null) is called with `context` after the guard node;
  /// if it throws, nothing that depends on the guard changes and the exception leaves run().
  virtual void run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) = 0;
  /// Copies value `v` as the last run left it into `out` (host memory of its type's size).
  virtual void read(ValueId v, void* out) const = 0;
  virtual const MemoryPlan& memory_plan() const noexcept = 0;
  /// Blocking host waits so far (waits for the device: 0 on the CPU). Program::stats() counts
  /// those inside steps.
  virtual std::int64_t host_waits() const noexcept { return 0; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  /// What the pipeline compiles for this backend.
  virtual CompileTarget target() const noexcept = 0;
  /// Makes `graph` runnable. Every variable of `graph` must be in `variables`. Returns null
  /// (having changed nothing) when the graph's fused nodes have no kernels to be had: the
  /// caller compiles the graph without fusion and asks again. Counts kernels into `report`.
  virtual std::unique_ptr<PlanRunner> prepare(const ScheduledGraph& graph, VariableStore& variables,
                                              const RunnerOptions& options, CompileReport& report) = 0;
  /// The current value of a variable, copied to host memory `out` (e.bytes() bytes).
  virtual void read_variable(const VariableEntry& e, void* out) const = 0;
  /// Sets a variable from host memory `in` (e.bytes() bytes).
  virtual void write_variable(VariableEntry& e, const void* in) = 0;
};

}  // namespace trainrt::detail
