// exec/executor.h — runs a scheduled graph on the CPU, step after step.
//
// Built once per plan (training step, or one evaluation fetch set): it makes every node's
// kernel, asks each for its scratch size, builds the step's DAG (passes/schedule.h), plans
// memory over it (passes/plan_memory.h), allocates the arena and fills constants. With
// inter-op parallelism the DAG becomes a TBB flow graph: nodes without work are contracted
// away, straight chains run as one task, and independent tasks run at the same time while
// each kernel splits its own loops in the same task arena. Without it the kernels run one
// after another in schedule order. run() only resolves buffer addresses (feeds change every
// step) and runs the kernels; it allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/aligned.h"
#include "exec/variables.h"
#include "passes/pipeline.h"
#include "passes/plan_memory.h"
#include "runtime/cpu/kernel.h"

namespace trainrt::detail {

struct ExecutorOptions {
  std::vector<ValueId> keep_alive;                        // values read after run()
  std::int32_t guard_node = -1;                           // on_guard() runs right after this node
  bool inter_op = true;                                   // run independent nodes at the same time
  const std::vector<CpuKernel>* fused_kernels = nullptr;  // by node; must outlive the executor
  dist::Communicator* comm = nullptr;                     // for collective nodes; must outlive it
};

class Executor {
 public:
  /// Must be constructed inside the task arena that will run it (the flow graph attaches
  /// to the arena it is made in).
  Executor(const ScheduledGraph& graph, VariableStore& variables, cpu::OneDnn& dnn, int threads,
           const ExecutorOptions& options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Input nodes that the schedule reads (each needs a feed).
  const std::vector<std::int32_t>& required_inputs() const noexcept { return required_inputs_; }
  /// Runs one pass. `feeds[node]` is the data of each required input node. `on_guard`
  /// (may be null) is called with `context` after the guard node; if it throws, nothing
  /// that depends on the guard runs and the exception leaves run(). Plain pointers, not
  /// std::function: a step must not allocate.
  void run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context);
  /// Where value `v` lives after run() (valid until the next run).
  const void* data(ValueId v) const;
  const MemoryPlan& plan() const noexcept { return plan_; }
  /// Tasks of the flow graph (0 without inter-op parallelism) and the work nodes they run.
  std::size_t tasks() const noexcept;
  std::size_t work_nodes() const noexcept;

 private:
  struct Step;
  struct Flow;
  void* resolve(const BufferRef& ref) const;
  void run_step(Step& s);
  void build_flow(const Dag& dag);
  void print_profile() const;

  const ScheduledGraph& graph_;
  VariableStore& variables_;
  MemoryPlan plan_;
  AlignedBuffer arena_;
  std::vector<AlignedBuffer> constants_;             // by node, for Constant/Full nodes
  const std::vector<const void*>* feeds_ = nullptr;  // by node, during run()
  std::vector<VariableEntry*> variable_of_;          // by node
  std::vector<std::int32_t> required_inputs_;
  std::vector<Step> steps_;     // work nodes, in schedule order
  std::unique_ptr<Flow> flow_;  // null without inter-op parallelism
  std::int32_t guard_node_;
  void (*on_guard_)(void*) = nullptr;  // during run()
  void* guard_context_ = nullptr;
  bool profile_;           // TRAINRT_PROFILE: time every kernel
  std::int64_t runs_ = 0;  // passes timed
};

}  // namespace trainrt::detail
