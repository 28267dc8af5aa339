// exec/program.cpp — compile() and the Program a user holds.
#include "trainrt/program.hpp"

#include <tbb/info.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "compile/kernel_cache.h"
#include "compile/program_cache.h"
#include "core/element.h"
#include "core/error.h"
#include "core/logging.h"
#include "exec/backend.h"
#include "exec/cpu_backend.h"
#include "exec/cuda_backend.h"
#include "exec/data_parallel.h"
#include "exec/sharded_state.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "optim/build_optimizer.h"
#include "optim/gradient_guard.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "runtime/device.h"

namespace trainrt {

namespace detail {

/// One compiled plan, runnable on the Program's backend.
struct Plan {
  ScheduledGraph graph;
  std::unique_ptr<PlanRunner> runner;
  std::vector<const void*> feeds;  // by node of `graph`; refilled by every run, never reallocated
};

class ProgramImpl {
 public:
  ProgramImpl(const Graph& graph, const Value& loss, const optim::Optimizer& optimizer, const CompileOptions& options);

  StepResult step(const Feeds& feeds);
  std::vector<Tensor> evaluate(const Feeds& feeds, const std::vector<Value>& fetches);
  double evaluate_loss(const Feeds& feeds) { return evaluate_ids(feeds, {loss_}).at(0).item(); }

  /// Source-graph id of a user Value; throws when it is not of the compiled graph.
  ValueId source_id(const Value& v, std::string_view what) const;
  VariableStore& variables() { return variables_; }
  const ShardedState* sharded() const { return sharded_.get(); }
  const VariableStore& variables() const { return variables_; }
  /// A variable's value as a host tensor / set from one (through the backend).
  Tensor get_variable(const VariableEntry& e) const;
  void set_variable(VariableEntry& e, const Tensor& value);
  double scalar_variable(const char* name) const;
  void set_scalar_variable(const char* name, double value);
  MemoryReport memory_report() const;
  std::string to_string() const { return print_graph(*train_.graph.graph); }
  std::uint64_t seed() const noexcept { return seed_; }
  ExecStats stats_;       // NOLINT(misc-non-private-member-variables-in-classes): Program reads it directly
  CompileReport report_;  // NOLINT(misc-non-private-member-variables-in-classes): Program reads it directly

 private:
  std::vector<Tensor> evaluate_ids(const Feeds& feeds, const std::vector<ValueId>& ids);
  /// Validates feeds against `plan`'s inputs and stores each input node's data pointer in
  /// plan.feeds (throws before the plan runs).
  void bind(Plan& plan, const Feeds& feeds, const char* call) const;
  /// The finite-loss check after the loss node (CompileOptions::check_finite_loss).
  static void check_loss(void* self);
  /// Makes `plan` runnable, keeping the source values `keep` readable after a run (and calling
  /// the loss check after `guard` when it is valid); `recompile(false)` gives its graph again
  /// without fusion when the backend cannot have the fused kernels.
  void prepare(Plan& plan, const std::vector<ValueId>& keep, ValueId guard,
               const std::function<ScheduledGraph(bool fuse)>& recompile);
  static Tensor read(const Plan& plan, ValueId id);
  /// A scalar value of `plan` as the last run left it (allocates nothing).
  static float read_scalar(const Plan& plan, ValueId id);

