// trainrt/program.hpp — compile a Graph into a Program and run training steps.
//
//   auto program = trainrt::compile(graph, loss, trainrt::optim::SGD{.lr = 0.05, .momentum = 0.9});
//   auto result = program.step({{"x", images}, {"y", labels}});
//   float loss = result.get();
//
// A complete trainer is examples/fashion_mnist/main.cpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "trainrt/dist.hpp"
#include "trainrt/graph.hpp"
#include "trainrt/optim.hpp"
#include "trainrt/tensor.hpp"

namespace trainrt {

/// Where a Program runs.
struct Device {
  /// The kind of device.
  enum class Kind {
    cpu,   ///< the host's cores
    cuda,  ///< an NVIDIA GPU, or the emulated one (TRAINRT_CUDA_DEVICE=emulated)
  };
  Kind kind = Kind::cpu;  ///< the kind of device
  int index = 0;          ///< which device of its kind (0 for the CPU)
  /// The host's cores.
  static Device cpu() { return {Kind::cpu, 0}; }
  /// CUDA device `index`. compile() throws Unsupported saying why when no device is usable,
  /// and naming the op when the graph holds one the CUDA backend has no kernel for yet
  /// (it runs elementwise and fused groups, reductions, matmuls and assignments today).
  static Device cuda(int index = 0) { return {Kind::cuda, index}; }
};

/// Data-parallel training over the ranks of a Communicator (trainrt/dist.hpp). Every rank
/// builds the same graph, compiles it with its communicator and feeds its own part of each
/// batch: the gradients are averaged over the ranks, so the parameters move as in one
/// process training on the concatenated batch (when the loss is a mean over the batch).
/// compile() checks that every rank built the same graph and options (an Error names the
/// difference) and broadcasts rank 0's parameters and state to the others.
struct DataParallel {
  /// The ranks; null trains in this process alone. Host-memory communicators (MPI, local)
  /// serve the CPU backend.
  std::shared_ptr<dist::Communicator> communicator{};
  /// Gradients are averaged in buckets of about this many bytes, each sent as soon as its
  /// last gradient exists, while backward goes on.
  std::size_t bucket_bytes = std::size_t{25} << 20;
  /// Shard the optimizer state: each bucket's gradients are reduce-scattered, each rank
  /// updates only its block of the parameters with state for that block (optimizer memory per
  /// rank divided by the world size), and the blocks are all-gathered into every parameter.
  /// Program::variables/get/set still show the state per parameter ("fc1.weight.exp_avg"):
  /// get() of such a state gathers it from every rank, so every rank must call it, in the
  /// same order (save_checkpoint on every rank does). Checkpoints load either way.
  /// compile() throws Unsupported for optim::LAMB, whose trust ratio needs whole parameters.
  bool shard_optimizer_state = false;
};

/// Compute precision of the compiled step. bf16 and f16 are automatic mixed precision: a
/// compiler pass (autocast) runs matrix products, convolutions and attention in 16 bits,
/// keeps reductions, softmax, normalization, the loss and a few others in f32, and leaves the
/// parameters in f32 (master weights, updated in f32). docs/precision.md has the lists. On
/// the CPU the 16-bit tensors are stored in 16 bits and computed in f32: the numerics of a
/// mixed-precision step, not its speed. A graph built in f16/bf16 dtypes keeps its dtypes.
enum class Precision {
  f32,   ///< compute as the graph's dtypes say
  bf16,  ///< autocast to bfloat16 (f32's range: no loss scaling needed)
  f16,   ///< autocast to IEEE half, with dynamic loss scaling (LossScaling)
};

/// Dynamic loss scaling: the loss is multiplied by a scale before backward, the gradients are
/// divided by it before the optimizer, and a step whose gradients hold an infinity or a NaN is
/// skipped: every parameter and piece of optimizer state keeps its bits, and the scale is
/// multiplied by backoff_factor. After growth_interval steps without overflow it is multiplied
/// by growth_factor. All of it happens inside the step, with no host wait. The scale is the
/// variable "amp.loss_scale" (f32), its counter "amp.growth_tracker" (i64), and "amp.overflow"
/// (f32) is 1 after a skipped step, 0 otherwise; checkpoints carry them. Not available with
/// DataParallel::shard_optimizer_state.
struct LossScaling {
  /// Whether to scale.
  enum class Mode {
    automatic,  ///< dynamic under Precision::f16, off otherwise
    dynamic,    ///< always (also f32 and bf16: then it only guards against overflowing steps)
    off,        ///< never
  };
  Mode mode = Mode::automatic;          ///< whether to scale
  double init_scale = 65536.0;          ///< the first scale (> 0)
  double growth_factor = 2.0;           ///< scale multiplier after growth_interval clean steps (> 1)
  double backoff_factor = 0.5;          ///< scale multiplier after an overflow (in (0, 1))
  std::int64_t growth_interval = 2000;  ///< clean steps between growths (>= 1)
};

/// Options of compile(). Designated initializers must follow this member order.
struct CompileOptions {
  /// Where the Program runs; Device::cpu() is the only one available in this version.
  Device device = Device::cpu();
  /// Mixed precision of the step (see Precision).
  Precision precision = Precision::f32;
  /// Loss scaling (see LossScaling); by default on under Precision::f16 only.
  LossScaling loss_scaling{};
  /// Clip the gradients to this global L2 norm before the optimizer (0: no clipping), as
  /// torch.nn.utils.clip_grad_norm_ does: every gradient is multiplied by
  /// min(1, max_grad_norm / (norm + 1e-6)), norm taken over all parameters in f32 (after
  /// unscaling). The norm of each step is the variable "optim.grad_norm". Not available with
  /// DataParallel::shard_optimizer_state.
  double max_grad_norm = 0;
  /// Worker threads of the Program's task arena (kernels split their loops over them);
  /// 0 means every core of the machine.
  int threads = 0;
  /// Run independent steps of the schedule at the same time (a TBB flow graph over the
  /// step's DAG); false runs them one after another. Results are the same bits either way.
  bool inter_op = true;
  /// Seeds parameter initialization and dropout (Philox keyed by seed, step and node).
  std::uint64_t seed = 0;
  /// Extra values that step() returns after the loss (e.g. logits for training accuracy).
  std::vector<Value> outputs{};
  /// Check the loss after the forward pass; a NaN or infinite loss throws trainrt::Error
  /// (Runtime) before any parameter, optimizer state or running statistic changes. Under
  /// loss scaling leave it off: a step whose loss overflows is then skipped like any other
  /// overflowing step, where this check would throw first.
  bool check_finite_loss = false;
  /// Activation memory budget in bytes (0: none). When the planned arena of the step exceeds
  /// it, cheap forward ops (elementwise, normalization applies) are recomputed in the
  /// backward pass instead of keeping their outputs alive, largest first, until the plan fits
  /// or nothing cheap is left. Results are unchanged; memory_report() tells what was planned.
  std::size_t memory_budget = 0;
  /// Fuse elementwise ops into generated kernels (compiled once by the host compiler and
  /// kept in the kernel cache). false runs every op with its own library kernel. Where no
  /// compiler exists and the cache lacks the kernels, the Program runs unfused (one warning).
  bool fusion = true;
  /// Data-parallel training (see DataParallel); default: one process.
  DataParallel data_parallel{};
};

/// One named tensor fed to a step.
struct Feed {
  std::string name;  ///< the name given to Graph::input
  Tensor tensor;     ///< its value for this step: the input's shape and dtype
};

/// The feeds of one step: `{{"x", x}, {"y", y}}`.
class Feeds {
 public:
  /// No feeds.
  Feeds() = default;
  /// The feeds listed: `{{"x", x}, {"y", y}}`.
  Feeds(std::initializer_list<Feed> feeds) : feeds_(feeds) {}
  /// The feeds of a vector (implicit on purpose).
  Feeds(std::vector<Feed> feeds) : feeds_(std::move(feeds)) {}  // NOLINT: implicit by design
  /// Appends a feed (names are checked against the graph by step() and evaluate()).
  void add(std::string name, Tensor tensor) { feeds_.push_back({std::move(name), std::move(tensor)}); }
  /// The feeds, in the order given.
  const std::vector<Feed>& items() const noexcept { return feeds_; }

