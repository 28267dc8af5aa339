#include "exec/executor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/element.h"
#include "core/error.h"
#include "core/settings.h"
#include "ir/printer.h"

namespace trainrt::detail {

namespace {

/// Copies an assigned value into its variable (when the plan could not elide the copy).
class AssignCopy final : public cpu::Kernel {
 public:
  explicit AssignCopy(std::size_t bytes) : bytes_(bytes) {}
  void run(const cpu::KernelArgs& a) override {
    if (a.in[1] != a.in[0]) std::memcpy(const_cast<void*>(a.in[0]), a.in[1], bytes_);
  }

 private:
  std::size_t bytes_;
};

}  // namespace

struct Executor::Step {
  std::int32_t node;
  std::unique_ptr<cpu::Kernel> kernel;
  std::vector<BufferRef> in_refs, out_refs;
  std::size_t scratch_offset = 0;
  bool has_scratch = false;
  std::vector<const void*> in;
  std::vector<void*> out;
  double seconds = 0;  // TRAINRT_PROFILE: total time in this kernel
};

Executor::Executor(const ScheduledGraph& graph, VariableStore& variables, cpu::OneDnn& dnn, int threads,
                   const ExecutorOptions& options)
    : graph_(graph), variables_(variables), guard_node_(options.guard_node), profile_(settings().profile) {
  const GraphImpl& g = *graph.graph;
  const auto n = static_cast<std::size_t>(g.size());
  variable_of_.assign(n, nullptr);
  constants_.resize(n);

  // Kernels first: their scratch needs feed the memory plan.
  std::vector<std::unique_ptr<cpu::Kernel>> kernels(n);
  PlanOptions popts{options.keep_alive, std::vector<std::size_t>(n, 0), options.guard_node};
  for (std::int32_t node : graph.schedule) {
    const Node& nd = g.node(node);
    if (nd.kind == OpKind::Input) required_inputs_.push_back(node);
    if (nd.kind == OpKind::Variable) {
      variable_of_[static_cast<std::size_t>(node)] = variables.find(nd.name);
      check_internal(variable_of_[static_cast<std::size_t>(node)] != nullptr, "a variable has no storage");
    }
    kernels[static_cast<std::size_t>(node)] = cpu::make_kernel(cpu::KernelEnv{g, node, threads, dnn});
    if (kernels[static_cast<std::size_t>(node)])
      popts.scratch_bytes[static_cast<std::size_t>(node)] = kernels[static_cast<std::size_t>(node)]->scratch_bytes();
  }
  plan_ = plan_memory(g, graph.schedule, popts);
  arena_ = aligned_alloc_bytes(plan_.arena_bytes);

  for (std::int32_t node : graph.schedule) {
    const Node& nd = g.node(node);
    if (nd.kind == OpKind::Constant || nd.kind == OpKind::Full) {
      const TensorType& t = nd.outputs[0];
      AlignedBuffer buf = aligned_alloc_bytes(static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype));
      if (nd.kind == OpKind::Constant) {
        const Tensor& v = *std::get<ConstantAttrs>(nd.attrs).value;
        std::memcpy(buf.get(), v.raw_data(), v.nbytes());
      } else {
        const double value = std::get<ScalarAttrs>(nd.attrs).value;
        for (std::int64_t i = 0; i < t.shape.numel(); ++i) store_from_double(buf.get(), t.dtype, i, value);
      }
      constants_[static_cast<std::size_t>(node)] = std::move(buf);
    }
    std::unique_ptr<cpu::Kernel> kernel = std::move(kernels[static_cast<std::size_t>(node)]);
    if (nd.kind == OpKind::Assign && !plan_.elided[static_cast<std::size_t>(node)]) {
      const TensorType& t = g.type(nd.inputs[0]);
      kernel = std::make_unique<AssignCopy>(static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype));
    }
    if (!kernel && node != guard_node_) continue;
    Step s;
    s.node = node;
    s.kernel = std::move(kernel);
    for (const ValueId& in : nd.inputs) s.in_refs.push_back(in.valid() ? plan_.at(in) : BufferRef{});
    for (std::size_t o = 0; o < nd.outputs.size(); ++o) s.out_refs.push_back(plan_.buffers[static_cast<std::size_t>(node)][o]);
    s.has_scratch = popts.scratch_bytes[static_cast<std::size_t>(node)] > 0;
    s.scratch_offset = plan_.scratch_offset[static_cast<std::size_t>(node)];
    s.in.resize(s.in_refs.size());
    s.out.resize(s.out_refs.size());
    steps_.push_back(std::move(s));
  }
}

Executor::~Executor() {
  if (profile_ && runs_ > 0) print_profile();
}

void Executor::print_profile() const {
  const GraphImpl& g = *graph_.graph;
  std::vector<const Step*> order;
  double total = 0;
  for (const Step& s : steps_) order.push_back(&s), total += s.seconds;
  std::sort(order.begin(), order.end(), [](const Step* a, const Step* b) { return a->seconds > b->seconds; });
  std::fprintf(stderr, "[trainrt] profile: %lld runs, %.3f ms per run in kernels; the ops that took longest:\n",
               static_cast<long long>(runs_), 1e3 * total / static_cast<double>(runs_));
  for (std::size_t i = 0; i < order.size() && i < 25; ++i) {
    const Node& n = g.node(order[i]->node);
    std::fprintf(stderr, "  %8.3f ms %5.1f%%  %-24s %s\n", 1e3 * order[i]->seconds / static_cast<double>(runs_),
                 100.0 * order[i]->seconds / std::max(total, 1e-12), std::string(op_name(n.kind)).c_str(),
                 n.outputs.empty() ? "" : n.outputs[0].to_string().c_str());
  }
}

void* Executor::resolve(const BufferRef& ref) const {
  switch (ref.storage) {
    case Storage::none: return nullptr;
    case Storage::arena: return arena_.get() + ref.offset;
    case Storage::variable: return variable_of_[static_cast<std::size_t>(ref.node)]->data.get() + ref.offset;
    case Storage::input:
      return const_cast<std::byte*>(static_cast<const std::byte*>((*feeds_)[static_cast<std::size_t>(ref.node)])) + ref.offset;
    case Storage::constant: return constants_[static_cast<std::size_t>(ref.node)].get() + ref.offset;
  }
  return nullptr;
}

void Executor::run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) {
  feeds_ = &feeds;
  for (Step& s : steps_) {
    if (s.kernel) {
      for (std::size_t i = 0; i < s.in_refs.size(); ++i) s.in[i] = resolve(s.in_refs[i]);
      for (std::size_t i = 0; i < s.out_refs.size(); ++i) s.out[i] = resolve(s.out_refs[i]);
      const cpu::KernelArgs args{s.in.data(), s.out.data(), s.has_scratch ? arena_.get() + s.scratch_offset : nullptr};
      if (profile_) {
        const auto start = std::chrono::steady_clock::now();
        s.kernel->run(args);
        s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      } else {
        s.kernel->run(args);
      }
    }
    if (s.node == guard_node_ && on_guard) on_guard(context);
  }
  feeds_ = nullptr;
  ++runs_;
}

const void* Executor::data(ValueId v) const { return resolve(plan_.at(v)); }

}  // namespace trainrt::detail
