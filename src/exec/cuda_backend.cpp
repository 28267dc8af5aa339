#include "exec/cuda_backend.h"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "codegen/emit_kernel.h"
#include "core/element.h"
#include "core/error.h"
#include "core/logging.h"
#include "ir/printer.h"
#include "passes/schedule.h"
#include "runtime/cuda/cublaslt.h"
#include "runtime/cuda/device_memory.h"
#include "runtime/cuda/fused_launch.h"
#include "runtime/cuda/module.h"
#include "runtime/cuda/readback.h"
#include "runtime/cuda/reduce_kernel.h"

namespace trainrt::detail {

namespace {

std::size_t bytes_of(const TensorType& t) { return static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype); }

/// A block of the caching allocator, given back when it goes.
class DeviceBlock {
 public:
  DeviceBlock() = default;
  /// Throws the allocator's out-of-memory Error with `what` (the buffer being allocated) first.
  DeviceBlock(CachingAllocator& allocator, std::size_t bytes, const std::string& what) : allocator_(&allocator) {
    try {
      address_ = allocator.allocate(bytes > 0 ? bytes : 1);
    } catch (const Error& e) {
      fail(e.kind(), cat("allocating ", what, " (", bytes, " bytes): ", e.what()));
    }
  }
  ~DeviceBlock() { reset(); }
  DeviceBlock(DeviceBlock&& o) noexcept : allocator_(o.allocator_), address_(o.address_) { o.address_ = 0; }
  DeviceBlock& operator=(DeviceBlock&& o) noexcept {
    if (this != &o) {
      reset();
      allocator_ = o.allocator_;
      address_ = o.address_;
      o.address_ = 0;
    }
    return *this;
  }
  DeviceBlock(const DeviceBlock&) = delete;
  DeviceBlock& operator=(const DeviceBlock&) = delete;
  std::uint64_t get() const noexcept { return address_; }

 private:
  void reset() noexcept {
    if (address_ == 0) return;
    try {
      allocator_->free(address_);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; the allocator logged it
    }
    address_ = 0;
  }
  CachingAllocator* allocator_ = nullptr;
  std::uint64_t address_ = 0;
};

/// One scheduled node's work on the device.
class CudaOp {
 public:
  virtual ~CudaOp() = default;
  /// Enqueues the node on `stream` with its operands' and outputs' device addresses (0 for an
  /// absent operand) and `scratch` (scratch_bytes() bytes of the arena).
  virtual void enqueue(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>& out,
                       std::uint64_t scratch, void* stream) = 0;
  virtual std::size_t scratch_bytes() const { return 0; }
};

/// A fused (or single elementwise) group: the emitter's CUDA kernel.
class FusedKernelOp final : public CudaOp {
 public:
  FusedKernelOp(KernelSpec spec, std::shared_ptr<const FusedBody> owned, std::unique_ptr<CudaModule> module,
                const std::string& name)
      : spec_(std::move(spec)),
        owned_(std::move(owned)),
        launch_(cuda_launch(spec_)),
        module_(std::move(module)),
        function_(module_->function(name)) {
    buffers_.reserve(spec_.operands.size() + spec_.outputs.size());
  }
  void enqueue(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>& out, std::uint64_t,
               void* stream) override {
    buffers_.assign(in.begin(), in.end());
    buffers_.insert(buffers_.end(), out.begin(), out.end());
    launch_fused(*module_, function_, spec_, launch_, buffers_, stream);
  }

