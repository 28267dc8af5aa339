// The three optimizing passes: eliminate_common_subexpressions, fold_constants and
// simplify_algebra, and attrs_equal/attrs_hash under them.
//
// Contents:
//   helpers             running one pass, counting nodes, comparing bits, special values
//   attrs               equality and hashing of every attribute alternative
//   CSE                 what merges, what must not (inputs, variables, assigns, dropout keys)
//   folding             every foldable op and dtype, bit for bit against the kernels
//   simplification      every rule, bit for bit against the unsimplified op; the non-rules
//   pipeline            training through compile() against a twin graph the passes cannot touch
//
// "Bit for bit against the unsimplified op": the reference graph computes the same op with
// the constant fed through an input (inputs are never folded or simplified), so the kernels
// run it, and the outputs must have the same bytes.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>

#include "core/element.h"
#include "core/error.h"
#include "ir/builder.h"
#include "ir/fused.h"
#include "ir/internal_ops.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "optim/build_optimizer.h"
#include "passes/eliminate_common_subexpressions.h"
#include "passes/eliminate_dead_code.h"
#include "passes/fold_constants.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "passes/simplify_algebra.h"
#include "test_util.h"

namespace trainrt {
namespace {

using namespace detail;

// ---- helpers ----------------------------------------------------------------------------------

using test::count;

int live(const GraphImpl& g) {
  int n = 0;
  for (const Node& node : g.nodes()) n += !node.dead;
  return n;
}

using PassFn = std::function<bool(std::shared_ptr<GraphImpl>&, ValueMap&, const std::vector<ValueId>&)>;

/// Runs `pass` on a clone of `g` followed by dead-code elimination with `roots`; returns the
/// new graph and the new roots. Verifies the result and prints before/after on failure.
struct PassRun {
  std::shared_ptr<GraphImpl> graph;
  std::vector<ValueId> roots;
  bool changed = false;
};
PassRun run_pass(const PassFn& pass, const Graph& g, const std::vector<Value>& roots) {
  PassRun r;
  r.graph = g.impl().clone();
  const std::string before = print_graph(*r.graph);
  ValueMap map;
  std::vector<ValueId> ids;
  for (const Value& v : roots) ids.push_back(id_of(v));
  r.changed = pass(r.graph, map, ids);
  for (const Value& v : roots) r.roots.push_back(map(id_of(v)));
  eliminate_dead_code(*r.graph, r.roots);
  try {
    verify(*r.graph, "test");
  } catch (const Error& e) {
    ADD_FAILURE() << e.what() << "\nbefore:\n" << before << "after:\n" << print_graph(*r.graph);
  }
  return r;
}

const PassFn kCse = [](std::shared_ptr<GraphImpl>& g, ValueMap& m, const std::vector<ValueId>&) {
  return eliminate_common_subexpressions(g, m);
};
const PassFn kSimplify = simplify_algebra;
const PassFn kFold = [](std::shared_ptr<GraphImpl>& g, ValueMap& m, const std::vector<ValueId>&) {
  return fold_constants(g, m);
};

/// A consumer that keeps every bit of its operand's information (a sign flip, or logical
/// not): simplification tests fetch consume(v), so that v itself is no root, which the pass
/// would keep from becoming an input (see simplify_algebra.h).
Value consume(const Value& v) { return v.dtype() == boolean ? logical_not(v) : neg(v); }

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

/// The first element whose bits differ, for failure messages.
std::string first_difference(const Tensor& a, const Tensor& b, const Tensor& x = {}) {
  if (!(a.shape() == b.shape()) || a.dtype() != b.dtype())
    return cat("types differ: ", name(a.dtype()), a.shape().to_string(), " vs ", name(b.dtype()),
               b.shape().to_string());
  const std::size_t e = size_of(a.dtype());
  for (std::int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(static_cast<const char*>(a.raw_data()) + i * e, static_cast<const char*>(b.raw_data()) + i * e,
                    e) != 0)
      return cat("element ", i, ": ", std::hexfloat, a.at(i), " vs ", b.at(i),
                 x.defined() && i < x.numel() ? cat(" (operand ", std::hexfloat, x.at(i), ")") : std::string());
  return "none";
}

/// Values that exercise the corners of each dtype: signed zeros, infinities, NaN,
/// subnormals, the integer limits (wrap-around), then random ones; `n` elements in all.
Tensor special_values(DType d, std::int64_t n, std::mt19937& rng) {
  std::vector<double> v;
  if (is_floating(d)) {
    const double tiny = d == DType::f64 ? 1e-310 : d == DType::f32 ? 1e-40 : d == DType::bf16 ? 1e-39 : 3e-6;
    const double huge = d == DType::f64 ? 1e300 : d == DType::f16 ? 6e4 : 3e38;
    v = {0.0,  -0.0,  1.0,      -1.0,      0.5, -2.5, 2.0,   3.0,  tiny,  -tiny,
         huge, -huge, INFINITY, -INFINITY, NAN, 0.1,  -0.75, 7.25, 100.0, 1e-5};
  } else if (d == DType::i32) {
    v = {0, 1, -1, 2, -7, 3, 46341, -46341, 2147483647.0, -2147483648.0, 12345, -99999};
  } else if (d == DType::i64) {
    v = {0, 1, -1, 2, -7, 3, 3037000500.0, -3037000500.0, 9.2233720368547748e18, -9.2233720368547758e18, 12345, -99999};
  } else {
    v = {0, 1, 1, 0};
  }
  // Half of the rest on a grid of eighths (exact ties, integers for pow), half anywhere.
  std::uniform_real_distribution<double> u(-4.0, 4.0);
  while (static_cast<std::int64_t>(v.size()) < n) {
    const double r = u(rng);
    v.push_back(d == DType::boolean ? double(rng() % 2) : v.size() % 2 || !is_floating(d) ? std::floor(r * 8) / 8 : r);
  }
  v.resize(static_cast<std::size_t>(n));
  std::shuffle(v.begin() + 1, v.end(), rng);  // different orders for different operands
  Tensor t = Tensor::empty({n}, d);
  for (std::int64_t i = 0; i < n; ++i) {
    if (d == DType::i64 && std::fabs(v[static_cast<std::size_t>(i)]) > 9e18)  // the limits exactly
      t.data<std::int64_t>()[i] = v[static_cast<std::size_t>(i)] > 0 ? std::numeric_limits<std::int64_t>::max()
                                                                     : std::numeric_limits<std::int64_t>::min();
    else store_from_double(t.raw_data(), d, i, v[static_cast<std::size_t>(i)]);
  }
  return t;
}

/// Evaluates `fetches` of `g` through compile() and Program::evaluate.
std::vector<Tensor> evaluate(Graph& g, const std::vector<Value>& fetches, const Feeds& feeds = {}) {
  // Unfused: these tests compare the passes' rewrites bit for bit through the library kernels.
  Program p = compile(g, g.scalar(0.0), optim::None{}, {.threads = 2, .fusion = false});
  return p.evaluate(feeds, fetches);
}

/// The evaluation graph compile() makes for `fetch` (every pass included).
std::shared_ptr<GraphImpl> compiled(const Graph& g, const Value& fetch) {
  return compile_evaluation_graph(g.impl(), {id_of(fetch)}, /*fuse=*/false, DType::f32).graph;
}

// ---- attrs ------------------------------------------------------------------------------------

TEST(Attrs, EqualityAndHashCoverEveryAlternative) {
  const auto t1 = std::make_shared<const Tensor>(Tensor::from_vector<float>({2}, {1.0f, 2.0f}));
  const auto t2 = std::make_shared<const Tensor>(t1->clone());
  const auto t3 = std::make_shared<const Tensor>(Tensor::from_vector<float>({2}, {1.0f, 3.0f}));
  const auto t4 = std::make_shared<const Tensor>(t1->reshape({1, 2}));
  // Pairs (a, b) of the same alternative: a equals a copy of itself and differs from b.
  const std::vector<std::pair<Attrs, Attrs>> pairs = {
      {VariableAttrs{init::normal(0, 1), VariableKind::parameter},
       VariableAttrs{init::normal(0, 2), VariableKind::parameter}},
      {ScalarAttrs{-0.0}, ScalarAttrs{0.0}},
      {GeluAttrs{true}, GeluAttrs{false}},
      {PermAttrs{{1, 0, 2}}, PermAttrs{{0, 2, 1}}},
      {SliceAttrs{1, 0, 2}, SliceAttrs{1, 0, 1}},
      {AxisAttrs{1}, AxisAttrs{0}},
      {ReduceAttrs{{0, 1}, true}, ReduceAttrs{{0, 1}, false}},
      {MatmulAttrs{true, false}, MatmulAttrs{false, true}},
      {Conv2dAttrs{{1, 1}, {1, 1}, {1, 1}, 1}, Conv2dAttrs{{1, 1}, {1, 1}, {2, 2}, 1}},
      {Pool2dAttrs{{2, 2}, {2, 2}, {0, 0}, false, true}, Pool2dAttrs{{2, 2}, {2, 2}, {0, 0}, true, true}},
      {CrossEntropyAttrs{-100, 0.1}, CrossEntropyAttrs{-100, 0.2}},
      {NormAttrs{0.1, 1e-5, 1}, NormAttrs{0.1, 1e-6, 1}},
      {DropoutAttrs{0.5, 7}, DropoutAttrs{0.5, 8}},
      {AttentionAttrs{true, 0.125}, AttentionAttrs{false, 0.125}},
      {CollectiveAttrs{1, 2, 0.5}, CollectiveAttrs{2, 2, 0.5}},
      {ConstantAttrs{t1}, ConstantAttrs{t3}},
      {ConstantAttrs{t1}, ConstantAttrs{t4}},  // same bytes, another shape
      // Fused bodies compare by identity (CSE runs before fusion).
      {FusedAttrs{std::make_shared<const FusedBody>()}, FusedAttrs{std::make_shared<const FusedBody>()}},
  };
  std::set<std::size_t> covered{Attrs{NoAttrs{}}.index()};
  for (const auto& [a, b] : pairs) {
    SCOPED_TRACE(a.index());
    covered.insert(a.index());
    const Attrs copy = a;
    EXPECT_TRUE(attrs_equal(a, copy));
    EXPECT_EQ(attrs_hash(a), attrs_hash(copy));
    EXPECT_FALSE(attrs_equal(a, b));
    EXPECT_NE(attrs_hash(a), attrs_hash(b));
  }
  EXPECT_EQ(covered.size(), std::variant_size_v<Attrs>) << "every alternative has a case here";
  EXPECT_TRUE(attrs_equal(NoAttrs{}, NoAttrs{}));
  EXPECT_FALSE(attrs_equal(NoAttrs{}, GeluAttrs{false})) << "different alternatives";
  EXPECT_TRUE(attrs_equal(ConstantAttrs{t1}, ConstantAttrs{t2})) << "byte-equal tensors in different storage";
  EXPECT_EQ(attrs_hash(ConstantAttrs{t1}), attrs_hash(ConstantAttrs{t2}));
  EXPECT_TRUE(attrs_equal(ScalarAttrs{NAN}, ScalarAttrs{NAN})) << "a NaN equals the same NaN";
}

// ---- common-subexpression elimination ---------------------------------------------------------

TEST(Cse, MergesChainsInOneWalkAndMapsTheRoots) {
  Graph g;
  auto x = g.input("x", {4, 3});
  auto w = g.parameter("w", {3, 2});
  auto a = relu(matmul(x, w)) * 2.0;
  auto b = relu(matmul(x, w)) * 2.0;  // the same chain, built again
  auto c = tanh(a) + tanh(b);
  auto r = run_pass(kCse, g, {c, b});
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(count(*r.graph, OpKind::Matmul), 1) << print_graph(*r.graph);
  EXPECT_EQ(count(*r.graph, OpKind::Relu), 1);
  EXPECT_EQ(count(*r.graph, OpKind::Mul), 1);
  EXPECT_EQ(count(*r.graph, OpKind::Full), 1) << "the two scalars 2.0 are one";
  EXPECT_EQ(count(*r.graph, OpKind::Tanh), 1);
  EXPECT_EQ(r.graph->node(r.roots[1].node).kind, OpKind::Mul) << "the root b maps to the kept node";
  auto again = run_pass(kCse, Graph(r.graph), {});
  EXPECT_FALSE(again.changed) << "a second run finds nothing";
}

TEST(Cse, DifferentAttributesTypesOrOperandsStayApart) {
  Graph g;
  auto x = g.input("x", {4, 3});
  std::vector<Value> roots = {
      gelu(x),           gelu(x, GeluApproximation::tanh),  // attributes
      sum(x, {0}),       sum(x, {1}),                       // axes
      x * g.scalar(0.0), x * g.scalar(-0.0),                // +0 and -0 fills
      cast(x, f64),      cast(x, f16),                      // output types
      sub(x, exp(x)),    sub(exp(x), x),                    // operand order
  };
  auto r = run_pass(kCse, g, roots);
  EXPECT_EQ(count(*r.graph, OpKind::Gelu), 2);
  EXPECT_EQ(count(*r.graph, OpKind::ReduceSum), 2);
  EXPECT_EQ(count(*r.graph, OpKind::Full), 2);
  EXPECT_EQ(count(*r.graph, OpKind::Cast), 2);
  EXPECT_EQ(count(*r.graph, OpKind::Sub), 2);
  EXPECT_EQ(count(*r.graph, OpKind::Exp), 1) << "exp(x) twice is one";
}

TEST(Cse, ConstantsMergeOnlyWhenByteEqual) {
  Graph g;
  auto t = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  auto a = g.constant(t);
  auto b = g.constant(t.clone());                                                // same bytes
  auto c = g.constant(Tensor::from_vector<float>({2, 2}, {1, 2, 3, 5}));         // one byte differs
  auto d = g.constant(t.reshape({4}));                                           // other shape
  auto e = g.constant(Tensor::from_vector<std::int32_t>({2, 2}, {1, 2, 3, 4}));  // other dtype
  auto r = run_pass(kCse, g, {a, b, c, d, e});
  EXPECT_EQ(count(*r.graph, OpKind::Constant), 4) << print_graph(*r.graph);
  EXPECT_EQ(r.roots[0], r.roots[1]);
  EXPECT_NE(r.roots[0], r.roots[2]);
}

TEST(Cse, NeverMergesInputsVariablesOrAssignments) {
  Graph g;
  auto x = g.input("x", {3});
  auto y = g.input("y", {3});
  auto w1 = g.parameter("w1", {3}, init::zeros());
  auto w2 = g.parameter("w2", {3}, init::zeros());
  auto s1 = g.state("s1", {3});
  auto s2 = g.state("s2", {3});
  auto v = x + y;
  assign(s1, v, Loc::current());
  assign(s2, v, Loc::current());
  auto r = run_pass(kCse, g, {x, y, w1, w2, v});
  EXPECT_FALSE(r.changed) << print_graph(*r.graph);
  EXPECT_EQ(count(*r.graph, OpKind::Input), 2);
  EXPECT_EQ(count(*r.graph, OpKind::Variable), 4);
  EXPECT_EQ(count(*r.graph, OpKind::Assign), 2);
}

TEST(Cse, DropoutMergesOnlyWithTheSameKeyAndOperands) {
  Graph g;
  auto x = g.input("x", {8});
  auto step = g.state("step", {}, init::zeros(), i64);
  const Loc l = Loc::current();
  auto a = dropout_apply(x, step, {0.5, 11}, l);
  auto b = dropout_apply(x, step, {0.5, 11}, l);   // same stream: same mask
  auto c = dropout_apply(x, step, {0.5, 12}, l);   // another key
  auto d = dropout_apply(x, step, {0.25, 11}, l);  // another p
  auto r = run_pass(kCse, g, {a, b, c, d});
  EXPECT_EQ(count(*r.graph, OpKind::DropoutApply), 3) << print_graph(*r.graph);
  EXPECT_EQ(r.roots[0], r.roots[1]);

  // Two dropout calls on one value draw different masks (different keys): never merged,
  // also after lowering for training.
  Graph h;
  auto hx = h.input("x", {8});
  auto m1 = dropout(hx, 0.5), m2 = dropout(hx, 0.5);
  optimizer_variable(h.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  ValueMap lowered;
  auto train = lower_for_training(h.impl(), 5, lowered);
  ValueMap map;
  eliminate_common_subexpressions(train, map);
  EXPECT_EQ(count(*train, OpKind::DropoutApply), 2) << print_graph(*train);
  EXPECT_NE(map(lowered(id_of(m1))), map(lowered(id_of(m2))));
}

// ---- constant folding -------------------------------------------------------------------------

/// One op of the folding table: how to build it and on which operand dtypes.
struct FoldCase {
  std::string name;
  int arity;
  std::vector<DType> dtypes;
  std::function<Value(const std::vector<Value>&)> build;
  bool vector_math_f32 = false;  // f32 kernel runs vec_math.h: folded in f64 only
};

std::vector<FoldCase> fold_cases() {
  const std::vector<DType> numeric{f32, f64, f16, bf16, i32, i64}, floating{f32, f64, f16, bf16},
      all{f32, f64, f16, bf16, i32, i64, boolean};
  const Loc l = Loc::current();
  using V = const std::vector<Value>&;
  std::vector<FoldCase> c = {
      {"neg", 1, numeric, [](V v) { return neg(v[0]); }},
      {"abs", 1, numeric, [](V v) { return abs(v[0]); }},
      {"sign", 1, numeric, [](V v) { return sign(v[0]); }},
      {"relu", 1, numeric, [](V v) { return relu(v[0]); }},
      {"exp", 1, floating, [](V v) { return exp(v[0]); }, true},
      {"log", 1, floating, [](V v) { return log(v[0]); }},
      {"sqrt", 1, floating, [](V v) { return sqrt(v[0]); }},
      {"rsqrt", 1, floating, [](V v) { return rsqrt(v[0]); }},
      {"sin", 1, floating, [](V v) { return sin(v[0]); }},
      {"cos", 1, floating, [](V v) { return cos(v[0]); }},
      {"floor", 1, floating, [](V v) { return floor(v[0]); }},
      {"tanh", 1, floating, [](V v) { return tanh(v[0]); }},
      {"sigmoid", 1, floating, [](V v) { return sigmoid(v[0]); }, true},
      {"gelu", 1, floating, [](V v) { return gelu(v[0]); }, true},
      {"gelu_tanh", 1, floating, [](V v) { return gelu(v[0], GeluApproximation::tanh); }},
      {"logical_not", 1, {boolean}, [](V v) { return logical_not(v[0]); }},
      {"add", 2, numeric, [](V v) { return add(v[0], v[1]); }},
      {"sub", 2, numeric, [](V v) { return sub(v[0], v[1]); }},
      {"mul", 2, numeric, [](V v) { return mul(v[0], v[1]); }},
      {"div", 2, floating, [](V v) { return div(v[0], v[1]); }},
      {"pow", 2, floating, [](V v) { return pow(v[0], v[1]); }},
      {"maximum", 2, numeric, [](V v) { return maximum(v[0], v[1]); }},
      {"minimum", 2, numeric, [](V v) { return minimum(v[0], v[1]); }},
      {"eq", 2, all, [](V v) { return eq(v[0], v[1]); }},
      {"ne", 2, all, [](V v) { return ne(v[0], v[1]); }},
      {"lt", 2, numeric, [](V v) { return lt(v[0], v[1]); }},
      {"le", 2, numeric, [](V v) { return le(v[0], v[1]); }},
      {"gt", 2, numeric, [](V v) { return gt(v[0], v[1]); }},
      {"ge", 2, numeric, [](V v) { return ge(v[0], v[1]); }},
      {"logical_and", 2, {boolean}, [](V v) { return logical_and(v[0], v[1]); }},
      {"logical_or", 2, {boolean}, [](V v) { return logical_or(v[0], v[1]); }},
      {"relu_backward", 2, floating, [l](V v) { return relu_backward(v[0], v[1], l); }},
      {"gelu_backward", 2, floating, [l](V v) { return gelu_backward(v[0], v[1], false, l); }, true},
      {"gelu_tanh_backward", 2, floating, [l](V v) { return gelu_backward(v[0], v[1], true, l); }},
      {"sigmoid_backward", 2, floating, [l](V v) { return sigmoid_backward(v[0], v[1], l); }},
      {"tanh_backward", 2, floating, [l](V v) { return tanh_backward(v[0], v[1], l); }},
      {"fma", 3, numeric, [](V v) { return fma(v[0], v[1], v[2]); }},
      {"where", 3, all, [](V v) { return where(cast(v[0], boolean), v[1], v[2]); }},
  };
  for (DType to : all) c.push_back({cat("cast_to_", name(to)), 1, all, [to](V v) { return cast(v[0], to); }});
  return c;
}

bool computed_in_f32(DType d) { return d == f32 || d == f16 || d == bf16; }

TEST(FoldConstants, EveryOpAndDtypeGivesTheKernelsBits) {
  std::mt19937 rng(7);
  int folded = 0, checked = 0;
  for (const FoldCase& fc : fold_cases()) {
    for (DType d : fc.dtypes) {
      SCOPED_TRACE(cat(fc.name, " ", name(d)));
      // Operand k has shape [K, 1, ..., 1] of rank arity - k: the output holds every
      // combination of the K special values.
      const std::int64_t k = fc.arity == 3 ? 12 : fc.arity == 2 ? 40 : 1000;
      Graph g;
      std::vector<Value> consts, inputs;
      Feeds feeds;
      for (int o = 0; o < fc.arity; ++o) {
        std::vector<std::int64_t> dims{k};
        for (int r = o + 1; r < fc.arity; ++r) dims.push_back(1);
        const Tensor t = special_values(d, k, rng).reshape(Shape(dims));
        consts.push_back(g.constant(t));
        inputs.push_back(g.input(cat("in", o), Shape(dims), d));
        feeds.add(cat("in", o), t);
      }
      const Value c = fc.build(consts), in = fc.build(inputs);
      if (in.node() == inputs[0].node()) continue;  // cast to the operand's own dtype: no op at all
      const auto out = evaluate(g, {c, in}, feeds);
      ++checked;
      EXPECT_TRUE(same_bits(out[0], out[1])) << "folded vs kernel: " << first_difference(out[0], out[1]);
      const auto graph = compiled(g, c);
      const bool expect_fold = !(fc.vector_math_f32 && computed_in_f32(d));
      const int ops = live(*graph) - count(*graph, OpKind::Constant) - count(*graph, OpKind::Full);
      EXPECT_EQ(ops == 0, expect_fold) << print_graph(*graph);
      folded += ops == 0;
    }
  }
  EXPECT_GT(folded, 200) << "of " << checked;
}

TEST(FoldConstants, UniformResultsBecomeFullNodesAndChainsFoldInOneWalk) {
  Graph g;
  auto a = g.full({3, 4}, 1.5);
  auto b = g.constant(Tensor::full({4}, -2.0, f32));  // a uniform constant leaf
  auto big = g.full({1000, 1000}, 3.0);               // no size limit for one value
  auto y = exp(g.scalar(0.0, f64));                   // f64: folded through the C library
  auto r1 = sqrt(a * b + 10.0);                       // = sqrt(7)
  auto r2 = big * 2.0;
  auto r3 = reshape(broadcast_to(g.constant(Tensor::from_vector<float>({2}, {1, 2})), {3, 2}), {6});
  auto r = run_pass(kFold, g, {r1, r2, y, r3});
  EXPECT_TRUE(r.changed);
  const Node& n1 = r.graph->node(r.roots[0].node);
  ASSERT_EQ(n1.kind, OpKind::Full) << print_graph(*r.graph);
  EXPECT_EQ(static_cast<float>(std::get<ScalarAttrs>(n1.attrs).value), std::sqrt(1.5f * -2.0f + 10.0f));
  EXPECT_EQ(r.graph->node(r.roots[1].node).kind, OpKind::Full);
  EXPECT_EQ(r.graph->node(r.roots[1].node).outputs[0].shape, Shape({1000, 1000}));
  EXPECT_EQ(std::get<ScalarAttrs>(r.graph->node(r.roots[2].node).attrs).value, 1.0);
  const Node& n3 = r.graph->node(r.roots[3].node);
  ASSERT_EQ(n3.kind, OpKind::Constant);
  EXPECT_EQ(std::get<ConstantAttrs>(n3.attrs).value->to_vector<float>(), (std::vector<float>{1, 2, 1, 2, 1, 2}));
  EXPECT_EQ(live(*r.graph), 4) << print_graph(*r.graph);
}

TEST(FoldConstants, LargeResultsStayOpsUnderTheCap) {
  Graph g;
  auto c = g.constant(Tensor::zeros({600, 1000}, f32));  // 2.4 MB
  Tensor t = Tensor::zeros({600, 1000}, f32);
  t.data<float>()[5] = 1.0f;
  auto d = g.constant(t);
  auto sum_big = c + d;  // over 1 MiB and not one value: stays
  auto small = broadcast_to(g.constant(Tensor::from_vector<float>({2}, {1, 2})), {300000, 2});  // 2.4 MB copy
  auto r = run_pass(kFold, g, {sum_big, small});
  EXPECT_EQ(count(*r.graph, OpKind::Add), 1) << print_graph(*r.graph);
  EXPECT_EQ(count(*r.graph, OpKind::BroadcastTo), 1);
  // A larger cap folds both.
  ValueMap map;
  std::shared_ptr<GraphImpl> h = g.impl().clone();
  EXPECT_TRUE(fold_constants(h, map, std::size_t{8} << 20));
  std::vector<ValueId> roots{map(id_of(sum_big)), map(id_of(small))};
  eliminate_dead_code(*h, roots);
  EXPECT_EQ(count(*h, OpKind::Add) + count(*h, OpKind::BroadcastTo), 0) << print_graph(*h);
  EXPECT_EQ(std::get<ConstantAttrs>(h->node(roots[0].node).attrs).value->data<float>()[5], 1.0f);
}

TEST(FoldConstants, NeverFoldsInputsVariablesOrRandomOps) {
  Graph g;
  auto x = g.input("x", {4});
  auto w = g.parameter("w", {4}, init::ones());
  auto step = g.full({}, 3.0, i64);  // a constant step: dropout is still random
  auto c = g.constant(Tensor::from_vector<float>({4}, {1, 2, 3, 4}));
  auto r = run_pass(kFold, g, {x + c, w * 2.0, dropout_apply(c, step, {0.5, 9}, Loc::current())});
  EXPECT_EQ(count(*r.graph, OpKind::Add), 1);
  EXPECT_EQ(count(*r.graph, OpKind::Mul), 1);
  EXPECT_EQ(count(*r.graph, OpKind::DropoutApply), 1) << print_graph(*r.graph);
}

// ---- algebraic simplification -----------------------------------------------------------------

/// A rule case: `build(x, k)` with k the rule's constant, once as a full node (the rule
/// applies) and once as an input fed the same value (it cannot). Checks that the rewrite
/// removed `gone` and that both give the same bits for special values of x.
struct RuleCase {
  std::string name;
  DType dtype;
  double k;
  std::function<Value(const Value&, const Value&)> build;
  OpKind gone;
  Shape x_shape = {40};
  Shape k_shape = {};
};

void check_rule(const RuleCase& rc, bool applies = true) {
  SCOPED_TRACE(cat(rc.name, " ", name(rc.dtype)));
  std::mt19937 rng(3);
  Graph g;
  auto x = g.input("x", rc.x_shape, rc.dtype);
  auto kin = g.input("k", rc.k_shape, rc.dtype);
  auto kfull = g.full(rc.k_shape, rc.k, rc.dtype);
  const Value simplified = consume(rc.build(x, kfull)), reference = consume(rc.build(x, kin));
  auto r = run_pass(kSimplify, g, {simplified});
  EXPECT_EQ(r.changed, applies) << print_graph(*r.graph);
  const int consumers = rc.gone == OpKind::Neg ? 1 : 0;  // consume() is a neg
  EXPECT_EQ(count(*r.graph, rc.gone) == consumers, applies) << print_graph(*r.graph);
  const Tensor xs = special_values(rc.dtype, rc.x_shape.numel(), rng).reshape(rc.x_shape);
  const auto out = evaluate(g, {simplified, reference}, {{"x", xs}, {"k", Tensor::full(rc.k_shape, rc.k, rc.dtype)}});
  EXPECT_TRUE(same_bits(out[0], out[1])) << first_difference(out[0], out[1], xs);
}

TEST(SimplifyAlgebra, IdentitiesOfArithmeticAreExact) {
  using V = const Value&;
  for (DType d : {f32, f64, f16, bf16}) {
    check_rule({"x + -0", d, -0.0, [](V x, V k) { return x + k; }, OpKind::Add});
    check_rule({"-0 + x", d, -0.0, [](V x, V k) { return k + x; }, OpKind::Add});
    check_rule({"x - +0", d, 0.0, [](V x, V k) { return x - k; }, OpKind::Sub});
    check_rule({"x * 1", d, 1.0, [](V x, V k) { return x * k; }, OpKind::Mul});
    check_rule({"1 * x", d, 1.0, [](V x, V k) { return k * x; }, OpKind::Mul});
    check_rule({"x / 1", d, 1.0, [](V x, V k) { return x / k; }, OpKind::Div});
    check_rule({"x / 0.25", d, 0.25, [](V x, V k) { return x / k; }, OpKind::Div});
    check_rule({"x / -8", d, -8.0, [](V x, V k) { return x / k; }, OpKind::Div});
    check_rule({"x / 2^-14", d, std::ldexp(1.0, -14), [](V x, V k) { return x / k; }, OpKind::Div});
    check_rule({"pow(x, 1)", d, 1.0, [](V x, V k) { return pow(x, k); }, OpKind::Pow});
    check_rule({"fma(x, 1, x)", d, 1.0, [](V x, V k) { return fma(x, k, x); }, OpKind::Fma});
    check_rule({"fma(x, x, -0)", d, -0.0, [](V x, V k) { return fma(x, x, k); }, OpKind::Fma});
    check_rule({"neg(neg(x)) * 1", d, 1.0, [](V x, V k) { return neg(neg(x)) * k; }, OpKind::Neg});
  }
  for (DType d : {i32, i64}) {
    check_rule({"x + 0", d, 0.0, [](V x, V k) { return x + k; }, OpKind::Add});
    check_rule({"0 + x", d, 0.0, [](V x, V k) { return k + x; }, OpKind::Add});
    check_rule({"x - 0", d, 0.0, [](V x, V k) { return x - k; }, OpKind::Sub});
    check_rule({"x * 1", d, 1.0, [](V x, V k) { return x * k; }, OpKind::Mul});
    check_rule({"fma(1, x, x)", d, 1.0, [](V x, V k) { return fma(k, x, x); }, OpKind::Fma});
    check_rule({"fma(x, x, 0)", d, 0.0, [](V x, V k) { return fma(x, x, k); }, OpKind::Fma});
  }
}

TEST(SimplifyAlgebra, NonIdentitiesStay) {
  using V = const Value&;
  for (DType d : {f32, f16}) {
    // x + (+0) maps -0 to +0; x - (-0) too: both must stay, and the reference shows why.
    check_rule({"x + +0", d, 0.0, [](V x, V k) { return x + k; }, OpKind::Add}, false);
    check_rule({"x - -0", d, -0.0, [](V x, V k) { return x - k; }, OpKind::Sub}, false);
    check_rule({"x * 0", d, 0.0, [](V x, V k) { return x * k; }, OpKind::Mul}, false);
    check_rule({"x / 3", d, 3.0, [](V x, V k) { return x / k; }, OpKind::Div}, false);
    // glibc's powf rounds some exact ties of x^2 away from x*x (x = -0x1.05dp-3): no rule.
    check_rule({"pow(x, 2)", d, 2.0, [](V x, V k) { return pow(x, k); }, OpKind::Pow}, false);
    check_rule({"pow(x, 3)", d, 3.0, [](V x, V k) { return pow(x, k); }, OpKind::Pow}, false);
    check_rule({"pow(x, 0.5)", d, 0.5, [](V x, V k) { return pow(x, k); }, OpKind::Pow}, false);
    check_rule({"x * -1", d, -1.0, [](V x, V k) { return x * k; }, OpKind::Mul}, false);
    // x * 1 where the 1 broadcasts x to a larger shape: the result is not x.
    check_rule({"x[40] * 1[3,40]", d, 1.0, [](V x, V k) { return x * k; }, OpKind::Mul, {40}, {3, 40}}, false);
  }
  // 1/c not representable: c = 2^-130 is an f32 subnormal whose inverse overflows f32.
  check_rule({"x / 2^-130", f32, std::ldexp(1.0, -130), [](V x, V k) { return x / k; }, OpKind::Div}, false);
  // x + (+0) really differs at x = -0.
  Graph g;
  auto x = g.input("x", {1});
  auto out = evaluate(g, {x + 0.0}, {{"x", Tensor::from_vector<float>({1}, {-0.0f})}});
  EXPECT_FALSE(std::signbit(out[0].data<float>()[0]));
}

TEST(SimplifyAlgebra, SelectionsAndIdempotentOps) {
  Graph g;
  auto x = g.input("x", {6});
  auto b = g.input("b", {6}, boolean);
  auto t = g.full({}, 1.0, boolean), f = g.full({}, 0.0, boolean);
  // Values 0-4 are x, 5-8 one application of their op, 9-12 b.
  const std::vector<Value> values = {maximum(x, x),
                                     minimum(x, x),
                                     where(b, x, x),
                                     where(g.full({6}, 1.0, boolean), x, -x),
                                     where(g.full({6}, 0.0, boolean), -x, x),
                                     abs(abs(x)),
                                     relu(relu(x)),
                                     floor(floor(x)),
                                     sign(sign(x)),
                                     logical_not(logical_not(b)),
                                     logical_and(b, t),
                                     logical_or(f, b),
                                     logical_and(b, b)};
  std::vector<Value> roots;
  for (const Value& v : values) roots.push_back(consume(v));
  auto r = run_pass(kSimplify, g, roots);
  EXPECT_TRUE(r.changed);
  const OpKind once[] = {OpKind::Abs, OpKind::Relu, OpKind::Floor, OpKind::Sign};
  for (std::size_t i = 0; i < roots.size(); ++i) {
    const Node& n = r.graph->node(r.graph->node(r.roots[i].node).inputs[0].node);
    if (i >= 5 && i < 9) {
      EXPECT_EQ(n.kind, once[i - 5]) << i;
      EXPECT_EQ(r.graph->node(n.inputs[0].node).kind, OpKind::Input) << i << ": applied once\n"
                                                                     << print_graph(*r.graph);
    } else {
      EXPECT_EQ(n.name, i < 5 ? "x" : "b") << i << "\n" << print_graph(*r.graph);
    }
  }
  // The values, against the unsimplified ops: `opaque` multiplies by an input fed 1 (exact,
  // and no pass can see through it), so the reference runs every op.
  auto one = g.input("one", {});
  auto opaque = [&](const Value& v) { return v * one; };
  const std::vector<Value> refs = {maximum(x, opaque(x)),
                                   minimum(x, opaque(x)),
                                   where(b, x, opaque(x)),
                                   where(g.full({6}, 1.0, boolean), opaque(x), -x),
                                   where(g.full({6}, 0.0, boolean), -x, opaque(x)),
                                   abs(opaque(abs(x))),
                                   relu(opaque(relu(x))),
                                   floor(opaque(floor(x))),
                                   sign(opaque(sign(x))),
                                   logical_not(logical_not(b)),
                                   b,
                                   b,
                                   b};
  std::vector<Value> ref_roots;
  for (const Value& v : refs) ref_roots.push_back(consume(v));
  std::mt19937 rng(5);
  const Feeds feeds{{"x", special_values(f32, 6, rng)},
                    {"b", Tensor::from_bools({6}, {true, false, true, true, false, false})},
                    {"one", Tensor::full({}, 1.0, f32)}};
  const auto got = evaluate(g, roots, feeds), want = evaluate(g, ref_roots, feeds);
  for (std::size_t i = 0; i < roots.size(); ++i)
    EXPECT_TRUE(same_bits(got[i], want[i])) << i << ": " << first_difference(got[i], want[i]);
}

TEST(SimplifyAlgebra, CastsAndDataMovement) {
  Graph g;
  auto x = g.input("x", {2, 1, 3});
  auto h = g.input("h", {4}, f16);
  auto n = g.input("n", {4}, i32);
  const Loc l = Loc::current();
  // Identities the public API never builds (it returns x); gradient rules and lowering can.
  const std::vector<Value> values = {
      add_op1(OpKind::Cast, {x}, NoAttrs{}, l, {TensorType{f32, {2, 1, 3}}}),
      add_op1(OpKind::Reshape, {x}, NoAttrs{}, l, {TensorType{f32, {2, 1, 3}}}),
      add_op1(OpKind::Permute, {x}, PermAttrs{{0, 1, 2}}, l),
      add_op1(OpKind::BroadcastTo, {x}, NoAttrs{}, l, {TensorType{f32, {2, 1, 3}}}),
      add_op1(OpKind::Slice, {x}, SliceAttrs{2, 0, 1}, l, {TensorType{f32, {2, 1, 3}}}),
      add_op1(OpKind::Concat, {x}, AxisAttrs{0}, l),
      cast(cast(h, f32), f16),                                       // 6: round trip through a wider type: h
      cast(cast(n, i64), i32),                                       // 7: n
      cast(cast(h, f64), bf16),                                      // 8: one cast f16 -> bf16
      reshape(reshape(x, {6}), {3, 2}),                              // 9: one reshape
      permute(permute(x, {2, 0, 1}), {1, 2, 0}),                     // 10: identity: x
      permute(permute(x, {2, 0, 1}), {0, 2, 1}),                     // 11: one permute {2, 1, 0}
      permute(x, {1, 0, 2}),                                         // 12: moves only the unit axis: a reshape
      broadcast_to(broadcast_to(x, {4, 2, 1, 3}), {5, 4, 2, 2, 3}),  // 13: one broadcast_to
      cast(cast(x, f16), f32),                                       // 14: f32 -> f16 loses bits: stays
  };
  std::vector<Value> roots;
  for (const Value& v : values) roots.push_back(consume(v));
  auto r = run_pass(kSimplify, g, roots);
  auto value = [&](std::size_t i) -> const Node& {
    return r.graph->node(r.graph->node(r.roots[i].node).inputs[0].node);
  };
  for (std::size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 10})
    EXPECT_EQ(value(i).kind, OpKind::Input) << i << "\n" << print_graph(*r.graph);
  EXPECT_EQ(value(8).kind, OpKind::Cast);
  EXPECT_EQ(r.graph->node(value(8).inputs[0].node).name, "h") << "cast straight from h";
  EXPECT_EQ(value(9).kind, OpKind::Reshape);
  EXPECT_EQ(r.graph->node(value(9).inputs[0].node).name, "x");
  EXPECT_EQ(value(11).kind, OpKind::Permute);
  EXPECT_EQ(std::get<PermAttrs>(value(11).attrs).perm, (std::vector<std::int64_t>{2, 1, 0}));
  EXPECT_EQ(value(12).kind, OpKind::Reshape);
  EXPECT_EQ(value(13).kind, OpKind::BroadcastTo);
  EXPECT_EQ(r.graph->node(value(13).inputs[0].node).name, "x");
  EXPECT_EQ(count(*r.graph, OpKind::Cast), 3) << "h->bf16 and the lossy pair";
  EXPECT_EQ(count(*r.graph, OpKind::Permute), 1);

  // Values, against the same chains with an exact multiplication by an input fed 1 in the
  // middle, which no pass sees through: the reference runs every op.
  std::vector<Value> ones;
  Feeds feeds;
  for (DType d : {f32, f16, f64, i64}) {
    ones.push_back(g.input(cat("one_", name(d)), {}, d));
    feeds.add(cat("one_", name(d)), Tensor::full({}, 1.0, d));
  }
  auto opaque = [&](const Value& v) {
    for (const Value& o : ones)
      if (o.dtype() == v.dtype()) return v * o;
    return Value{};
  };
  const std::vector<Value> refs = {
      x,
      x,
      x,
      x,
      x,
      x,
      cast(opaque(cast(h, f32)), f16),
      cast(opaque(cast(n, i64)), i32),
      cast(opaque(cast(h, f64)), bf16),
      reshape(opaque(reshape(x, {6})), {3, 2}),
      permute(opaque(permute(x, {2, 0, 1})), {1, 2, 0}),
      permute(opaque(permute(x, {2, 0, 1})), {0, 2, 1}),
      permute(opaque(x), {1, 0, 2}),
      broadcast_to(opaque(broadcast_to(x, {4, 2, 1, 3})), {5, 4, 2, 2, 3}),
      cast(opaque(cast(x, f16)), f32),
  };
  std::vector<Value> ref_roots;
  for (const Value& v : refs) ref_roots.push_back(consume(v));
  std::mt19937 rng(9);
  feeds.add("x", special_values(f32, 6, rng).reshape({2, 1, 3}));
  feeds.add("h", special_values(f16, 4, rng));
  feeds.add("n", special_values(i32, 4, rng));
  const auto got = evaluate(g, roots, feeds), want = evaluate(g, ref_roots, feeds);
  for (std::size_t i = 0; i < roots.size(); ++i)
    EXPECT_TRUE(same_bits(got[i], want[i])) << i << ": " << first_difference(got[i], want[i]);
}

TEST(SimplifyAlgebra, KeptValuesNeverBecomeInputsOrVariables) {
  // A step returns its outputs after the optimizer's update: an output `w * 1` must still
  // be the old w; an output `x * 1` must have a buffer of the step's own.
  Graph g;
  auto x = g.input("x", {3});
  auto w = g.parameter("w", {3}, init::ones());
  auto loss = sum(x * w);
  auto kept = run_pass(kSimplify, g, {w * 1.0, x * 1.0, reshape(x * 1.0, {3, 1}), permute(reshape(w, {1, 3}), {1, 0})});
  EXPECT_FALSE(kept.changed) << print_graph(*kept.graph);
  auto inner = run_pass(kSimplify, g, {exp(w * 1.0)});
  EXPECT_EQ(count(*inner.graph, OpKind::Mul), 0) << "not kept: simplified";
  Program p = compile(g, loss, optim::SGD{.lr = 0.5}, {.outputs = {w * 1.0, x * 1.0, reshape(x * 1.0, {3, 1})}});
  const Tensor xs = Tensor::from_vector<float>({3}, {1, 2, 3});
  const StepResult s = p.step({{"x", xs}});
  EXPECT_EQ(s.outputs()[0].to_vector<float>(), (std::vector<float>{1, 1, 1})) << "w before the update";
  EXPECT_EQ(s.outputs()[1].to_vector<float>(), xs.to_vector<float>());
  EXPECT_EQ(s.outputs()[2].to_vector<float>(), xs.to_vector<float>());
  EXPECT_EQ(p.get("w").to_vector<float>(), (std::vector<float>{0.5f, 0.0f, -0.5f}));
}

// ---- the pipeline -----------------------------------------------------------------------------

/// A small model in which the passes find work: a subexpression built twice, constants
/// combined, a division by a power of two, a scale by one. `twin` builds the same arithmetic
/// from inputs the passes cannot see through (fed 1 and 4); the training runs must match bit
/// for bit. Layers and dropout come first, in the same order, so parameter names and the
/// dropout key (derived from the node's position) are the same in both.
struct Model {
  Graph g;
  Value loss;
  explicit Model(bool twin) {
    auto x = g.input("x", {8, 6});
    auto y = g.input("y", {8}, i64);
    nn::Linear fc1(g, "fc1", 6, 16), fc2(g, "fc2", 16, 3);
    auto xd = dropout(x, 0.25);
    auto one = twin ? g.input("one", {}) : g.scalar(1.0);
    auto four = twin ? g.input("four", {}) : g.scalar(2.0) * g.scalar(2.0);
    auto h1 = gelu(fc1(xd), GeluApproximation::tanh);
    auto h2 = gelu(fc1(twin ? xd * one : xd), GeluApproximation::tanh);  // merged with h1 (not in the twin)
    auto h = (h1 + h2) / four * one;
    loss = cross_entropy(fc2(h), y);
  }
};

TEST(Pipeline, TrainingMatchesTheUnoptimizedTwinBitForBit) {
  std::mt19937 rng(1);
  const Tensor xs = test::random_tensor({8, 6}, f32, rng);
  const Tensor ys = Tensor::from_vector<std::int64_t>({8}, {0, 1, 2, 0, 1, 2, 0, 1});
  Model m(false), twin(true);
  Program p = compile(m.g, m.loss, optim::AdamW{.lr = 0.01}, {.seed = 4, .fusion = false});
  Program q = compile(twin.g, twin.loss, optim::AdamW{.lr = 0.01}, {.seed = 4, .fusion = false});
  for (int step = 0; step < 4; ++step) {
    const float a = p.step({{"x", xs}, {"y", ys}}).get();
    const float b =
        q.step({{"x", xs}, {"y", ys}, {"one", Tensor::full({}, 1.0, f32)}, {"four", Tensor::full({}, 4.0, f32)}}).get();
    EXPECT_EQ(std::bit_cast<std::uint32_t>(a), std::bit_cast<std::uint32_t>(b)) << "step " << step;
  }
  for (const char* w : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
    EXPECT_TRUE(same_bits(p.get(w), q.get(w))) << w;

  // The optimized step has one first-layer matmul and gelu where the twin has two.
  auto source = m.g.impl().clone();
  optimizer_variable(source, kStepVariable, Shape{}, init::zeros(), i64);
  const ScheduledGraph s =
      compile_training_graph(*source, {id_of(m.loss), {}, optim::AdamW{.lr = 0.01}, 4, 0, /*fuse=*/false});
  EXPECT_EQ(count(*s.graph, OpKind::Gelu), 1) << print_graph(*s.graph);
  EXPECT_EQ(count(*s.graph, OpKind::GeluBackward), 1);
  int div_by_full = 0;
  for (const Node& n : s.graph->nodes())
    div_by_full += !n.dead && n.kind == OpKind::Div && s.graph->node(n.inputs[1].node).kind == OpKind::Full;
  EXPECT_EQ(div_by_full, 0) << "h / 4 and its gradient became multiplications by 0.25";
  // The passes reached their fixed point: running them again changes nothing.
  std::shared_ptr<GraphImpl> g = s.graph;
  ValueMap map;
  EXPECT_FALSE(simplify_algebra(g, map, {s.from_source(id_of(m.loss))}));
  EXPECT_FALSE(fold_constants(g, map));
  EXPECT_FALSE(eliminate_common_subexpressions(g, map));
}

}  // namespace
}  // namespace trainrt
