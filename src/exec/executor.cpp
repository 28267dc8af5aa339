#include "exec/executor.h"

#include <tbb/flow_graph.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include "core/element.h"
#include "core/error.h"
#include "core/settings.h"
#include "ir/printer.h"
#include "passes/schedule.h"

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
  std::int32_t node{};
  std::unique_ptr<cpu::Kernel> kernel;  // null only for a guard node without work
  std::vector<BufferRef> in_refs, out_refs;
  std::size_t scratch_offset = 0;
  bool has_scratch = false;
  std::vector<const void*> in;
  std::vector<void*> out;
  double seconds = 0;  // TRAINRT_PROFILE: total time in this kernel
};

/// The flow graph: one continue_node per task (a chain of steps run one after another).
struct Executor::Flow {
  tbb::flow::graph graph;
  std::vector<std::vector<std::size_t>> tasks;  // step indices, in order
  std::vector<std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes;
  std::vector<std::size_t> sources;  // tasks with no predecessor
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
  PlanOptions popts{options.keep_alive, std::vector<std::size_t>(n, 0)};
  for (std::int32_t node : graph.schedule) {
    const Node& nd = g.node(node);
    if (nd.kind == OpKind::Input) required_inputs_.push_back(node);
    if (nd.kind == OpKind::Variable) {
      variable_of_[static_cast<std::size_t>(node)] = variables.find(nd.name);
      check_internal(variable_of_[static_cast<std::size_t>(node)] != nullptr, "a variable has no storage");
    }
    kernels[static_cast<std::size_t>(node)] =
        cpu::make_kernel(cpu::KernelEnv{g, node, threads, dnn, options.fused_kernels, options.comm});
    if (kernels[static_cast<std::size_t>(node)])
      popts.scratch_bytes[static_cast<std::size_t>(node)] = kernels[static_cast<std::size_t>(node)]->scratch_bytes();
  }
  Dag dag = build_dag(g, graph.schedule, options.inter_op, options.guard_node);
  plan_ = plan_memory(g, graph.schedule, dag, popts);
  for (std::size_t i = 0; i < dag.preds.size(); ++i)  // the ordering memory reuse relies on
    dag.preds[i].insert(dag.preds[i].end(), plan_.extra_preds[i].begin(), plan_.extra_preds[i].end());
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
    for (std::size_t o = 0; o < nd.outputs.size(); ++o)
      s.out_refs.push_back(plan_.buffers[static_cast<std::size_t>(node)][o]);
    s.has_scratch = popts.scratch_bytes[static_cast<std::size_t>(node)] > 0;
    s.scratch_offset = plan_.scratch_offset[static_cast<std::size_t>(node)];
    s.in.resize(s.in_refs.size());
    s.out.resize(s.out_refs.size());
    steps_.push_back(std::move(s));
  }
  if (options.inter_op) build_flow(dag);
}

Executor::~Executor() {
  if (profile_ && runs_ > 0) print_profile();
}

std::size_t Executor::tasks() const noexcept { return flow_ ? flow_->tasks.size() : 0; }
std::size_t Executor::work_nodes() const noexcept { return steps_.size(); }

/// Tasks and their edges from the DAG. Nodes without a step (inputs, variables, constants,
/// reshapes, elided assignments) are contracted: a step depends on the nearest steps behind
/// them. A step with exactly one predecessor step, which has no other successor, joins its
/// task: straight chains (most of a network) cost one task, not one per kernel.
void Executor::build_flow(const Dag& dag) {
  const GraphImpl& g = *graph_.graph;
  const auto n = static_cast<std::size_t>(g.size());
  std::vector<int> step_of(n, -1);
  for (std::size_t i = 0; i < steps_.size(); ++i)
    step_of[static_cast<std::size_t>(steps_[i].node)] = static_cast<int>(i);

  // nearest[node]: the steps a node stands for (itself if it is one), sorted.
  std::vector<std::vector<int>> nearest(n), step_preds(steps_.size());
  for (std::int32_t node : graph_.schedule) {
    std::vector<int> reach;
    for (std::int32_t p : dag.preds[static_cast<std::size_t>(node)])
      reach.insert(reach.end(), nearest[static_cast<std::size_t>(p)].begin(),
                   nearest[static_cast<std::size_t>(p)].end());
    std::sort(reach.begin(), reach.end());
    reach.erase(std::unique(reach.begin(), reach.end()), reach.end());
    const int s = step_of[static_cast<std::size_t>(node)];
    if (s >= 0) {
      step_preds[static_cast<std::size_t>(s)] = std::move(reach);
      nearest[static_cast<std::size_t>(node)] = {s};
    } else {
      nearest[static_cast<std::size_t>(node)] = std::move(reach);
    }
  }
  std::vector<int> successors(steps_.size(), 0);
  for (const auto& preds : step_preds)
    for (int p : preds) ++successors[static_cast<std::size_t>(p)];

  flow_ = std::make_unique<Flow>();
  std::vector<int> task_of(steps_.size(), -1);
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    const auto& preds = step_preds[s];
    if (preds.size() == 1 && successors[static_cast<std::size_t>(preds[0])] == 1) {
      const int t = task_of[static_cast<std::size_t>(preds[0])];
      if (!flow_->tasks[static_cast<std::size_t>(t)].empty() &&
          flow_->tasks[static_cast<std::size_t>(t)].back() == static_cast<std::size_t>(preds[0])) {
        task_of[s] = t;
        flow_->tasks[static_cast<std::size_t>(t)].push_back(s);
        continue;
      }
    }
    task_of[s] = static_cast<int>(flow_->tasks.size());
    flow_->tasks.push_back({s});
  }
  for (std::size_t t = 0; t < flow_->tasks.size(); ++t) {
    const std::vector<std::size_t>* chain = &flow_->tasks[t];
    flow_->nodes.push_back(std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(
        flow_->graph, [this, chain](const tbb::flow::continue_msg&) {
          for (std::size_t s : *chain) run_step(steps_[s]);
        }));
  }
  std::vector<std::vector<int>> task_preds(flow_->tasks.size());
  for (std::size_t t = 0; t < flow_->tasks.size(); ++t) {
    for (int p : step_preds[flow_->tasks[t].front()]) task_preds[t].push_back(task_of[static_cast<std::size_t>(p)]);
    std::sort(task_preds[t].begin(), task_preds[t].end());
    task_preds[t].erase(std::unique(task_preds[t].begin(), task_preds[t].end()), task_preds[t].end());
    for (int p : task_preds[t]) tbb::flow::make_edge(*flow_->nodes[static_cast<std::size_t>(p)], *flow_->nodes[t]);
    if (task_preds[t].empty()) flow_->sources.push_back(t);
  }
}