 private:
  KernelSpec spec_;
  std::shared_ptr<const FusedBody> owned_;  // the body of a lone elementwise op (else the graph's)
  CudaLaunch launch_;
  std::unique_ptr<CudaModule> module_;
  void* function_;
  std::vector<std::uint64_t> buffers_;
};

/// A lone elementwise node (fusion leaves groups of one as they are) as a fused body of one op,
/// so that the emitter's CUDA wrapper runs it too.
std::shared_ptr<FusedBody> single_op_body(const GraphImpl& g, std::int32_t node) {
  const Node& n = g.node(node);
  FusedOp op{n.kind, {}, n.outputs[0], n.attrs};
  for (std::size_t k = 0; k < n.inputs.size(); ++k) op.args.push_back(fused_operand_arg(static_cast<std::int32_t>(k)));
  auto body = std::make_shared<FusedBody>();
  body->groups.push_back(FusedGroup{n.outputs[0].shape, {std::move(op)}, {}});
  body->outputs.push_back({0, 0});
  return body;
}

/// A reduction (runtime/cuda/reduce_kernel.h): one block per output element.
class ReduceOp final : public CudaOp {
 public:
  ReduceOp(std::unique_ptr<CudaModule> module, const std::string& name, std::size_t in_bytes, const TensorType& out)
      : module_(std::move(module)),
        function_(module_->function(name)),
        in_bytes_(in_bytes),
        out_bytes_(bytes_of(out)),
        outputs_(out.shape.numel()) {}
  void enqueue(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>& out, std::uint64_t,
               void* stream) override {
    if (outputs_ == 0) return;
    std::uint64_t src = in[0], dst = out[0];
    void* params[] = {&src, &dst};
    LaunchShape shape;
    shape.grid_x = static_cast<unsigned>(outputs_);
    shape.block_x = kReduceBlock;
    module_->launch(function_, shape, stream, params, {{src, in_bytes_, false}, {dst, out_bytes_, true}});
  }

 private:
  std::unique_ptr<CudaModule> module_;
  void* function_;
  std::size_t in_bytes_, out_bytes_;
  std::int64_t outputs_;
};

/// The largest power of two (at most 256) that divides `offset`: what a pointer at that offset
/// from a 512-aligned block is aligned to.
std::int64_t alignment_of(std::size_t offset) {
  if (offset == 0) return 256;
  const std::size_t low = offset & (~offset + 1);
  return static_cast<std::int64_t>(low < 256 ? low : 256);
}

/// The GemmDesc of a matmul node, or why cuBLASLt's batched call cannot express it.
GemmDesc gemm_desc(const GraphImpl& g, std::int32_t node, std::string& why) {
  const Node& n = g.node(node);
  const auto& attrs = std::get<MatmulAttrs>(n.attrs);
  const TensorType& a = g.type(n.inputs[0]);
  const TensorType& b = g.type(n.inputs[1]);
  GemmDesc d;
  d.dtype = n.outputs[0].dtype;
  d.transpose_a = attrs.transpose_a;
  d.transpose_b = attrs.transpose_b;
  const std::size_t ra = a.shape.rank(), rb = b.shape.rank();
  if (ra < 2 || rb < 2) {
    why = "an operand of rank below 2";
    return d;
  }
  const auto dim = [](const Shape& s, std::int64_t from_end) {
    return s[static_cast<std::int64_t>(s.rank()) - from_end];
  };
  d.m = attrs.transpose_a ? dim(a.shape, 1) : dim(a.shape, 2);
  d.k = attrs.transpose_a ? dim(a.shape, 2) : dim(a.shape, 1);
  d.n = attrs.transpose_b ? dim(b.shape, 2) : dim(b.shape, 1);
  std::int64_t batch_a = 1, batch_b = 1;
  for (std::size_t i = 0; i + 2 < ra; ++i) batch_a *= a.shape[static_cast<std::int64_t>(i)];
  for (std::size_t i = 0; i + 2 < rb; ++i) batch_b *= b.shape[static_cast<std::int64_t>(i)];
  if (rb == 2 && !attrs.transpose_a) {
    d.m *= batch_a;  // rows of every batch in a row: one GEMM against the shared weight
  } else if (rb == 2 || ra == 2) {
    d.batch = rb == 2 ? batch_a : batch_b;
    d.stride_a = ra == 2 ? 0 : d.m * d.k;
    d.stride_b = rb == 2 ? 0 : d.k * d.n;
  } else if (ra == rb && batch_a == batch_b && [&] {
               for (std::size_t i = 0; i + 2 < ra; ++i)
                 if (a.shape[static_cast<std::int64_t>(i)] != b.shape[static_cast<std::int64_t>(i)]) return false;
               return true;
             }()) {
    d.batch = batch_a;
    d.stride_a = d.m * d.k;
    d.stride_b = d.k * d.n;
  } else {
    why = "batch axes that broadcast";
  }
  if (d.dtype != DType::f32 && d.dtype != DType::f16 && d.dtype != DType::bf16) why = "a dtype other than f32/f16/bf16";
  if (a.dtype != d.dtype || b.dtype != d.dtype) why = "operands of another dtype than the result";
  return d;
}

/// A device address as cuBLASLt takes it.
void* pointer(std::uint64_t address) {
  return reinterpret_cast<void*>(address);  // NOLINT(performance-no-int-to-ptr): a device address
}

/// The workspace planned for every matmul (cuBLASLt's heuristic picks algorithms within it).
constexpr std::size_t kGemmWorkspace = std::size_t{4} << 20;

class MatmulOp final : public CudaOp {
 public:
  MatmulOp(const CublasLtHandle& handle, const GemmDesc& desc) : plan_(handle, desc, kGemmWorkspace) {
    check_internal(plan_.workspace_bytes() <= kGemmWorkspace, "a GEMM wants more workspace than planned");
  }
  void enqueue(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>& out, std::uint64_t scratch,
               void* stream) override {
    plan_.run(stream, pointer(in[0]), pointer(in[1]), pointer(out[0]), nullptr, pointer(scratch));
  }
  std::size_t scratch_bytes() const override { return plan_.workspace_bytes(); }