 private:
  std::vector<Feed> feeds_;
};

/// What a training step returns: the loss and the values named in CompileOptions::outputs.
/// On the CPU the step has finished when step() returns; on a GPU get() waits for it.
class StepResult {
 public:
  /// A result with loss 0 and no outputs.
  StepResult() = default;
  /// The result of a finished step (made by Program::step()).
  StepResult(float loss, std::vector<Tensor> outputs) : loss_(loss), outputs_(std::move(outputs)) {}
  /// The loss of this step.
  float get() const { return loss_; }
  /// CompileOptions::outputs, in order (copies that stay valid after later steps).
  const std::vector<Tensor>& outputs() const noexcept { return outputs_; }

 private:
  float loss_ = 0.0f;
  std::vector<Tensor> outputs_;
};

/// One buffer of a plan, for reports.
struct BufferInfo {
  std::string op;         ///< the op that produces it ("conv2d at main.cpp:42")
  std::string type;       ///< "f32[128,64,14,14]"
  std::size_t bytes = 0;  ///< its size
};

/// Where the memory of a Program goes.
struct MemoryReport {
  std::size_t arena_bytes = 0;      ///< planned peak: the arena of the training step
  std::size_t naive_bytes = 0;      ///< the sum of every intermediate buffer, without reuse
  std::size_t variable_bytes = 0;   ///< parameters, optimizer state and other state tensors
  std::size_t recomputed = 0;       ///< forward ops recomputed in backward (memory_budget)
  std::vector<BufferInfo> largest;  ///< the largest intermediate buffers, largest first
  /// A few lines for a log: the sizes above and the largest buffers.
  std::string to_string() const;
};

/// Counters kept by the executor.
struct ExecStats {
  std::int64_t steps = 0;                 ///< training steps run
  std::int64_t allocations_in_steps = 0;  ///< heap allocations made by steps after the first
  std::int64_t blocking_waits = 0;        ///< host waits inside steps (always 0 on the CPU)
};

/// How compile() made a Program: fusion, generated kernels and the kernel cache.
struct CompileReport {
  std::int64_t fused_nodes = 0;       ///< Fused nodes in the training step
  std::int64_t kernels = 0;           ///< generated kernels the Program runs (all its plans)
  std::int64_t modules = 0;           ///< compiled modules looked up
  std::int64_t modules_compiled = 0;  ///< of which the host compiler had to build
  bool fusion_fallback = false;       ///< fusion was asked for but ran unfused (no compiler)
  bool program_cache_hit = false;     ///< the training step's compiled graph came from the cache (no passes ran)
  double compile_seconds = 0;         ///< wall time of compile() (passes, kernels, planning)
  double kernel_seconds = 0;          ///< of which getting the kernels (cache or compiler)
};

/// The process's kernel cache (generated kernels, in memory and on disk) since it started.
struct KernelCacheStats {
  std::uint64_t memory_hits = 0;    ///< found in this process's memory
  std::uint64_t disk_hits = 0;      ///< read from the cache directory
  std::uint64_t misses = 0;         ///< in neither
  std::uint64_t compiles = 0;       ///< modules the host compiler built
  std::uint64_t bytes_read = 0;     ///< read from the cache directory
  std::uint64_t bytes_written = 0;  ///< written to the cache directory
  double compile_seconds = 0;       ///< spent compiling
  double saved_seconds = 0;         ///< what the hits cost to compile when they were made
};
/// The counters of the process-wide kernel cache (all Programs together).
KernelCacheStats kernel_cache_stats();

namespace detail {
class ProgramImpl;
}

/// A compiled training step: forward, backward and the optimizer update. Programs are
/// movable, not copyable, and not safe to call from two threads at once.
class Program {
 public:
  /// An empty Program: every member but assignment throws InvalidArgument until a compiled
  /// Program is moved into it.
  Program();
  /// Frees the Program's arena, variables and kernels.
  ~Program();
  /// Takes over the other Program's compiled step; that one is left empty.
  Program(Program&&) noexcept;
  /// Takes over the other Program's compiled step, freeing this one's; that one is left empty.
  Program& operator=(Program&&) noexcept;
  Program(const Program&) = delete;  ///< a Program owns its device memory and kernels
  Program& operator=(const Program&) = delete;

