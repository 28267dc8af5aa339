// tests/serialize_graph_test.cpp — compiled graphs to bytes and back (compile/serialize_graph.h):
// round trips of real compiled training and evaluation graphs (MLP, CNN, transformer, fused
// and unfused), user graphs with constants and dead nodes, determinism of the bytes and the
// fingerprint, and damaged input: every truncation, random byte flips, wrong magic, version
// and lengths.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "../bench/models.h"
#include "compile/serialize_graph.h"
#include "ir/builder.h"
#include "ir/fused.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "optim/build_optimizer.h"
#include "passes/lower_mode.h"
#include "test_util.h"

namespace trainrt {
namespace {

using detail::id_of;
using detail::ScheduledGraph;

/// A model ready for compile_training_graph: its graph (with the step counter) and loss.
struct Built {
  Graph graph;
  Value loss;
};

void add_step_counter(Graph& g) {
  detail::optimizer_variable(g.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
}

std::unique_ptr<Built> build_mlp() {
  auto b = std::make_unique<Built>();
  Graph& g = b->graph;
  auto x = g.input("x", {8, 12});
  auto y = g.input("y", {8}, i64);
  nn::Linear fc1(g, "fc1", 12, 16), fc2(g, "fc2", 16, 4);
  b->loss = cross_entropy(fc2(gelu(fc1(x)) * 0.5), y);
  add_step_counter(g);
  return b;
}

std::unique_ptr<Built> build_cnn() {
  auto b = std::make_unique<Built>();
  Graph& g = b->graph;
  auto x = g.input("x", {2, 3, 8, 8});
  auto y = g.input("y", {2}, i64);
  nn::Conv2d conv(g, "conv", 3, 4, {3, 3}, {.padding = {1, 1}});
  nn::BatchNorm2d bn(g, "bn", 4);
  nn::Linear fc(g, "fc", 4 * 4 * 4, 3);
  Value h = max_pool2d(relu(bn(conv(x))));
  b->loss = cross_entropy(fc(flatten(h)), y);
  add_step_counter(g);
  return b;
}

std::unique_ptr<Built> build_transformer() {
  auto b = std::make_unique<Built>();
  Graph& g = b->graph;
  const bench_models::TransformerConfig c{
      .vocab = 32, .seq_len = 8, .d_model = 16, .heads = 2, .ffn = 32, .layers = 1, .dropout = 0.1};
  auto tokens = g.input("tokens", {2, 8}, i64);
  auto targets = g.input("targets", {2, 8}, i64);
  b->loss = bench_models::build_transformer(g, tokens, targets, c).loss;
  add_step_counter(g);
  return b;
}

ScheduledGraph compile_train(const Built& b, bool fuse, const optim::Optimizer& opt = optim::AdamW{}) {
  return detail::compile_training_graph(b.graph.impl(), {id_of(b.loss), {}, opt, 7, 0, fuse});
}

/// The printer's text of attributes outside a node (a fused op's).
std::string attrs_text(const detail::Attrs& attrs) {
  detail::Node n;
  n.attrs = attrs;
  return detail::print_attrs(n);
}

/// Node fields the printer leaves out (full file path, dead nodes) must survive too.
void expect_same_nodes(const detail::GraphImpl& a, const detail::GraphImpl& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.phase(), b.phase());
  for (std::int32_t i = 0; i < a.size(); ++i) {
    const detail::Node &x = a.node(i), &y = b.node(i);
    SCOPED_TRACE(detail::print_node(a, i));
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.outputs, y.outputs);
    EXPECT_EQ(x.attrs.index(), y.attrs.index());
    EXPECT_EQ(detail::print_attrs(x), detail::print_attrs(y));
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.phase, y.phase);
    EXPECT_EQ(x.dead, y.dead);
    EXPECT_EQ(x.loc.line, y.loc.line);
    ASSERT_EQ(x.loc.file == nullptr, y.loc.file == nullptr);
    if (x.loc.file) {
      EXPECT_STREQ(x.loc.file, y.loc.file);
    }
    if (!x.name.empty()) {
      EXPECT_EQ(b.find(x.name), i);
    }
    if (x.kind != detail::OpKind::Fused) continue;
    const detail::FusedBody &p = detail::fused_body(x), &q = detail::fused_body(y);
    ASSERT_EQ(p.groups.size(), q.groups.size());
    for (std::size_t gi = 0; gi < p.groups.size(); ++gi) {
      const detail::FusedGroup &g1 = p.groups[gi], &g2 = q.groups[gi];
      EXPECT_EQ(g1.loop, g2.loop);
      EXPECT_EQ(g1.reduce_axes, g2.reduce_axes);
      ASSERT_EQ(g1.ops.size(), g2.ops.size());
      for (std::size_t k = 0; k < g1.ops.size(); ++k) {
        EXPECT_EQ(g1.ops[k].kind, g2.ops[k].kind);
        EXPECT_EQ(g1.ops[k].args, g2.ops[k].args);
        EXPECT_EQ(g1.ops[k].type, g2.ops[k].type);
        EXPECT_EQ(g1.ops[k].attrs.index(), g2.ops[k].attrs.index());
        EXPECT_EQ(attrs_text(g1.ops[k].attrs), attrs_text(g2.ops[k].attrs));
      }
    }
    ASSERT_EQ(p.outputs.size(), q.outputs.size());
    for (std::size_t o = 0; o < p.outputs.size(); ++o) {
      EXPECT_EQ(p.outputs[o].group, q.outputs[o].group);
      EXPECT_EQ(p.outputs[o].op, q.outputs[o].op);
    }
  }
}