 private:
  GemmPlan plan_;
};

/// An assignment whose value the memory plan could not place in its variable.
class AssignOp final : public CudaOp {
 public:
  AssignOp(const CudaDriver& driver, std::size_t bytes) : driver_(driver), bytes_(bytes) {}
  void enqueue(const std::vector<std::uint64_t>& in, const std::vector<std::uint64_t>&, std::uint64_t,
               void* stream) override {
    if (bytes_ == 0 || in[0] == in[1]) return;
    driver_.check(driver_.memcpy_dtod_async(in[0], in[1], bytes_, stream), "copying an assigned value");
  }

 private:
  const CudaDriver& driver_;
  std::size_t bytes_;
};

[[noreturn]] void refuse(const GraphImpl& g, std::int32_t node, const std::string& why) {
  const Node& n = g.node(node);
  fail(ErrorKind::Unsupported, cat("compile: the CUDA backend cannot run ", op_name(n.kind), " ",
                                   n.outputs.empty() ? std::string() : n.outputs[0].to_string(), " made at ",
                                   where(n.loc.file, n.loc.line), ": ", why,
                                   ". It runs elementwise and fused groups, reductions, matmuls and assignments today; "
                                   "the other kernels are coming "
                                   "(docs/cuda-emulation.md says what runs). Use Device::cpu() for this model"));
}

class CudaBackend;

class CudaRunner final : public PlanRunner {
 public:
  CudaRunner(CudaBackend& backend, const ScheduledGraph& graph, VariableStore& variables, const RunnerOptions& o,
             CompileReport& report);
  ~CudaRunner() override;
  CudaRunner(const CudaRunner&) = delete;
  CudaRunner& operator=(const CudaRunner&) = delete;
  const std::vector<std::int32_t>& required_inputs() const noexcept override { return required_inputs_; }
  void run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) override;
  void read(ValueId v, void* out) const override;
  const MemoryPlan& memory_plan() const noexcept override { return plan_; }
  std::int64_t host_waits() const noexcept override { return waits_.load(); }

 private:
  struct Step {
    std::int32_t node = -1;
    std::unique_ptr<CudaOp> op;  // null only for the guard node without work
    std::vector<BufferRef> in_refs, out_refs;
    std::uint64_t scratch = 0;
    std::vector<std::uint64_t> in, out;
  };
  struct Staging {
    std::int32_t node = -1;
    std::size_t bytes = 0;
    DeviceBlock device;
    std::unique_ptr<PinnedBuffer> host;
  };
  std::uint64_t resolve(const BufferRef& ref) const;
  void synchronize() const;
  /// The op of every node that has work (fused kernels built in parallel); fills `scratch`.
  std::vector<std::unique_ptr<CudaOp>> make_ops(std::vector<std::size_t>& scratch);

