// Compiler passes, one at a time: build a tiny graph, run the pass, check what changed and
// that the verifier accepts the result. On failure the IR before/after is printed.
#include <algorithm>
#include <map>

#include "ir/builder.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "optim/build_optimizer.h"
#include "passes/eliminate_dead_code.h"
#include "passes/legalize_dtypes.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "passes/plan_memory.h"
#include "passes/schedule.h"
#include "test_util.h"

namespace trainrt {
namespace {

using namespace detail;

using test::count;

TEST(Passes, EliminateDeadCodeKeepsRootsAssignsAndVariables) {
  Graph g;
  auto x = g.input("x", {3});
  auto unused_input = g.input("u", {3});
  auto w = g.parameter("w", {3});
  auto kept = exp(x) * w;
  auto dropped = log(x) + unused_input;
  (void)dropped;
  GraphImpl& gi = g.impl();
  const std::string before = print_graph(gi);
  EXPECT_TRUE(eliminate_dead_code(gi, {id_of(kept)})) << before;
  EXPECT_EQ(count(gi, OpKind::Log), 0) << print_graph(gi);
  EXPECT_EQ(count(gi, OpKind::Input), 1);
  EXPECT_EQ(count(gi, OpKind::Variable), 1);
  EXPECT_EQ(count(gi, OpKind::Exp), 1);
  verify(gi, "test");
  EXPECT_FALSE(eliminate_dead_code(gi, {id_of(kept)})) << "a second run changes nothing";
}

TEST(Passes, LoweringPicksTheModeForm) {
  Graph g;
  auto x = g.input("x", {4, 3});
  nn::BatchNorm2d bn(g, "bn", 3);
  auto y = dropout(bn(x), 0.5);
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  ValueMap train_map, eval_map;
  auto train = lower_for_training(g.impl(), 7, train_map);
  verify(*train, "lower_for_training");
  EXPECT_EQ(count(*train, OpKind::BatchNorm), 0);
  EXPECT_EQ(count(*train, OpKind::BatchNormTrain), 1);
  EXPECT_EQ(count(*train, OpKind::Assign), 2) << print_graph(*train);
  EXPECT_EQ(count(*train, OpKind::DropoutApply), 1);
  EXPECT_EQ(train->node(train_map(id_of(y)).node).kind, OpKind::DropoutApply);
  auto eval = lower_for_evaluation(g.impl(), eval_map);
  verify(*eval, "lower_for_evaluation");
  EXPECT_EQ(count(*eval, OpKind::BatchNormEval), 1);
  EXPECT_EQ(count(*eval, OpKind::Dropout) + count(*eval, OpKind::DropoutApply), 0);
  EXPECT_EQ(eval->node(eval_map(id_of(y)).node).kind, OpKind::BatchNormEval) << "dropout is the identity";
}

TEST(Passes, LegalizationWrapsSixteenBitOpsInCasts) {
  Graph g;
  auto x = g.input("x", {4}, bf16);
  auto y = exp(x) + x;
  auto r = reshape(y, {2, 2});  // data movement stays in bf16
  ValueMap map;
  bool changed = false;
  auto out = legalize_dtypes_for_cpu(g.impl(), map, changed);
  EXPECT_TRUE(changed);
  verify(*out, "legalize");
  for (const Node& n : out->nodes()) {
    if (n.kind == OpKind::Exp || n.kind == OpKind::Add) {
      EXPECT_EQ(n.outputs[0].dtype, f32) << print_graph(*out);
    }
  }
  EXPECT_EQ(out->type(map(id_of(r))).dtype, bf16);
  // Each op casts its operands up and its result down: exp (x up, result down), add (two
  // operands up, result down). Removing the down-up pairs is the fusion pass's job.
  EXPECT_EQ(count(*out, OpKind::Cast), 5) << print_graph(*out);
}

// The pipeline picks its target-specific passes by CompileTarget: the CPU computes 16-bit
// elementwise work in f32, CUDA keeps it in bf16 (its kernels load and store 16 bits).
TEST(Passes, OnlyTheCpuTargetLegalizesSixteenBitOps) {
  Graph g;
  auto x = g.input("x", {4}, bf16);
  auto y = exp(x) + x;
  for (const CompileTarget target : {CompileTarget::cpu, CompileTarget::cuda}) {
    const ScheduledGraph s = compile_evaluation_graph(g.impl(), {id_of(y)}, false, f32, target);
    std::int64_t f32_math = 0, bf16_math = 0;
    for (const Node& n : s.graph->nodes())
      if (n.kind == OpKind::Exp || n.kind == OpKind::Add) ++(n.outputs[0].dtype == f32 ? f32_math : bf16_math);
    if (target == CompileTarget::cpu) {
      EXPECT_EQ(f32_math, 2) << print_graph(*s.graph);
      EXPECT_GT(count(*s.graph, OpKind::Cast), 0);
    } else {
      EXPECT_EQ(bf16_math, 2) << print_graph(*s.graph);
      EXPECT_EQ(count(*s.graph, OpKind::Cast), 0);
    }
    EXPECT_EQ(s.graph->type(s.from_source(id_of(y))).dtype, bf16);
  }
}

TEST(Passes, ScheduleRunsAssignmentsLast) {
  Graph g;
  auto x = g.input("x", {3});
  auto w = g.parameter("w", {3}, init::ones());
  auto loss = sum(x * w);
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::SGD{.momentum = 0.5}, 0});
  bool seen_assign = false;
  for (std::int32_t n : s.schedule) {
    const bool is_assign = s.graph->node(n).kind == OpKind::Assign;
    EXPECT_TRUE(is_assign || !seen_assign) << "a computation after an assignment: " << print_node(*s.graph, n);
    seen_assign = seen_assign || is_assign;
  }
  EXPECT_TRUE(seen_assign);
}