/// Serializes, reads back and compares everything; returns the bytes.
std::string expect_round_trip(const ScheduledGraph& s) {
  const std::string bytes = detail::serialize_scheduled_graph(s);
  const ScheduledGraph t = detail::deserialize_scheduled_graph(bytes);
  EXPECT_NE(t.graph->id(), s.graph->id());
  EXPECT_NO_THROW(detail::verify(*t.graph, "test"));
  EXPECT_EQ(detail::print_graph(*t.graph), detail::print_graph(*s.graph));
  expect_same_nodes(*s.graph, *t.graph);
  EXPECT_EQ(t.schedule, s.schedule);
  EXPECT_EQ(t.from_source.entries(), s.from_source.entries());
  EXPECT_EQ(t.recomputed, s.recomputed);
  EXPECT_EQ(t.fused, s.fused);
  EXPECT_EQ(detail::serialize_scheduled_graph(t), bytes) << "serializing again gives other bytes";
  return bytes;
}

std::size_t count_kind(const detail::GraphImpl& g, detail::OpKind kind) {
  std::size_t n = 0;
  for (const detail::Node& node : g.nodes()) n += !node.dead && node.kind == kind;
  return n;
}

TEST(SerializeGraph, RoundTripsCompiledTrainingGraphs) {
  for (auto* build : {&build_mlp, &build_cnn, &build_transformer}) {
    const auto model = build();
    for (bool fuse : {true, false}) {
      SCOPED_TRACE(testing::Message() << model->graph.size() << " nodes, fuse " << fuse);
      const ScheduledGraph s = compile_train(*model, fuse);
      EXPECT_EQ(count_kind(*s.graph, detail::OpKind::Fused) > 0, fuse);
      expect_round_trip(s);
    }
  }
}

TEST(SerializeGraph, RoundTripsEvaluationGraphsAndRecomputation) {
  std::size_t fused = 0;  // the small models' evaluation graphs have little to fuse
  for (auto* build : {&build_mlp, &build_cnn, &build_transformer}) {
    const auto model = build();
    const ScheduledGraph s =
        detail::compile_evaluation_graph(model->graph.impl(), {id_of(model->loss)}, true, DType::f32);
    fused += count_kind(*s.graph, detail::OpKind::Fused);
    expect_round_trip(s);
  }
  EXPECT_GT(fused, 0u);
  // A memory budget of one byte recomputes activations in backward.
  const auto cnn = build_cnn();
  const ScheduledGraph s =
      detail::compile_training_graph(cnn->graph.impl(), {id_of(cnn->loss), {}, optim::SGD{.lr = 0.1}, 7, 1, true});
  EXPECT_GT(s.recomputed, 0u);
  expect_round_trip(s);
}

TEST(SerializeGraph, RoundTripsConstantsDeadNodesAndPhases) {
  Graph g;
  auto x = g.input("x", {2, 3}, f64);
  std::mt19937 rng(3);
  Value c64 = g.constant(test::random_tensor({2, 3}, f64, rng));
  Value c16 = g.constant(test::random_tensor({3}, f16, rng));
  Value ci = g.constant(test::random_tensor({2, 3}, i64, rng, -100, 100));
  Value cb = g.constant(Tensor::from_bools({2, 3}, {true, false, true, true, false, false}));
  Value empty = g.constant(Tensor::zeros({0, 3}, f32));
  Value h = where(cb, x * c64, cast(ci, f64)) + cast(c16, f64);
  (void)empty;
  std::shared_ptr<detail::GraphImpl> impl = g.impl().clone();
  impl->node(id_of(h).node).dead = true;  // as a pass would leave it (nothing reads it)
  impl->node(1).phase = detail::Phase::backward;
  impl->set_phase(detail::Phase::update);
  const std::string bytes = detail::serialize_graph(*impl);
  const std::shared_ptr<detail::GraphImpl> back = detail::deserialize_graph(bytes);
  EXPECT_EQ(detail::print_graph(*back), detail::print_graph(*impl));
  expect_same_nodes(*impl, *back);
  EXPECT_EQ(detail::serialize_graph(*back), bytes);
  for (const Value& c : {c64, c16, ci, cb, empty}) {
    const Tensor& a = *std::get<detail::ConstantAttrs>(impl->node(c.node()).attrs).value;
    const Tensor& b = *std::get<detail::ConstantAttrs>(back->node(c.node()).attrs).value;
    ASSERT_EQ(a.dtype(), b.dtype());
    ASSERT_EQ(a.shape(), b.shape());
    EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0);
  }
}