  CudaBackend& backend_;
  const ScheduledGraph& graph_;
  MemoryPlan plan_;
  DeviceBlock arena_;
  std::vector<DeviceBlock> constants_;      // by node
  std::vector<std::uint64_t> variable_of_;  // by node: the device address of its variable
  std::vector<std::int32_t> staging_of_;    // by node: index into staging_, or -1
  std::vector<Staging> staging_;
  std::vector<std::int32_t> required_inputs_;
  std::vector<Step> steps_;
  std::vector<std::pair<std::int32_t, GemmDesc>> gemms_;  // matmul nodes, until the plan is made
  std::int64_t kernels_built_ = 0;                        // generated kernels (fused, elementwise, reductions)
  std::int32_t guard_node_;
  mutable std::atomic<std::int64_t> waits_{0};
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int ordinal, int threads)
      : device_(ordinal), raw_(device_), allocator_(raw_), arena_(threads > 0 ? threads : 1) {
    const ScopedContext scope(driver(), device_.context());
    driver().check(driver().stream_create(&stream_, 1 /* CU_STREAM_NON_BLOCKING */), "creating the step's stream");
    log().debug("CUDA backend on {} ({})", device_.name(), device_.description());
  }
  ~CudaBackend() override {
    release_in_context(device_, [&](const CudaDriver& d) {
      if (stream_ == nullptr) return;
      (void)d.stream_synchronize(stream_);
      (void)d.stream_destroy(stream_);
    });
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  CompileTarget target() const noexcept override { return CompileTarget::cuda; }

  std::unique_ptr<PlanRunner> prepare(const ScheduledGraph& graph, VariableStore& variables,
                                      const RunnerOptions& options, CompileReport& report) override {
    if (options.comm)
      fail(ErrorKind::Unsupported,
           "compile: data-parallel training on CUDA devices (NCCL all-reduce inside the step) is not in this "
           "version; train on Device::cpu() with dist::mpi_communicator");
    const ScopedContext scope(driver(), device_.context());
    upload_variables(graph, variables);
    return std::make_unique<CudaRunner>(*this, graph, variables, options, report);
  }

  void read_variable(const VariableEntry& e, void* out) const override {
    if (e.bytes() == 0) return;
    const ScopedContext scope(driver(), device_.context());
    driver().check(driver().stream_synchronize(stream_), "waiting for the step before reading a variable");
    driver().check(driver().memcpy_dtoh(out, address_of(e), e.bytes()), cat("reading variable '", e.name, "'"));
  }
  void write_variable(VariableEntry& e, const void* in) override {
    if (e.bytes() == 0) return;
    const ScopedContext scope(driver(), device_.context());
    driver().check(driver().stream_synchronize(stream_), "waiting for the step before writing a variable");
    driver().check(driver().memcpy_htod(address_of(e), in, e.bytes()), cat("writing variable '", e.name, "'"));
  }

  const CudaDriver& driver() const noexcept { return device_.driver(); }
  const CudaDevice& device() const noexcept { return device_; }
  CachingAllocator& allocator() noexcept { return allocator_; }
  tbb::task_arena& arena() noexcept { return arena_; }
  void* stream() const noexcept { return stream_; }
  const CublasLtHandle& blas() {
    std::call_once(blas_once_, [&] { blas_ = std::make_unique<CublasLtHandle>(CublasLt::get(), device_); });
    return *blas_;
  }
  std::uint64_t address_of(const VariableEntry& e) const {
    auto it = variables_.find(&e);
    check_internal(it != variables_.end(), "a variable is not on the device");
    return it->second.get();
  }

 private:
  /// Copies every variable of `graph` that is not on the device yet there (compile time: the
  /// copies are synchronous).
  void upload_variables(const ScheduledGraph& graph, VariableStore& variables) {
    for (std::int32_t node : graph.schedule) {
      const Node& n = graph.graph->node(node);
      if (n.kind != OpKind::Variable) continue;
      VariableEntry* e = variables.find(n.name);
      check_internal(e != nullptr, "a variable has no storage");
      if (variables_.contains(e)) continue;
      DeviceBlock block(allocator_, e->bytes(), cat("variable '", e->name, "' ", e->type.to_string()));
      if (e->bytes())
        driver().check(driver().memcpy_htod(block.get(), e->data.get(), e->bytes()),
                       cat("uploading variable '", e->name, "'"));
      variables_.emplace(e, std::move(block));
    }
  }

  CudaDevice device_;
  DeviceMemory raw_;
  CachingAllocator allocator_;
  tbb::task_arena arena_;
  void* stream_ = nullptr;
  std::once_flag blas_once_;
  std::unique_ptr<CublasLtHandle> blas_;
  std::map<const VariableEntry*, DeviceBlock> variables_;  // entries never move (VariableStore)
};