  std::shared_ptr<GraphImpl> source_;  // the user's graph as compiled, plus the step counter
  std::uint64_t user_graph_id_;
  std::int32_t user_graph_size_;
  ValueId loss_;
  std::vector<ValueId> outputs_;
  bool check_finite_loss_;
  bool inter_op_;
  bool fuse_;
  int threads_;
  std::uint64_t seed_;
  DType autocast_;  // CompileOptions::precision: f32 (none), bf16 or f16
  VariableStore variables_;
  std::shared_ptr<dist::Communicator> comm_;  // data-parallel ranks, or null
  std::unique_ptr<ShardedState> sharded_;     // with DataParallel::shard_optimizer_state
  std::unique_ptr<Backend> backend_;
  Plan train_;
  std::map<std::vector<ValueId>, Plan> eval_plans_;
};

namespace {

int resolve_threads(int requested) {
  if (requested < 0) fail(ErrorKind::InvalidArgument, cat("CompileOptions::threads must be >= 0, got ", requested));
  return requested == 0 ? tbb::info::default_concurrency() : requested;
}

DType autocast_dtype(Precision p) {
  switch (p) {
    case Precision::bf16: return DType::bf16;
    case Precision::f16: return DType::f16;
    case Precision::f32: break;
  }
  return DType::f32;
}

GuardSettings guard_settings(const CompileOptions& o) {
  const LossScaling& l = o.loss_scaling;
  GuardSettings s;
  s.scale =
      l.mode == LossScaling::Mode::dynamic || (l.mode == LossScaling::Mode::automatic && o.precision == Precision::f16);
  s.init_scale = l.init_scale;
  s.growth_factor = l.growth_factor;
  s.backoff_factor = l.backoff_factor;
  s.growth_interval = l.growth_interval;
  s.max_grad_norm = o.max_grad_norm;
  return s;
}

std::unique_ptr<Backend> make_backend(const CompileOptions& o, int threads) {
  if (o.device.kind != Device::Kind::cuda) return make_cpu_backend(threads, o.data_parallel.communicator != nullptr);
  const CudaProbe& probe = probe_cuda();
  if (probe.device_count == 0)
    fail(ErrorKind::Unsupported,
         cat("compile: Device::cuda(", o.device.index, ") requested, but no CUDA device is usable: ", probe.reason));
  if (o.device.index < 0 || o.device.index >= probe.device_count)
    fail(ErrorKind::InvalidArgument, cat("compile: Device::cuda(", o.device.index, "): there are ", probe.device_count,
                                         " CUDA device(s), numbered from 0"));
#if defined(TRAINRT_WITH_CUDA)
  return make_cuda_backend(o.device.index, threads);
#else
  fail(ErrorKind::Unsupported, cat("compile: Device::cuda(", o.device.index,
                                   "): this build of libtrainrt has no CUDA backend (configured without the CUDA "
                                   "toolkit's headers); use Device::cpu()"));
#endif
}

}  // namespace

ProgramImpl::ProgramImpl(const Graph& graph, const Value& loss, const optim::Optimizer& optimizer,
                         const CompileOptions& options)
    : user_graph_id_(graph.impl().id()),
      user_graph_size_(graph.impl().size()),
      check_finite_loss_(options.check_finite_loss),
      inter_op_(options.inter_op),
      fuse_(options.fusion),
      threads_(resolve_threads(options.threads)),
      seed_(options.seed),
      autocast_(autocast_dtype(options.precision)),
      comm_(options.data_parallel.communicator) {
  backend_ = make_backend(options, threads_);
  if (comm_ && comm_->device_memory())
    fail(ErrorKind::Unsupported, cat("compile: DataParallel::communicator is a ", comm_->backend(),
                                     " communicator over device memory, but the Program runs on the CPU; use a "
                                     "host-memory communicator (dist::mpi_communicator)"));
  if (comm_ && options.data_parallel.bucket_bytes == 0)
    fail(ErrorKind::InvalidArgument, "compile: DataParallel::bucket_bytes must be > 0");
  source_ = graph.impl().clone();
  loss_ = source_id(loss, "the loss");
  const TensorType& lt = source_->type(loss_);
  if (lt.shape.rank() != 0 || !is_floating(lt.dtype))
    fail(ErrorKind::InvalidArgument, cat("compile: the loss must be a floating scalar, but it is ",
                                         describe_value(*source_, loss_), "; reduce it with sum() or mean()"));
  for (const Value& output : options.outputs) outputs_.push_back(source_id(output, "CompileOptions::outputs"));
  if (source_->find(kStepVariable) >= 0)
    fail(ErrorKind::InvalidArgument, cat("compile: the name '", kStepVariable, "' is reserved for the step counter"));
  optimizer_variable(source_, kStepVariable, Shape{}, init::zeros(), DType::i64);

  const auto start = std::chrono::steady_clock::now();
  TrainingRequest request{loss_, outputs_, optimizer, seed_, options.memory_budget, fuse_};
  request.autocast = autocast_;
  request.target = backend_->target();
  request.guard = guard_settings(options);
  if (comm_) {
    request.world = comm_->size();
    request.bucket_bytes = options.data_parallel.bucket_bytes;
    request.shard = options.data_parallel.shard_optimizer_state;
    // request.rank is still 0: the fingerprint is the same on every rank that built the same.
    check_same_program(*comm_, training_graph_key(*source_, request), print_graph(*source_));
    request.rank = comm_->rank();
    if (request.shard) sharded_ = std::make_unique<ShardedState>(source_, comm_, request.bucket_bytes);
  }
  bool hit = false;
  train_.graph = cached_training_graph(*source_, request, KernelCache::global(), hit);
  report_.program_cache_hit = hit;
  if (comm_) {
    variables_.add_from(*train_.graph.graph, seed_);
    broadcast_variables(*comm_, variables_);
  }
  std::vector<ValueId> keep{loss_};
  keep.insert(keep.end(), outputs_.begin(), outputs_.end());
  prepare(train_, keep, check_finite_loss_ ? loss_ : ValueId{}, [&](bool fuse) {
    request.fuse = fuse;
    return cached_training_graph(*source_, request, KernelCache::global(), hit);
  });
  fuse_ = request.fuse;
  report_.fused_nodes = static_cast<std::int64_t>(train_.graph.fused);
  report_.compile_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log().debug("compiled a training step: {} nodes scheduled ({} fused), arena {} bytes, variables {} bytes, {:.3f} s",
              train_.graph.schedule.size(), train_.graph.fused, train_.runner->memory_plan().arena_bytes,
              variables_.total_bytes(), report_.compile_seconds);
}

void ProgramImpl::prepare(Plan& plan, const std::vector<ValueId>& keep, ValueId guard,
                          const std::function<ScheduledGraph(bool fuse)>& recompile) {
  auto attempt = [&] {
    RunnerOptions o;
    o.comm = comm_.get();
    o.inter_op = inter_op_;
    for (const ValueId& v : keep) o.keep_alive.push_back(plan.graph.from_source(v));
    if (guard.valid()) o.guard_node = plan.graph.from_source(guard).node;
    variables_.add_from(*plan.graph.graph, seed_);
    plan.runner = backend_->prepare(plan.graph, variables_, o, report_);
  };
  attempt();
  if (plan.runner) return;
  plan.graph = recompile(false);  // no fused kernels to be had: the same plan unfused
  attempt();
  check_internal(plan.runner != nullptr, "a backend refused an unfused plan");
}

float ProgramImpl::read_scalar(const Plan& plan, ValueId id) {
  const TensorType& t = plan.graph.graph->type(id);
  check_internal(t.shape.numel() == 1 && size_of(t.dtype) <= sizeof(double), "read_scalar of a non-scalar");
  double buffer = 0;
  plan.runner->read(id, &buffer);
  return static_cast<float>(load_as_double(&buffer, t.dtype, 0));
}

Tensor ProgramImpl::read(const Plan& plan, ValueId id) {
  const TensorType& t = plan.graph.graph->type(id);
  Tensor out = Tensor::empty(t.shape, t.dtype);
  if (out.nbytes()) plan.runner->read(id, out.raw_data());
  return out;
}

ValueId ProgramImpl::source_id(const Value& v, std::string_view what) const {
  if (!v.valid()) fail(ErrorKind::InvalidArgument, cat(what, " is an absent Value"));
  if (v.impl()->id() != user_graph_id_)
    fail(ErrorKind::InvalidArgument,
         cat(what, " (", v.to_string(), ") belongs to another graph than the compiled one"));
  if (v.node() >= user_graph_size_)
    fail(ErrorKind::InvalidArgument, cat(what, " (", v.to_string(), ") was added to the graph after compile()"));
  return id_of(v);
}

void ProgramImpl::bind(Plan& plan, const Feeds& feeds, const char* call) const {
  const GraphImpl& g = *plan.graph.graph;
  std::vector<const void*>& data = plan.feeds;
  data.assign(static_cast<std::size_t>(g.size()), nullptr);  // capacity is kept: no allocation after the first
  for (const Feed& f : feeds.items()) {
    const std::int32_t node = source_->find(f.name);
    if (node < 0 || source_->node(node).kind != OpKind::Input) {
      std::string known;
      for (const Node& n : source_->nodes())
        if (n.kind == OpKind::Input) known += (known.empty() ? "" : ", ") + cat(n.name, " ", n.outputs[0].to_string());
      fail(ErrorKind::NotFound, cat(call, ": unknown feed '", f.name, "'; the graph's inputs are: ", known));
    }
    const TensorType& want = source_->node(node).outputs[0];
    if (!f.tensor.defined())
      fail(ErrorKind::InvalidArgument, cat(call, ": feed '", f.name, "' is an undefined tensor"));
    if (f.tensor.dtype() != want.dtype || !(f.tensor.shape() == want.shape))
      fail(want.dtype != f.tensor.dtype() ? ErrorKind::DTypeMismatch : ErrorKind::ShapeMismatch,
           cat(call, ": feed '", f.name, "' must be ", want.to_string(), ", got ", name(f.tensor.dtype()),
               f.tensor.shape().to_string()));
    if (!plan.graph.from_source.contains({node, 0})) continue;  // an input this plan does not read
    const ValueId id = plan.graph.from_source({node, 0});
    if (data[static_cast<std::size_t>(id.node)] != nullptr)
      fail(ErrorKind::InvalidArgument, cat(call, ": feed '", f.name, "' is given twice"));
    data[static_cast<std::size_t>(id.node)] = f.tensor.raw_data();
  }
  for (std::int32_t node : plan.runner->required_inputs())
    if (data[static_cast<std::size_t>(node)] == nullptr)
      fail(ErrorKind::NotFound,
           cat(call, ": missing feed '", g.node(node).name, "' (", g.node(node).outputs[0].to_string(), ")"));
}

void ProgramImpl::check_loss(void* self) {
  auto& p = *static_cast<ProgramImpl*>(self);
  const float l = read_scalar(p.train_, p.train_.graph.from_source(p.loss_));
  if (!std::isfinite(l))
    fail(ErrorKind::Runtime, cat("Program::step: the loss is ", l, " at step ", p.scalar_variable(kStepVariable),
                                 "; parameters, optimizer state and running statistics are unchanged "
                                 "(CompileOptions::check_finite_loss)"));
}

StepResult ProgramImpl::step(const Feeds& feeds) {
  bind(train_, feeds, "Program::step");
  const std::int64_t allocations_before = aligned_allocation_count();
  const std::int64_t waits_before = train_.runner->host_waits();
  train_.runner->run(train_.feeds, check_finite_loss_ ? &ProgramImpl::check_loss : nullptr, this);
  if (stats_.steps > 0) stats_.allocations_in_steps += aligned_allocation_count() - allocations_before;
  ++stats_.steps;
  std::vector<Tensor> outs;
  outs.reserve(outputs_.size());
  for (const ValueId& o : outputs_) outs.push_back(read(train_, train_.graph.from_source(o)));
  const float loss = read_scalar(train_, train_.graph.from_source(loss_));
  stats_.blocking_waits += train_.runner->host_waits() - waits_before;
  return {loss, std::move(outs)};
}

std::vector<Tensor> ProgramImpl::evaluate(const Feeds& feeds, const std::vector<Value>& fetches) {
  std::vector<ValueId> ids;
  ids.reserve(fetches.size());
  for (const Value& f : fetches) ids.push_back(source_id(f, "Program::evaluate: a fetch"));
  return evaluate_ids(feeds, ids);
}

std::vector<Tensor> ProgramImpl::evaluate_ids(const Feeds& feeds, const std::vector<ValueId>& ids) {
  if (ids.empty()) fail(ErrorKind::InvalidArgument, "Program::evaluate: no values to fetch");
  auto it = eval_plans_.find(ids);
  if (it == eval_plans_.end()) {
    // Plans are compiled on first use per fetch set and kept; the runner refers to the plan's
    // graph, so the plan is built in its final place in the map.
    it = eval_plans_.emplace(ids, Plan{}).first;
    try {
      Plan& plan = it->second;
      bool hit = false;
      const CompileTarget target = backend_->target();
      plan.graph = cached_evaluation_graph(*source_, ids, fuse_, autocast_, target, KernelCache::global(), hit);
      prepare(plan, ids, ValueId{}, [&](bool fuse) {
        return cached_evaluation_graph(*source_, ids, fuse, autocast_, target, KernelCache::global(), hit);
      });
    } catch (...) {
      eval_plans_.erase(it);
      throw;
    }
  }
  Plan& plan = it->second;
  bind(plan, feeds, "Program::evaluate");
  plan.runner->run(plan.feeds, nullptr, nullptr);
  std::vector<Tensor> out;
  out.reserve(ids.size());
  for (const ValueId& f : ids) out.push_back(read(plan, plan.graph.from_source(f)));
  return out;
}

Tensor ProgramImpl::get_variable(const VariableEntry& e) const {
  Tensor out = Tensor::empty(e.type.shape, e.type.dtype);
  if (out.nbytes()) backend_->read_variable(e, out.raw_data());
  return out;
}

void ProgramImpl::set_variable(VariableEntry& e, const Tensor& value) {
  if (!value.defined()) fail(ErrorKind::InvalidArgument, cat("Program::set('", e.name, "'): the tensor is undefined"));
  if (value.dtype() != e.type.dtype || !(value.shape() == e.type.shape))
    fail(value.dtype() != e.type.dtype ? ErrorKind::DTypeMismatch : ErrorKind::ShapeMismatch,
         cat("Program::set('", e.name, "'): expected ", e.type.to_string(), ", got ", trainrt::name(value.dtype()),
             value.shape().to_string()));
  backend_->write_variable(e, value.raw_data());
}

double ProgramImpl::scalar_variable(const char* name) const {
  const VariableEntry* e = variables_.find(name);
  if (!e) return 0.0;
  return load_as_double(get_variable(*e).raw_data(), e->type.dtype, 0);
}

void ProgramImpl::set_scalar_variable(const char* name, double value) {
  VariableEntry* e = variables_.find(name);
  if (!e) fail(ErrorKind::NotFound, cat("this Program has no '", name, "' (compiled without an optimizer?)"));
  Tensor t = Tensor::empty(e->type.shape, e->type.dtype);
  store_from_double(t.raw_data(), e->type.dtype, 0, value);
  set_variable(*e, t);
}

MemoryReport ProgramImpl::memory_report() const {
  MemoryReport r;
  const MemoryPlan& p = train_.runner->memory_plan();
  r.arena_bytes = p.arena_bytes;
  r.naive_bytes = p.naive_bytes;
  r.variable_bytes = variables_.total_bytes();
  r.recomputed = train_.graph.recomputed;
  const GraphImpl& g = *train_.graph.graph;
  for (const auto& [bytes, node] : p.largest) {
    const Node& n = g.node(node);
    r.largest.push_back(
        {cat(op_name(n.kind), " at ", where(n.loc.file, n.loc.line)), n.outputs.at(0).to_string(), bytes});
  }
  return r;
}

}  // namespace detail

using namespace detail;

std::string MemoryReport::to_string() const {
  std::ostringstream os;
  os << "arena " << arena_bytes << " B (planned peak of the step's intermediates), without reuse " << naive_bytes
     << " B, variables " << variable_bytes << " B";
  if (recomputed) os << ", " << recomputed << " forward op(s) recomputed in backward";
  for (const BufferInfo& b : largest) os << "\n  " << b.bytes << " B  " << b.type << "  " << b.op;
  return os.str();
}

Program::Program() = default;
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

namespace {
ProgramImpl& checked(const std::unique_ptr<ProgramImpl>& p) {
  if (!p) fail(ErrorKind::InvalidArgument, "this Program is empty (default-constructed or moved from)");
  return *p;
}
}  // namespace

StepResult Program::step(const Feeds& feeds) { return checked(impl_).step(feeds); }
std::vector<Tensor> Program::evaluate(const Feeds& feeds, const std::vector<Value>& fetches) {
  return checked(impl_).evaluate(feeds, fetches);
}

std::vector<std::string> Program::variables(VariableKind kind) const {
  std::vector<std::string> names;
  for (const VariableEntry& e : checked(impl_).variables().entries())
    if (e.kind == kind) names.push_back(e.name);
  return impl_->sharded() ? impl_->sharded()->expand(names) : names;
}

Tensor Program::get(std::string_view name) const {
  if (const ShardedState* s = checked(impl_).sharded())
    if (std::optional<Tensor> t = s->get(impl_->variables(), name)) return std::move(*t);
  const VariableEntry* e = checked(impl_).variables().find(name);
  if (!e) impl_->variables().not_found(name);
  return impl_->get_variable(*e);
}

void Program::set(std::string_view name, const Tensor& value) {
  if (const ShardedState* s = checked(impl_).sharded())
    if (s->set(impl_->variables(), name, value)) return;
  VariableEntry* e = checked(impl_).variables().find(name);
  if (!e) impl_->variables().not_found(name);
  impl_->set_variable(*e, value);
}

std::int64_t Program::step_count() const {
  return static_cast<std::int64_t>(checked(impl_).scalar_variable(kStepVariable));
}
void Program::set_step_count(std::int64_t step) {
  if (step < 0) fail(ErrorKind::InvalidArgument, cat("Program::set_step_count: step must be >= 0, got ", step));
  checked(impl_).set_scalar_variable(kStepVariable, static_cast<double>(step));
}
double Program::base_learning_rate() const { return checked(impl_).scalar_variable(kBaseLrVariable); }
void Program::set_base_learning_rate(double lr) {
  if (!(lr >= 0) || !std::isfinite(lr))
    fail(ErrorKind::InvalidArgument, cat("Program::set_base_learning_rate: lr must be finite and >= 0, got ", lr));
  checked(impl_).set_scalar_variable(kBaseLrVariable, lr);
}
std::uint64_t Program::seed() const { return checked(impl_).seed(); }
double Program::learning_rate() const { return checked(impl_).scalar_variable(kLrVariable); }
MemoryReport Program::memory_report() const { return checked(impl_).memory_report(); }
ExecStats Program::stats() const { return checked(impl_).stats_; }
CompileReport Program::compile_report() const { return checked(impl_).report_; }

KernelCacheStats kernel_cache_stats() {
  const CacheStats c = KernelCache::global().stats();
  return {c.memory_hits, c.disk_hits,     c.misses,          c.compiles,
          c.bytes_read,  c.bytes_written, c.compile_seconds, c.saved_seconds};
}
std::string Program::to_string() const { return checked(impl_).to_string(); }

Program compile(const Graph& graph, const Value& loss, const optim::Optimizer& optimizer,
                const CompileOptions& options) {
  Program p;
  p.impl_ = std::make_unique<ProgramImpl>(graph, loss, optimizer, options);
  return p;
}

float Program::evaluate_loss(const Feeds& feeds) { return static_cast<float>(checked(impl_).evaluate_loss(feeds)); }

}  // namespace trainrt