TEST(SerializeGraph, IdenticalGraphsGiveIdenticalBytes) {
  const auto a = build_transformer(), b = build_transformer();
  const std::string sa = detail::serialize_scheduled_graph(compile_train(*a, true));
  const std::string sb = detail::serialize_scheduled_graph(compile_train(*b, true));
  EXPECT_EQ(detail::sha256(sa), detail::sha256(sb));
  EXPECT_EQ(detail::fingerprint_graph(a->graph.impl()), detail::fingerprint_graph(b->graph.impl()));
  EXPECT_EQ(detail::fingerprint_graph(a->graph.impl()), detail::sha256(detail::serialize_graph(a->graph.impl())));
  const auto mlp = build_mlp();
  EXPECT_NE(detail::fingerprint_graph(a->graph.impl()), detail::fingerprint_graph(mlp->graph.impl()));
  // Another optimizer gives another compiled graph.
  EXPECT_NE(detail::sha256(sa),
            detail::sha256(detail::serialize_scheduled_graph(compile_train(*a, true, optim::SGD{}))));
}

void expect_io_error(std::string_view bytes, bool scheduled, const std::string& needle = {}) {
  try {
    if (scheduled) detail::deserialize_scheduled_graph(bytes);
    else detail::deserialize_graph(bytes);
    ADD_FAILURE() << "no error for " << bytes.size() << " bytes";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("at byte"), std::string::npos) << e.what();
  }
}

TEST(SerializeGraph, EveryTruncationThrowsIo) {
  const auto model = build_mlp();
  const std::string graph = detail::serialize_graph(model->graph.impl());
  for (std::size_t n = 0; n < graph.size(); ++n) expect_io_error(std::string_view(graph).substr(0, n), false);
  const std::string sched = detail::serialize_scheduled_graph(compile_train(*model, true));
  for (std::size_t n = 0; n < sched.size(); ++n) expect_io_error(std::string_view(sched).substr(0, n), true);
}

TEST(SerializeGraph, RandomByteFlipsThrowIoOrGiveAValidGraph) {
  const auto model = build_mlp();
  const std::string sched = detail::serialize_scheduled_graph(compile_train(*model, true));
  std::mt19937 rng(11);
  int errors = 0, graphs = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string damaged = sched;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) damaged[rng() % damaged.size()] ^= static_cast<char>(1u << (rng() % 8));
    try {
      const ScheduledGraph s = detail::deserialize_scheduled_graph(damaged);
      ++graphs;  // a flip in a float, a line number, a name...: still a graph the verifier accepts
      EXPECT_NO_THROW(detail::verify(*s.graph, "test"));
      EXPECT_FALSE(detail::print_graph(*s.graph).empty());
    } catch (const Error& e) {
      ++errors;
      EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(graphs, 0);
}

TEST(SerializeGraph, ForeignInputIsAClearError) {
  const auto model = build_mlp();
  const std::string graph = detail::serialize_graph(model->graph.impl());
  const std::string sched = detail::serialize_scheduled_graph(compile_train(*model, true));
  std::string bytes = graph;
  bytes[0] = 'X';
  expect_io_error(bytes, false, "wrong magic");
  expect_io_error(sched, false, "wrong magic");  // a scheduled graph is not a graph
  expect_io_error(graph, true, "wrong magic");
  expect_io_error("", false, "wrong magic");
  bytes = graph;
  bytes[8] = 1;  // format version 1 (before the collective ops)
  expect_io_error(bytes, false, "format version 1, but this build reads version 2");
  bytes = sched;
  bytes[8] = 9;
  expect_io_error(bytes, true, "format version 9");
  expect_io_error(graph + "x", false, "1 bytes after the end");
  // A damaged node count must fail at once, not allocate 4 billion nodes.
  bytes = graph;
  bytes.replace(13, 4, "\xff\xff\xff\xff");
  expect_io_error(bytes, false, "damaged length");
}

TEST(SerializeGraph, DecodedButInconsistentGraphsAreIo) {
  // Swap the output type of the first matmul: the bytes decode, the verifier rejects them.
  Graph g;
  auto x = g.input("x", {2, 3});
  auto w = g.parameter("w", {3, 4}, init::ones());
  (void)matmul(x, w);
  std::shared_ptr<detail::GraphImpl> impl = g.impl().clone();
  impl->node(2).outputs[0].shape = Shape{2, 5};
  expect_io_error(detail::serialize_graph(*impl), false, "do not form a valid graph");
  // An operand that refers to a later node.
  impl = g.impl().clone();
  impl->node(2).inputs[0] = {2, 0};
  expect_io_error(detail::serialize_graph(*impl), false, "is not an earlier value");
}

}  // namespace
}  // namespace trainrt