CudaRunner::CudaRunner(CudaBackend& backend, const ScheduledGraph& graph, VariableStore& variables,
                       const RunnerOptions& o, CompileReport& report)
    : backend_(backend), graph_(graph), guard_node_(o.guard_node) {
  const GraphImpl& g = *graph.graph;
  const auto n = static_cast<std::size_t>(g.size());
  variable_of_.assign(n, 0);
  staging_of_.assign(n, -1);
  constants_.resize(n);

  // Kernels first (their workspace feeds the memory plan). The fused sources build in parallel.
  std::vector<std::size_t> scratch(n, 0);
  std::vector<std::unique_ptr<CudaOp>> ops = make_ops(scratch);
  report.kernels += kernels_built_;

  // One stream runs the schedule in order: the DAG is that order, and memory reuse follows it.
  const Dag dag = build_dag(g, graph.schedule, false, o.guard_node);
  plan_ = plan_memory(g, graph.schedule, dag, PlanOptions{o.keep_alive, scratch});
  CachingAllocator& alloc = backend.allocator();
  arena_ = DeviceBlock(alloc, plan_.arena_bytes, "the plan's arena of intermediates");
  // Every storage block is 512-aligned: a GEMM operand is as aligned as its offset in its block.
  for (auto& [node, desc] : gemms_) {
    const Node& nd = g.node(node);
    desc.alignment = std::min({alignment_of(plan_.at(nd.inputs[0]).offset), alignment_of(plan_.at(nd.inputs[1]).offset),
                               alignment_of(plan_.buffers[static_cast<std::size_t>(node)][0].offset)});
    ops[static_cast<std::size_t>(node)] = std::make_unique<MatmulOp>(backend.blas(), desc);
  }

  const CudaDriver& d = backend.driver();
  bool variable_written = false;
  for (std::int32_t node : graph.schedule) {
    const Node& nd = g.node(node);
    const auto i = static_cast<std::size_t>(node);
    if (nd.kind == OpKind::Input) {
      required_inputs_.push_back(node);
      Staging s;
      s.node = node;
      s.bytes = bytes_of(nd.outputs[0]);
      s.device = DeviceBlock(alloc, s.bytes, cat("feed '", nd.name, "' ", nd.outputs[0].to_string()));
      if (s.bytes) s.host = std::make_unique<PinnedBuffer>(backend.device(), s.bytes);
      staging_of_[i] = static_cast<std::int32_t>(staging_.size());
      staging_.push_back(std::move(s));
    }
    if (nd.kind == OpKind::Variable) variable_of_[i] = backend.address_of(*variables.find(nd.name));
    if (nd.kind == OpKind::Constant || nd.kind == OpKind::Full) {
      const TensorType& t = nd.outputs[0];
      std::vector<std::byte> host(bytes_of(t));
      if (nd.kind == OpKind::Constant) {
        const Tensor& v = *std::get<ConstantAttrs>(nd.attrs).value;
        if (v.nbytes()) std::memcpy(host.data(), v.raw_data(), v.nbytes());
      } else {
        const double value = std::get<ScalarAttrs>(nd.attrs).value;
        for (std::int64_t e = 0; e < t.shape.numel(); ++e) store_from_double(host.data(), t.dtype, e, value);
      }
      constants_[i] = DeviceBlock(alloc, host.size(), cat("constant ", t.to_string()));
      if (!host.empty()) d.check(d.memcpy_htod(constants_[i].get(), host.data(), host.size()), "uploading a constant");
    }
    std::unique_ptr<CudaOp> op = std::move(ops[i]);
    if (nd.kind == OpKind::Assign && !plan_.elided[i])
      op = std::make_unique<AssignOp>(d, bytes_of(g.type(nd.inputs[0])));
    if (!op && node != guard_node_) continue;
    Step s;
    s.node = node;
    s.op = std::move(op);
    for (const ValueId& in : nd.inputs) s.in_refs.push_back(in.valid() ? plan_.at(in) : BufferRef{});
    for (std::size_t out = 0; out < nd.outputs.size(); ++out) {
      s.out_refs.push_back(plan_.buffers[i][out]);
      if (plan_.buffers[i][out].storage == Storage::variable) variable_written = true;
    }
    if (nd.kind == OpKind::Assign) variable_written = true;
    // The loss check runs after the guard node; what writes a variable must come later, so that a
    // refused step leaves every variable as it was.
    check_internal(node != guard_node_ || !variable_written, "a variable is written before the loss is checked");
    if (scratch[i] > 0) s.scratch = arena_.get() + plan_.scratch_offset[i];
    s.in.resize(s.in_refs.size());
    s.out.resize(s.out_refs.size());
    steps_.push_back(std::move(s));
  }
}

