// exec/executor.h — runs a scheduled graph on the CPU, step after step.
//
// Built once per plan (training step, or one evaluation fetch set): it makes every node's
// kernel, asks each for its scratch size, plans memory (passes/plan_memory.h), allocates
// the arena and fills constants. run() then only resolves buffer addresses (feeds change
// every step) and calls the kernels in schedule order; it allocates nothing.
// Issue 4 replaces the sequential loop with a TBB flow graph over the schedule's DAG.
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
  std::vector<ValueId> keep_alive;  // values read after run()
  std::int32_t guard_node = -1;     // on_guard() runs right after this node
};

class Executor {
 public:
  Executor(const ScheduledGraph& graph, VariableStore& variables, cpu::OneDnn& dnn, int threads,
           const ExecutorOptions& options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Input nodes that the schedule reads (each needs a feed).
  const std::vector<std::int32_t>& required_inputs() const noexcept { return required_inputs_; }
  /// Runs one pass. `feeds[node]` is the data of each required input node. `on_guard`
  /// (may be null) is called with `context` after the guard node; if it throws, the pass
  /// stops there. Plain pointers, not std::function: a step must not allocate.
  void run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context);
  /// Where value `v` lives after run() (valid until the next run).
  const void* data(ValueId v) const;
  const MemoryPlan& plan() const noexcept { return plan_; }

 private:
  struct Step;
  void* resolve(const BufferRef& ref) const;
  void print_profile() const;

  const ScheduledGraph& graph_;
  VariableStore& variables_;
  MemoryPlan plan_;
  AlignedBuffer arena_;
  std::vector<AlignedBuffer> constants_;          // by node, for Constant/Full nodes
  const std::vector<const void*>* feeds_ = nullptr;  // by node, during run()
  std::vector<VariableEntry*> variable_of_;       // by node
  std::vector<std::int32_t> required_inputs_;
  std::vector<Step> steps_;
  std::int32_t guard_node_;
  bool profile_;            // TRAINRT_PROFILE: time every kernel
  std::int64_t runs_ = 0;   // passes timed
};

}  // namespace trainrt::detail