/// Ops the memory plan may write in place over an operand (elementwise and fused ones).
bool writes_in_place(OpKind k) { return is_elementwise(k) || k == OpKind::Fused; }

/// Every pair of arena buffers whose lifetimes overlap must occupy disjoint bytes.
void expect_no_overlap(const ScheduledGraph& s, const MemoryPlan& plan) {
  const GraphImpl& g = *s.graph;
  std::map<ValueId, std::pair<int, int>> life;  // first, last schedule position
  for (std::size_t p = 0; p < s.schedule.size(); ++p) {
    const Node& n = g.node(s.schedule[p]);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(n.outputs.size()); ++o)
      life[{s.schedule[p], o}] = {int(p), int(p)};
    for (const ValueId& in : n.inputs)
      if (in.valid()) life[in].second = std::max(life[in].second, int(p));
  }
  std::vector<std::tuple<ValueId, std::size_t, std::size_t, int, int>> bufs;  // id, begin, end, first, last
  for (const auto& [v, l] : life) {
    const BufferRef& r = plan.at(v);
    if (r.storage != Storage::arena) continue;
    const TensorType& t = g.type(v);
    bufs.emplace_back(v, r.offset, r.offset + static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype), l.first,
                      l.second);
  }
  // A reshape aliases its operand's buffer: compare alias roots.
  auto root = [&](ValueId v) {
    while (g.node(v.node).kind == OpKind::Reshape) v = g.node(v.node).inputs[0];
    return v;
  };
  for (std::size_t i = 0; i < bufs.size(); ++i)
    for (std::size_t j = i + 1; j < bufs.size(); ++j) {
      const auto& [vi, bi, ei, fi, li] = bufs[i];
      const auto& [vj, bj, ej, fj, lj] = bufs[j];
      if (root(vi) == root(vj)) continue;
      const bool same_bytes = bi < ej && bj < ei;
      const bool live_together = fi <= lj && fj <= li;
      // Lifetimes may touch at one position only when one buffer is written in place over
      // the other: an elementwise op whose operand dies there, at the same offset.
      const bool touching = fi == lj || fj == li;
      const std::int32_t at = s.schedule[static_cast<std::size_t>(fi == lj ? fi : fj)];
      const bool in_place =
          touching && bi == bj && writes_in_place(g.node(at).kind) && (vi.node == at || vj.node == at);
      EXPECT_FALSE(same_bytes && live_together && !in_place)
          << value_name(g, vi) << " and " << value_name(g, vj) << " overlap while both live\n"
          << print_graph(g);
    }
}