CudaRunner::~CudaRunner() {
  // Nothing of this plan may be in flight when its memory goes back to the allocator.
  release_in_context(backend_.device(), [&](const CudaDriver& d) { (void)d.stream_synchronize(backend_.stream()); });
}

std::vector<std::unique_ptr<CudaOp>> CudaRunner::make_ops(std::vector<std::size_t>& scratch) {
  const GraphImpl& g = *graph_.graph;
  std::vector<std::unique_ptr<CudaOp>> ops(static_cast<std::size_t>(g.size()));
  std::vector<std::int32_t> fused, reductions;
  for (std::int32_t node : graph_.schedule) {
    const Node& n = g.node(node);
    switch (op_family(n.kind)) {
      case OpFamily::State: break;  // inputs, variables, constants: the memory plan's; assignments below
      case OpFamily::Shape:
        if (n.kind != OpKind::Reshape) refuse(g, node, "it has no CUDA kernel yet");
        break;  // a view
      case OpFamily::Fused: fused.push_back(node); break;
      case OpFamily::Reduce: {
        std::string why;
        if (!cuda_reducible(g, node, why)) refuse(g, node, why);
        if (n.outputs[0].shape.numel() > 0x7fffffff) refuse(g, node, "more outputs than a grid has blocks");
        reductions.push_back(node);
        break;
      }
      case OpFamily::Matmul: {
        std::string why;
        const GemmDesc desc = gemm_desc(g, node, why);
        if (!why.empty()) refuse(g, node, why);
        validate(desc);
        scratch[static_cast<std::size_t>(node)] = kGemmWorkspace;
        gemms_.emplace_back(node, desc);  // made once the memory plan fixes the operands' alignment
        break;
      }
      case OpFamily::Unary:
      case OpFamily::Binary:
      case OpFamily::Ternary:
        if (n.outputs.size() != 1 ||
            std::any_of(n.inputs.begin(), n.inputs.end(), [](const ValueId& v) { return !v.valid(); }))
          refuse(g, node, "an elementwise op with an absent operand or several outputs");
        fused.push_back(node);
        break;
      default: refuse(g, node, "it has no CUDA kernel yet");
    }
  }
  // The generated sources, built for the device (NVRTC, or the emulator's host build) in
  // parallel through the kernel cache; modules load in schedule order.
  std::vector<KernelSpec> specs;
  std::vector<std::shared_ptr<const FusedBody>> bodies;
  std::vector<std::string> names, sources;
  for (std::int32_t node : fused) {
    const Node& n = g.node(node);
    if (n.kind == OpKind::Fused) {
      specs.push_back(kernel_spec(g, node));
      bodies.emplace_back();
    } else {
      bodies.push_back(single_op_body(g, node));
      KernelSpec spec{bodies.back().get(), {}, n.outputs};
      for (const ValueId& v : n.inputs) spec.operands.push_back(g.type(v));
      specs.push_back(std::move(spec));
    }
    names.push_back(cat(n.kind == OpKind::Fused ? "fused_n" : "op_n", node));
    sources.push_back(cuda_kernel_source(specs.back(), names.back()));
  }
  for (std::int32_t node : reductions) {
    names.push_back(cat("reduce_n", node));
    sources.push_back(reduce_kernel_source(g, node, names.back()));
  }
  kernels_built_ = static_cast<std::int64_t>(sources.size());
  std::vector<std::string> images(sources.size());
  backend_.arena().execute([&] {
    tbb::parallel_for(std::size_t{0}, sources.size(), [&](std::size_t i) {
      images[i] = device_image(backend_.device(), sources[i], names[i] + ".cu");
    });
  });
  for (std::size_t i = 0; i < sources.size(); ++i) {
    auto module = std::make_unique<CudaModule>(backend_.device(), images[i], names[i] + ".cu");
    if (i < fused.size()) {
      ops[static_cast<std::size_t>(fused[i])] =
          std::make_unique<FusedKernelOp>(std::move(specs[i]), bodies[i], std::move(module), names[i]);
    } else {
      const std::int32_t node = reductions[i - fused.size()];
      const Node& n = g.node(node);
      ops[static_cast<std::size_t>(node)] =
          std::make_unique<ReduceOp>(std::move(module), names[i], bytes_of(g.type(n.inputs[0])), n.outputs[0]);
    }
  }
  return ops;
}

