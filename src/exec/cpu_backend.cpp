#include "exec/cpu_backend.h"

#include <tbb/task_arena.h>

#include <cstring>
#include <mutex>
#include <optional>

#include "compile/host_compiler.h"
#include "compile/kernel_builder.h"
#include "compile/kernel_cache.h"
#include "core/logging.h"
#include "exec/executor.h"
#include "runtime/cpu/onednn.h"

namespace trainrt::detail {

namespace {

class CpuRunner final : public PlanRunner {
 public:
  CpuRunner(tbb::task_arena& arena, cpu::OneDnn& dnn, std::vector<CpuKernel> kernels, const GraphImpl& graph)
      : arena_(arena), dnn_(dnn), kernels_(std::move(kernels)), graph_(graph) {}
  /// Must be called once, before the runner is used (the executor refers to kernels_).
  void build(const ScheduledGraph& graph, VariableStore& variables, const RunnerOptions& o) {
    ExecutorOptions eo;
    eo.keep_alive = o.keep_alive;
    eo.guard_node = o.guard_node;
    eo.inter_op = o.inter_op;
    eo.comm = o.comm;
    eo.fused_kernels = &kernels_;
    // oneDNN fixes a primitive's thread count when it is created: size OpenMP first. The
    // flow graph attaches to the arena it is made in.
    arena_.execute([&] {
      dnn_.prepare_thread();
      exec_ = std::make_unique<Executor>(graph, variables, dnn_, arena_.max_concurrency(), eo);
    });
  }
  const std::vector<std::int32_t>& required_inputs() const noexcept override { return exec_->required_inputs(); }
  void run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) override {
    arena_.execute([&] {
      dnn_.prepare_thread();
      exec_->run(feeds, on_guard, context);
    });
  }
  void read(ValueId v, void* out) const override {
    const TensorType& t = graph_.type(v);
    const std::size_t bytes = static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype);
    if (bytes) std::memcpy(out, exec_->data(v), bytes);
  }
  const MemoryPlan& memory_plan() const noexcept override { return exec_->plan(); }

 private:
  tbb::task_arena& arena_;
  cpu::OneDnn& dnn_;
  std::vector<CpuKernel> kernels_;  // of the fused nodes, by node (the executor refers to them)
  const GraphImpl& graph_;
  std::unique_ptr<Executor> exec_;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, bool collectives) : dnn_(threads), arena_(threads + (collectives ? 1 : 0)) {}

  CompileTarget target() const noexcept override { return CompileTarget::cpu; }

  std::unique_ptr<PlanRunner> prepare(const ScheduledGraph& graph, VariableStore& variables,
                                      const RunnerOptions& options, CompileReport& report) override {
    std::vector<CpuKernel> kernels;
    if (graph.fused > 0) {
      KernelBuildReport r;
      std::optional<std::vector<CpuKernel>> built = build_cpu_kernels(*graph.graph, KernelCache::global(), r);
      report.kernels += static_cast<std::int64_t>(r.kernels);
      report.modules += static_cast<std::int64_t>(r.modules);
      report.modules_compiled += static_cast<std::int64_t>(r.modules_compiled);
      report.kernel_seconds += r.seconds;
      if (!built) {
        static std::once_flag warned;
        std::call_once(warned, [] {
          log().warn(
              "no host C++ compiler ({}) and the kernel cache lacks the generated kernels: running unfused "
              "(slower). Ship a cache made with `trainrt-cache export`, or install a compiler.",
              HostCompiler::unavailable_reason());
        });
        report.fusion_fallback = true;
        return nullptr;
      }
      kernels = std::move(*built);
    }
    auto runner = std::make_unique<CpuRunner>(arena_, dnn_, std::move(kernels), *graph.graph);
    runner->build(graph, variables, options);
    return runner;
  }

  void read_variable(const VariableEntry& e, void* out) const override {
    if (e.bytes()) std::memcpy(out, e.data.get(), e.bytes());
  }
  void write_variable(VariableEntry& e, const void* in) override {
    if (e.bytes()) std::memcpy(e.data.get(), in, e.bytes());
  }

 private:
  cpu::OneDnn dnn_;
  // A collective waits on its arena thread; one more slot keeps `threads` computing. Kernels
  // size their per-worker scratch by the arena (max_concurrency), not by `threads`.
  tbb::task_arena arena_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads, bool collectives) {
  return std::make_unique<CpuBackend>(threads, collectives);
}

}  // namespace trainrt::detail