  /// Runs one training step. Throws trainrt::Error (before anything changes) for an unknown
  /// or missing feed, or a feed of the wrong shape or dtype; the Program stays usable.
  StepResult step(const Feeds& feeds);
  /// Runs the forward pass in evaluation mode (running batch-norm statistics, no dropout)
  /// and returns `fetches` (Values of the compiled graph). Only the inputs those values
  /// need must be fed. Changes nothing in the Program.
  std::vector<Tensor> evaluate(const Feeds& feeds, const std::vector<Value>& fetches);
  /// evaluate() of the loss.
  float evaluate_loss(const Feeds& feeds);

  /// Names of the persistent tensors of `kind`, in creation order.
  std::vector<std::string> variables(VariableKind kind) const;
  /// A copy of the persistent tensor `name`; throws NotFound with the known names.
  Tensor get(std::string_view name) const;
  /// Overwrites the persistent tensor `name`; throws on an unknown name or a different
  /// shape or dtype.
  void set(std::string_view name, const Tensor& value);
  /// Steps taken so far (the schedule's position).
  std::int64_t step_count() const;
  /// Sets the schedule's position, to resume a run; throws InvalidArgument for step < 0.
  void set_step_count(std::int64_t step);
  /// The optimizer's base learning rate, which the schedule scales.
  double base_learning_rate() const;
  /// Changes the base learning rate between steps (no recompilation); throws
  /// InvalidArgument unless lr is finite and >= 0.
  void set_base_learning_rate(double lr);
  /// CompileOptions::seed of this Program. With step_count() it is the whole random-number
  /// state: dropout masks are Philox keyed by (seed, step, node), so checkpoints store both.
  std::uint64_t seed() const;
  /// The learning rate the last step used.
  double learning_rate() const;

  /// The planned memory of the training step (known before the first step).
  MemoryReport memory_report() const;
  /// Steps run, allocations made by steps after the first, blocking waits.
  ExecStats stats() const;
  /// What compile() did (fusion, kernels, cache), for logs and benchmarks.
  CompileReport compile_report() const;
  /// The optimized training graph in text form.
  std::string to_string() const;

 private:
  friend Program compile(const Graph&, const Value&, const optim::Optimizer&, const CompileOptions&);
  std::unique_ptr<detail::ProgramImpl> impl_;
};

/// Differentiates `loss` (a floating scalar of `graph`), appends the optimizer update,
/// optimizes and plans the step. The graph is copied: later changes to it do not affect the
/// Program. Throws trainrt::Error for a non-scalar loss, a loss from another graph, or a
/// device this build cannot use.
Program compile(const Graph& graph, const Value& loss, const optim::Optimizer& optimizer = optim::None{},
                const CompileOptions& options = {});

/// Number of CUDA devices usable by this process (0 without a driver or device).
int cuda_device_count();

}  // namespace trainrt
