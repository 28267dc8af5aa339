// Compiler passes, one at a time: build a tiny graph, run the pass, check what changed and
// that the verifier accepts the result. On failure the IR before/after is printed.
#include <algorithm>
#include <map>

#include "ir/builder.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/eliminate_dead_code.h"
#include "passes/legalize_dtypes.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "passes/plan_memory.h"
#include "passes/schedule.h"
#include "optim/build_optimizer.h"
#include "test_util.h"

namespace trainrt {
namespace {

using namespace detail;

int count(const GraphImpl& g, OpKind k) {
  int n = 0;
  for (const Node& node : g.nodes()) n += !node.dead && node.kind == k;
  return n;
}

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

/// Every pair of arena buffers whose lifetimes overlap must occupy disjoint bytes.
void expect_no_overlap(const ScheduledGraph& s, const MemoryPlan& plan) {
  const GraphImpl& g = *s.graph;
  std::map<ValueId, std::pair<int, int>> life;  // first, last schedule position
  for (std::size_t p = 0; p < s.schedule.size(); ++p) {
    const Node& n = g.node(s.schedule[p]);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(n.outputs.size()); ++o) life[{s.schedule[p], o}] = {int(p), int(p)};
    for (const ValueId& in : n.inputs)
      if (in.valid()) life[in].second = std::max(life[in].second, int(p));
  }
  std::vector<std::tuple<ValueId, std::size_t, std::size_t, int, int>> bufs;  // id, begin, end, first, last
  for (const auto& [v, l] : life) {
    const BufferRef& r = plan.at(v);
    if (r.storage != Storage::arena) continue;
    const TensorType& t = g.type(v);
    bufs.emplace_back(v, r.offset, r.offset + static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype), l.first, l.second);
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
      const bool in_place = touching && bi == bj && is_elementwise(g.node(at).kind) && (vi.node == at || vj.node == at);
      EXPECT_FALSE(same_bytes && live_together && !in_place)
          << value_name(g, vi) << " and " << value_name(g, vj) << " overlap while both live\n" << print_graph(g);
    }
}

TEST(Passes, MemoryPlanReusesWithoutOverlapWritesInPlaceAndElidesAssignments) {
  Graph g;
  auto x = g.input("x", {32, 16});
  auto y = g.input("y", {32}, i64);
  nn::Linear fc1(g, "fc1", 16, 64), fc2(g, "fc2", 64, 64), fc3(g, "fc3", 64, 10);
  auto loss = cross_entropy(fc3(relu(fc2(relu(fc1(x))))), y);
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::SGD{.momentum = 0.9}, 0});
  const ValueId l = s.from_source(id_of(loss));
  const MemoryPlan plan = plan_memory(*s.graph, s.schedule, {{l}, {}, -1});
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

TEST(Passes, FiniteLossGuardDisablesEarlyVariableWrites) {
  Graph g;
  auto x = g.input("x", {8, 3});
  nn::BatchNorm2d bn(g, "bn", 3);
  auto loss = mean(bn(x));
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s = compile_training_graph(g.impl(), {id_of(loss), {}, optim::None{}, 0});
  const ValueId l = s.from_source(id_of(loss));
  const MemoryPlan guarded = plan_memory(*s.graph, s.schedule, {{l}, {}, l.node});
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