/// A three-layer MLP's training step with SGD and momentum, and its sequential memory plan.
struct MlpStep {
  ScheduledGraph s;
  MemoryPlan plan;
};
MlpStep mlp_step(bool fuse) {
  Graph g;
  auto x = g.input("x", {32, 16});
  auto y = g.input("y", {32}, i64);
  nn::Linear fc1(g, "fc1", 16, 64), fc2(g, "fc2", 64, 64), fc3(g, "fc3", 64, 10);
  auto loss = cross_entropy(fc3(relu(fc2(relu(fc1(x))))), y);
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  MlpStep m;
  m.s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::SGD{.momentum = 0.9}, 0, 0, fuse});
  const ValueId l = m.s.from_source(id_of(loss));
  m.plan = plan_memory(*m.s.graph, m.s.schedule, build_dag(*m.s.graph, m.s.schedule, false, -1), {{l}, {}});
  return m;
}

TEST(Passes, MemoryPlanReusesWithoutOverlapWritesInPlaceAndElidesAssignments) {
  // Unfused, so that the relus are nodes of their own (fused plans: the test below).
  const auto [s, plan] = mlp_step(false);
  EXPECT_LT(plan.arena_bytes, plan.naive_bytes);
  expect_no_overlap(s, plan);
  int in_place = 0, elided = 0;
  for (std::int32_t n : s.schedule) {
    const Node& node = s.graph->node(n);
    if (node.kind == OpKind::Assign) elided += plan.elided[static_cast<std::size_t>(n)];
    if (node.kind == OpKind::Relu && plan.at({n, 0}).offset == plan.at(node.inputs[0]).offset) ++in_place;
  }
  EXPECT_EQ(in_place, 2) << "relu over the add it follows";
  // 6 parameters and 6 momentum buffers are updated by their producers directly; the
  // learning-rate and step-counter assignments read variables... and are elided too when
  // their producer runs after every read.
  EXPECT_GE(elided, 12);
}

TEST(Passes, FusedMemoryPlanWritesInPlaceAndIntoVariablesWithoutOverlap) {
  const auto [s, plan] = mlp_step(true);
  ASSERT_GT(s.fused, 0u);
  expect_no_overlap(s, plan);
  int elided = 0;
  for (std::int32_t n : s.schedule)
    if (s.graph->node(n).kind == OpKind::Assign) elided += plan.elided[static_cast<std::size_t>(n)];
  EXPECT_GE(elided, 12) << "fused updates write parameters and momentum straight into the variables";
}

/// With a parallel DAG: two arena buffers that share bytes must be ordered — every node that
/// touches one happens before the node that writes the other — unless the second is written
/// in place over the first by an elementwise op that is its last user.
void expect_no_race(const ScheduledGraph& s, const Dag& dag, const MemoryPlan& plan) {
  const GraphImpl& g = *s.graph;
  const Ancestors anc(s.schedule, dag);
  std::map<std::int32_t, int> pos;
  for (std::size_t p = 0; p < s.schedule.size(); ++p) pos[s.schedule[p]] = static_cast<int>(p);
  auto root = [&](ValueId v) {
    while (g.node(v.node).kind == OpKind::Reshape) v = g.node(v.node).inputs[0];
    return v;
  };
  struct Buf {
    ValueId v;
    std::size_t begin, end;
    int writer;
    std::vector<int> users;
  };
  std::map<ValueId, Buf> bufs;
  for (std::int32_t node : s.schedule) {
    const Node& n = g.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(n.outputs.size()); ++o) {
      const ValueId v{node, o};
      const BufferRef& r = plan.at(v);
      if (r.storage != Storage::arena) continue;
      const ValueId rv = root(v);
      const TensorType& t = g.type(rv);
      auto [it, fresh] = bufs.try_emplace(
          rv,
          Buf{rv, r.offset, r.offset + static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype), pos[rv.node], {}});
      it->second.users.push_back(pos[node]);
    }
    for (const ValueId& in : n.inputs)
      if (in.valid() && plan.at(in).storage == Storage::arena) bufs.at(root(in)).users.push_back(pos[node]);
  }
  std::vector<Buf> list;
  for (auto& [v, b] : bufs) list.push_back(b);
  auto ordered = [&](const Buf& first, const Buf& second) {
    return std::all_of(first.users.begin(), first.users.end(),
                       [&](int u) { return u == second.writer ? false : anc.before(u, second.writer); });
  };
  auto in_place = [&](const Buf& first, const Buf& second) {
    if (first.begin != second.begin ||
        !writes_in_place(g.node(s.schedule[static_cast<std::size_t>(second.writer)]).kind))
      return false;
    return std::all_of(first.users.begin(), first.users.end(),
                       [&](int u) { return u == second.writer || anc.before(u, second.writer); });
  };
  for (std::size_t i = 0; i < list.size(); ++i)
    for (std::size_t j = i + 1; j < list.size(); ++j) {
      const Buf &a = list[i], &b = list[j];
      if (!(a.begin < b.end && b.begin < a.end)) continue;
      EXPECT_TRUE(ordered(a, b) || ordered(b, a) || in_place(a, b) || in_place(b, a))
          << value_name(g, a.v) << " and " << value_name(g, b.v) << " share bytes but may run at the same time";
    }
}