void* Executor::resolve(const BufferRef& ref) const {
  switch (ref.storage) {
    case Storage::none: return nullptr;
    case Storage::arena: return arena_.get() + ref.offset;
    case Storage::variable: return variable_of_[static_cast<std::size_t>(ref.node)]->data.get() + ref.offset;
    case Storage::input:
      return const_cast<std::byte*>(static_cast<const std::byte*>((*feeds_)[static_cast<std::size_t>(ref.node)])) +
             ref.offset;
    case Storage::constant: return constants_[static_cast<std::size_t>(ref.node)].get() + ref.offset;
  }
  return nullptr;
}

void Executor::run_step(Step& s) {
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
  if (s.node == guard_node_ && on_guard_) on_guard_(guard_context_);
}

void Executor::run(const std::vector<const void*>& feeds, void (*on_guard)(void*), void* context) {
  feeds_ = &feeds;
  on_guard_ = on_guard;
  guard_context_ = context;
  // The feeds stay referenced after the run: data() of a fetched input (or a reshape of one)
  // reads them until the next run. The guard is cleared however run() ends.
  struct Done {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard, never copied
    Executor& e;
    ~Done() { e.on_guard_ = nullptr, e.guard_context_ = nullptr; }
  } done{*this};
  if (!flow_) {
    for (Step& s : steps_) run_step(s);
  } else {
    for (std::size_t t : flow_->sources) flow_->nodes[t]->try_put(tbb::flow::continue_msg());
    try {
      flow_->graph.wait_for_all();
    } catch (...) {
      // A kernel or the guard threw: the graph is cancelled; reset it for the next run.
      flow_->graph.reset();
      throw;
    }
  }
  ++runs_;
}

void Executor::print_profile() const {
  const GraphImpl& g = *graph_.graph;
  std::vector<const Step*> order;
  double total = 0;
  for (const Step& s : steps_) order.push_back(&s), total += s.seconds;
  std::sort(order.begin(), order.end(), [](const Step* a, const Step* b) { return a->seconds > b->seconds; });
  std::fprintf(stderr,
               "[trainrt] profile: %lld runs, %.3f ms per run in kernels (%zu tasks); the ops that took longest:\n",
               static_cast<long long>(runs_), 1e3 * total / static_cast<double>(runs_), tasks());
  for (std::size_t i = 0; i < order.size() && i < 25; ++i) {
    const Node& n = g.node(order[i]->node);
    std::fprintf(stderr, "  %8.3f ms %5.1f%%  %-24s %s\n", 1e3 * order[i]->seconds / static_cast<double>(runs_),
                 100.0 * order[i]->seconds / std::max(total, 1e-12), std::string(op_name(n.kind)).c_str(),
                 n.outputs.empty() ? "" : n.outputs[0].to_string().c_str());
  }
  // The same time summed by op kind: where a whole family of kernels (the optimizer's
  // elementwise updates, say) costs more than any one of them shows.
  std::map<std::string, std::pair<double, int>> by_kind;
  for (const Step& s : steps_) {
    auto& [seconds, count] = by_kind[std::string(op_name(g.node(s.node).kind))];
    seconds += s.seconds;
    ++count;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> kinds(by_kind.begin(), by_kind.end());
  std::sort(kinds.begin(), kinds.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::fprintf(stderr, "[trainrt] profile by op kind:\n");
  for (const auto& [name, t] : kinds)
    std::fprintf(stderr, "  %8.3f ms %5.1f%%  %-24s x%d\n", 1e3 * t.first / static_cast<double>(runs_),
                 100.0 * t.first / std::max(total, 1e-12), name.c_str(), t.second);
}

const void* Executor::data(ValueId v) const { return resolve(plan_.at(v)); }

}  // namespace trainrt::detail