std::uint64_t CudaRunner::resolve(const BufferRef& ref) const {
  const auto node = static_cast<std::size_t>(ref.node);
  switch (ref.storage) {
    case Storage::none: return 0;
    case Storage::arena: return arena_.get() + ref.offset;
    case Storage::variable: return variable_of_[node] + ref.offset;
    case Storage::input: return staging_[static_cast<std::size_t>(staging_of_[node])].device.get() + ref.offset;
    case Storage::constant: return constants_[node].get() + ref.offset;
  }
  return 0;
}

void CudaRunner::synchronize() const {
  const CudaDriver& d = backend_.driver();
  ++waits_;
  d.check(d.stream_synchronize(backend_.stream()), "running the step on the device");
}

void CudaRunner::run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) {
  const CudaDriver& d = backend_.driver();
  const ScopedContext scope(d, backend_.device().context());
  void* stream = backend_.stream();
  for (Staging& s : staging_) {
    if (s.bytes == 0) continue;
    // Staged through pinned memory: the copy is asynchronous, and the caller's tensor is free
    // to change as soon as run() returns.
    std::memcpy(s.host->data(), feeds[static_cast<std::size_t>(s.node)], s.bytes);
    d.check(d.memcpy_htod_async(s.device.get(), s.host->data(), s.bytes, stream), "copying a feed to the device");
  }
  for (Step& s : steps_) {
    if (s.op) {
      for (std::size_t i = 0; i < s.in_refs.size(); ++i) s.in[i] = resolve(s.in_refs[i]);
      for (std::size_t i = 0; i < s.out_refs.size(); ++i) s.out[i] = resolve(s.out_refs[i]);
      s.op->enqueue(s.in, s.out, s.scratch, stream);
    }
    if (s.node == guard_node_ && on_guard) {
      synchronize();  // the check reads the loss on the host
      on_guard(context);
    }
  }
  synchronize();
}

void CudaRunner::read(ValueId v, void* out) const {
  const std::size_t bytes = bytes_of(graph_.graph->type(v));
  if (bytes == 0) return;
  const CudaDriver& d = backend_.driver();
  const ScopedContext scope(d, backend_.device().context());
  ++waits_;  // a synchronous copy
  d.check(d.memcpy_dtoh(out, resolve(plan_.at(v)), bytes), "reading a value back from the device");
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int ordinal, int threads) {
  return std::make_unique<CudaBackend>(ordinal, threads);
}

}  // namespace trainrt::detail