TEST(Passes, ParallelMemoryPlanNeverSharesBetweenConcurrentNodes) {
  // A residual network with two branches per block and a two-layer head: plenty of nodes
  // the DAG lets run at once, forward and backward.
  Graph g;
  auto x = g.input("x", {8, 4, 6, 6});
  auto y = g.input("y", {8}, i64);
  Value h = x;
  for (int b = 0; b < 2; ++b) {
    const std::string name = "b" + std::to_string(b);
    nn::Conv2d c1(g, name + ".c1", 4, 4, {3, 3}, {.padding = {1, 1}}), c2(g, name + ".c2", 4, 4, {1, 1});
    nn::BatchNorm2d bn(g, name + ".bn", 4);
    h = relu(bn(c1(h)) + c2(h) + h);
  }
  nn::Linear fc1(g, "fc1", 4, 16), fc2(g, "fc2", 16, 3);
  auto loss = cross_entropy(fc2(gelu(fc1(global_avg_pool2d(h)))), y, {.label_smoothing = 0.1});
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::Adam{}, 0});
  const ValueId l = s.from_source(id_of(loss));
  for (bool parallel : {true, false}) {
    Dag dag = build_dag(*s.graph, s.schedule, parallel, -1);
    const MemoryPlan plan = plan_memory(*s.graph, s.schedule, dag, {{l}, {}});
    for (std::size_t i = 0; i < dag.preds.size(); ++i)  // the executor runs the plan's orderings too
      dag.preds[i].insert(dag.preds[i].end(), plan.extra_preds[i].begin(), plan.extra_preds[i].end());
    SCOPED_TRACE(parallel ? "parallel DAG" : "chain");
    expect_no_race(s, dag, plan);
    EXPECT_LT(plan.arena_bytes, plan.naive_bytes);
  }
}

TEST(Passes, FiniteLossGuardDisablesEarlyVariableWrites) {
  Graph g;
  auto x = g.input("x", {8, 3});
  nn::BatchNorm2d bn(g, "bn", 3);
  auto loss = mean(bn(x));
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::None{}, 0});
  const ValueId l = s.from_source(id_of(loss));
  const MemoryPlan guarded =
      plan_memory(*s.graph, s.schedule, build_dag(*s.graph, s.schedule, true, l.node), {{l}, {}});
  std::size_t guard_pos = 0;
  while (s.schedule[guard_pos] != l.node) ++guard_pos;
  for (std::size_t p = 0; p <= guard_pos; ++p) {
    const Node& n = s.graph->node(s.schedule[p]);
    if (n.kind == OpKind::Variable) continue;
    for (std::size_t o = 0; o < n.outputs.size(); ++o) {
      EXPECT_NE(guarded.buffers[static_cast<std::size_t>(s.schedule[p])][o].storage, Storage::variable)
          << print_node(*s.graph, s.schedule[p]);
    }
  }
}

TEST(Passes, VerifierCatchesBrokenGraphs) {
  Graph g;
  auto x = g.input("x", {3});
  auto y = exp(x);
  GraphImpl& gi = g.impl();
  gi.node(y.node()).outputs[0].shape = Shape{4};  // a pass that forgot to update a type
  test::expect_error([&] { verify(gi, "broken_pass"); }, ErrorKind::Internal,
                     {"after pass 'broken_pass'", "stored output types differ", "exp"});
  gi.node(y.node()).outputs[0].shape = Shape{3};
  gi.node(x.node()).dead = true;
  test::expect_error([&] { verify(gi, "broken_pass"); }, ErrorKind::Internal, {"uses a value of a dead node"});
}

}  // namespace
}  // namespace trainrt
