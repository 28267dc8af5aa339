// Building graphs: shape and dtype inference, and the errors a user meets while building —
// each names the op, the operands' types and the line of the caller's code.
#include "test_util.h"

namespace trainrt {
namespace {

using test::expect_error;

/// "graph_test.cpp:<line>" of the caller, to check that errors point at user code.
std::string here(const std::source_location& l = std::source_location::current()) {
  return "graph_test.cpp:" + std::to_string(l.line());
}

TEST(Graph, InfersShapesAndDtypes) {
  Graph g;
  auto x = g.input("x", {2, 1, 4});
  auto y = g.input("y", {3, 1});
  EXPECT_EQ((x + y).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(eq(x, x).dtype(), boolean);
  EXPECT_EQ(sum(x, {0, -1}, true).shape(), (Shape{1, 1, 1}));
  EXPECT_EQ(max(x, {1}).shape(), (Shape{2, 4}));
  EXPECT_EQ(matmul(g.input("a", {5, 2, 3}), g.input("b", {3, 7})).shape(), (Shape{5, 2, 7}));
  EXPECT_EQ(matmul(g.input("v", {3}), g.input("m", {4, 3, 7})).shape(), (Shape{4, 7}));
  EXPECT_EQ(permute(x, {2, 0, 1}).shape(), (Shape{4, 2, 1}));
  EXPECT_EQ(slice(x, -1, 1, 100, 2).shape(), (Shape{2, 1, 2}));
  EXPECT_EQ(reshape(x, {-1, 2}).shape(), (Shape{4, 2}));
  EXPECT_EQ(concat({x, x}, 1).shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(flatten(x).shape(), (Shape{2, 4}));
  EXPECT_EQ(cast(x, f16).dtype(), f16);
  auto img = g.input("img", {2, 3, 9, 9});
  EXPECT_EQ(conv2d(img, g.input("w", {8, 3, 3, 3}), {}, {.stride = {2, 2}, .padding = {1, 1}}).shape(),
            (Shape{2, 8, 5, 5}));
  EXPECT_EQ(conv2d(img, g.input("dw", {6, 1, 3, 3}), {}, {.dilation = {2, 2}, .groups = 3}).shape(),
            (Shape{2, 6, 5, 5}));
  EXPECT_EQ(max_pool2d(img, {.kernel = {2, 2}, .ceil_mode = true}).shape(), (Shape{2, 3, 5, 5}));
  EXPECT_EQ(avg_pool2d(img, {.kernel = {3, 3}, .stride = Pair{2, 2}, .padding = {1, 1}}).shape(), (Shape{2, 3, 5, 5}));
  EXPECT_EQ(global_avg_pool2d(img).shape(), (Shape{2, 3}));
  auto labels = g.input("labels", {2, 9}, i32);
  EXPECT_EQ(cross_entropy(g.input("logits", {2, 9, 5}), labels).shape(), Shape{});
  EXPECT_EQ(embedding(g.input("table", {10, 4}), labels).shape(), (Shape{2, 9, 4}));
  auto q = g.input("q", {2, 4, 6, 8});
  EXPECT_EQ(scaled_dot_product_attention(q, g.input("k", {2, 4, 5, 8}), g.input("val", {2, 4, 5, 3})).shape(),
            (Shape{2, 4, 6, 3}));
}

TEST(Graph, ShapeErrorsNameTheOpOperandsAndCaller) {
  Graph g;
  auto a = g.input("a", {128, 784});
  auto b = g.input("b", {512, 10});
  std::string line;
  expect_error(
      [&] {
        line = here();
        matmul(a, b);
      },
      ErrorKind::ShapeMismatch,
      {"matmul at", "contracting dimensions differ: 784 (a) vs 512 (b)", "f32[128,784]", "f32[512,10]"});
  // One line: here() names the line of `a + b`.
  expect_error([&] { (void)(a + b); }, ErrorKind::ShapeMismatch, {"add at " + here(), "do not broadcast"});
  expect_error([&] { reshape(a, {3, -1}); }, ErrorKind::ShapeMismatch, {"reshape at", "100352 elements"});
  expect_error([&] { permute(a, {0, 0}); }, ErrorKind::InvalidArgument, {"not a permutation"});
  expect_error([&] { sum(a, {2}); }, ErrorKind::InvalidArgument, {"axis 2 is out of range"});
  expect_error([&] { softmax(a, 5); }, ErrorKind::InvalidArgument, {"softmax at", "axis 5"});
  expect_error([&] { concat({a, b}, 0); }, ErrorKind::ShapeMismatch, {"concat at", "differs in shape"});
  expect_error([&] { broadcast_to(b, {512, 11}); }, ErrorKind::ShapeMismatch, {"broadcast_to at", "[512,11]"});
  expect_error([&] { squeeze(a, 0); }, ErrorKind::ShapeMismatch, {"squeeze at", "is not 1"});
  auto img = g.input("img", {2, 3, 8, 8});
  expect_error(
      [&] {
        conv2d(img, g.input("w", {4, 2, 3, 3}));
      },
      ErrorKind::ShapeMismatch, {"conv2d at", "2 input channels per group", "3 channels"});
  expect_error([&] { conv2d(img, g.input("w9", {4, 3, 9, 9})); }, ErrorKind::ShapeMismatch, {"does not fit"});
  expect_error(
      [&] {
        max_pool2d(img, {.kernel = {2, 2}, .padding = {2, 2}});
      },
      ErrorKind::InvalidArgument, {"at most half the kernel"});
  expect_error([&] { cross_entropy(a, g.input("y", {64}, i64)); }, ErrorKind::ShapeMismatch,
               {"cross_entropy at", "labels must have shape [128]"});
  expect_error([&] { batch_norm(img, g.input("gamma", {4}), {}, {}, {}); }, ErrorKind::ShapeMismatch,
               {"batch_norm at", "gamma must have shape [3]"});
  expect_error([&] { layer_norm(a, {}, {}, {.normalized_axes = 3}); }, ErrorKind::InvalidArgument, {"normalized_axes"});
  EXPECT_FALSE(line.empty());
}

TEST(Graph, OperatorErrorsPointAtTheExpression) {
  Graph g;
  auto a = g.input("a", {2, 3});
  auto b = g.input("b", {4});
  const int line = __LINE__ + 2;
  try {
    auto c = a * b;  // the error must name this line
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string expected = "mul at graph_test.cpp:" + std::to_string(line);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

TEST(Graph, DtypeErrors) {
  Graph g;
  auto f = g.input("f", {3});
  auto i = g.input("i", {3}, i64);
  auto bl = eq(f, f);
  expect_error([&] { (void)(f + i); }, ErrorKind::DTypeMismatch, {"same dtype", "cast()", "f32[3]", "i64[3]"});
  expect_error([&] { exp(i); }, ErrorKind::DTypeMismatch, {"exp at", "floating dtype", "got i64"});
  expect_error([&] { div(i, i); }, ErrorKind::DTypeMismatch, {"div at"});
  expect_error([&] { (void)(i * 0.5); }, ErrorKind::DTypeMismatch, {"scalar 0.5 is not representable", "i64"});
  expect_error([&] { where(f, f, f); }, ErrorKind::DTypeMismatch, {"where at", "condition must be bool"});
  expect_error([&] { logical_and(f, f); }, ErrorKind::DTypeMismatch, {"needs bool"});
  expect_error(
      [&] {
        cross_entropy(g.input("l", {3, 4}), g.input("y", {3}));
      },
      ErrorKind::DTypeMismatch, {"labels need an integer dtype"});
  expect_error(
      [&] {
        embedding(g.input("t", {5, 2}), f);
      },
      ErrorKind::DTypeMismatch, {"indices need an integer dtype"});
  expect_error([&] { matmul(i, i); }, ErrorKind::DTypeMismatch, {"matmul at"});
  expect_error([&] { g.parameter("p", {2}, init::zeros(), i32); }, ErrorKind::DTypeMismatch, {"floating dtype"});
  EXPECT_EQ(logical_not(bl).dtype(), boolean);
  EXPECT_EQ((i + 2).dtype(), i64);
}

TEST(Graph, ValuesOfTwoGraphsCannotMix) {
  Graph g1, g2;
  auto a = g1.input("a", {2});
  auto b = g2.input("b", {2});
  expect_error([&] { (void)(a + b); }, ErrorKind::InvalidArgument,
               {"add at", "different graph", "values of two graphs"});
  expect_error([&] { concat({a, b}, 0); }, ErrorKind::InvalidArgument, {"different graph"});
}

TEST(Graph, NamesAreUniqueAndFindable) {
  Graph g;
  auto x = g.input("x", {2});
  auto w = g.parameter("w", {2}, init::ones());
  expect_error([&] { g.parameter("x", {2}); }, ErrorKind::InvalidArgument, {"'x'", "already used by the input"});
  expect_error([&] { g.input("", {2}); }, ErrorKind::InvalidArgument, {"must not be empty"});
  EXPECT_EQ(g.find("w").node(), w.node());
  expect_error([&] { g.find("nope"); }, ErrorKind::NotFound, {"'nope'", "known: x, w"});
  EXPECT_EQ(g.parameters().size(), 1u);
  EXPECT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(x.to_string(), "input 'x' f32[2]");
}

TEST(Graph, AbsentValuesAreReportedNotDereferenced) {
  Graph g;
  Value absent;
  EXPECT_FALSE(absent.valid());
  expect_error([&] { (void)absent.shape(); }, ErrorKind::InvalidArgument, {"absent"});
  expect_error([&] { relu(absent); }, ErrorKind::InvalidArgument, {"relu at", "absent"});
  expect_error([&] { matmul(g.input("x", {2, 2}), absent); }, ErrorKind::InvalidArgument, {"matmul at", "absent"});
  expect_error([&] { (void)(g.input("y", {2}) + absent); }, ErrorKind::InvalidArgument,
               {"add at", "required but absent"});
}

TEST(Graph, OptionsAreValidated) {
  Graph g;
  auto x = g.input("x", {4, 4});
  expect_error([&] { dropout(x, 1.0); }, ErrorKind::InvalidArgument, {"dropout at", "[0, 1)"});
  expect_error([&] { cross_entropy(x, g.input("y", {4}, i64), {.label_smoothing = 1.5}); }, ErrorKind::InvalidArgument,
               {"label_smoothing"});
  expect_error([&] { clamp(x, 1, 0); }, ErrorKind::InvalidArgument, {"clamp at"});
  expect_error([&] { slice(x, 0, 0, 2, 0); }, ErrorKind::InvalidArgument, {"step must be >= 1"});
  expect_error(
      [&] {
        batch_norm(g.input("img", {2, 3, 4, 4}), {}, {}, g.input("rm", {3}), g.input("rv", {3}));
      },
      ErrorKind::InvalidArgument, {"running statistics must be state tensors"});
  expect_error([&] { nn::Conv2d(g, "c", 3, 4, {3, 3}, {.groups = 2}); }, ErrorKind::InvalidArgument, {"groups"});
  EXPECT_EQ(dropout(x, 0.0).node(), x.node()) << "p = 0 is the identity";
}

TEST(Graph, PrinterShowsNodesLocationsAndAttributes) {
  Graph g;
  auto x = g.input("x", {2, 3});
  auto y = matmul(x, x, {.transpose_b = true});
  const std::string text = g.to_string();
  EXPECT_NE(text.find("%0 = input 'x'() : f32[2,3]"), std::string::npos) << text;
  EXPECT_NE(text.find("matmul(%0, %0) {transpose_b} : f32[2,2]"), std::string::npos) << text;
  EXPECT_NE(text.find("graph_test.cpp:"), std::string::npos) << text;
  EXPECT_NE(y.to_string().find("f32[2,2] = matmul at graph_test.cpp:"), std::string::npos) << y.to_string();
}

}  // namespace
}  // namespace trainrt
