// tests/conv_pool_test.cpp — conv2d, max_pool2d and avg_pool2d on the CPU backend.
//
// Contents:
//   Conv2dOneDnn.*      the f32 oneDNN kernels (forward, backward data, backward weights)
//                       against the f64 reference loops, on fixed and seeded-random shapes;
//                       the weight gradient split by output channels (conv_weights.cpp)
//   Conv2dErrors.*      bad arguments
//   Conv2dHand.*        a hand-computed convolution
//   Conv2dGrad.*        finite-difference gradient checks (f64, reference loops)
//   MaxPool2d*, AvgPool2d*, Pool2d*   hand-computed cases, gradient checks, f32 against
//                       f64, and results independent of the thread count
//
// Everything goes through the public API: the backward ops are reached via gradients() of
// loss = sum(op(...) * G) with a constant G, whose gradient with respect to the op's output
// is exactly G.
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <sstream>

#include "runtime/cpu/conv_internal.h"
#include "test_util.h"

namespace trainrt {
namespace {

using test::check_gradients;
using V = std::vector<Value>;

constexpr unsigned kSeeds[] = {1, 2, 3};

// ---- convolution: f32 (oneDNN) against f64 (reference) --------------------------------------

struct ConvCase {
  std::string name;
  Shape x, w;
  Conv2dOptions options;
  bool bias = false;
};

std::string describe(const ConvCase& c) {
  const auto& o = c.options;
  std::ostringstream s;
  s << c.name << ": x" << c.x.to_string() << " w" << c.w.to_string() << " stride " << o.stride[0] << "x" << o.stride[1]
    << " padding " << o.padding[0] << "x" << o.padding[1] << " dilation " << o.dilation[0] << "x" << o.dilation[1]
    << " groups " << o.groups << (c.bias ? " bias" : "");
  return s.str();
}

/// y, dx, dw of one convolution in `dtype`: y = conv2d(x, w, b), with g the gradient
/// arriving at y.
struct ConvResults {
  Tensor y, dx, dw;
};

ConvResults run_conv(const ConvCase& c, DType dtype, const Tensor& x, const Tensor& w, const Tensor& b,
                     const Tensor& g) {
  Graph graph;
  const Value xv = graph.input("x", c.x, dtype), wv = graph.input("w", c.w, dtype);
  const Value bv = c.bias ? graph.input("b", b.shape(), dtype) : Value{};
  const Value y = conv2d(xv, wv, bv, c.options);
  const Value loss = sum(mul(y, graph.constant(g.to(dtype))));
  const V grads = gradients(loss, {xv, wv});
  Feeds feeds{{"x", x.to(dtype)}, {"w", w.to(dtype)}};
  if (c.bias) feeds.add("b", b.to(dtype));
  const std::vector<Tensor> out = test::run_train(loss, {y, grads[0], grads[1]}, feeds);
  return {out[0], out[1], out[2]};
}

Tensor abs_of(const Tensor& t) {
  Tensor a = t.to(f64);
  double* p = a.data<double>();
  for (std::int64_t i = 0; i < a.numel(); ++i) p[i] = std::abs(p[i]);
  return a;
}

/// Expects |got - want| <= gamma_k * bound elementwise, where bound = sum |a_i b_i| of
/// each output's products (the same op run on absolute values) and gamma_k = k u / (1 - k u)
/// with u = 2^-24: the classic worst-case error of any f32 dot product of length k over
/// inputs that are exact in f32 (Higham, "Accuracy and Stability of Numerical
/// Algorithms", 3.1), whatever the summation order or blocking oneDNN uses. A wrong tap
/// or channel shifts an output by about one |a_i b_i| (~0.25 here), far above the bound.
void expect_within_dot_bound(const Tensor& got, const Tensor& want, const Tensor& bound, std::int64_t k,
                             const std::string& what) {
  ASSERT_EQ(got.shape().to_string(), want.shape().to_string()) << what;
  const double u = std::ldexp(1.0, -24), gamma = static_cast<double>(k) * u / (1 - static_cast<double>(k) * u);
  int reported = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double err = std::abs(got.at(i) - want.at(i)), tol = gamma * bound.at(i) + 1e-30;
    if (!(err <= tol) && reported++ < 5)
      ADD_FAILURE() << what << " element " << i << ": f32 " << got.at(i) << ", f64 " << want.at(i) << ", bound " << tol;
  }
}

void check_onednn_against_reference(const ConvCase& c, unsigned seed) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(seed);
  const std::int64_t groups = c.options.groups;
  // Inputs are drawn in f32 so that the f64 run sees exactly the same values.
  const Tensor x = test::random_tensor(c.x, f32, rng), w = test::random_tensor(c.w, f32, rng);
  const Tensor b = test::random_tensor(Shape{c.w[0]}, f32, rng);
  Graph probe;  // the output shape, from shape inference
  const Shape ys = conv2d(probe.input("x", c.x), probe.input("w", c.w), {}, c.options).shape();
  const Tensor g = test::random_tensor(ys, f32, rng);

  const ConvResults r32 = run_conv(c, f32, x, w, b, g);
  const ConvResults r64 = run_conv(c, f64, x, w, b, g);
  const ConvResults mag = run_conv(c, f64, abs_of(x), abs_of(w), abs_of(b), abs_of(g));
  // Products per output element: forward C/groups*KH*KW (+ the bias), backward data at most
  // O/groups*KH*KW, backward weights N*OH*OW.
  const std::int64_t taps = c.w[2] * c.w[3];
  expect_within_dot_bound(r32.y, r64.y, mag.y, c.w[1] * taps + (c.bias ? 1 : 0), "forward");
  expect_within_dot_bound(r32.dx, r64.dx, mag.dx, c.w[0] / groups * taps, "backward data");
  expect_within_dot_bound(r32.dw, r64.dw, mag.dw, ys[0] * ys[2] * ys[3], "backward weights");
}

Conv2dOptions conv_options(Pair stride, Pair padding, Pair dilation = {1, 1}, std::int64_t groups = 1) {
  Conv2dOptions o;
  o.stride = stride, o.padding = padding, o.dilation = dilation, o.groups = groups;
  return o;
}

/// Padding larger than half the window, which pooling rejects.
Pool2dOptions pool_options_for_error() {
  Pool2dOptions o;
  o.kernel = {2, 2};
  o.padding = {2, 0};
  return o;
}

TEST(Conv2dOneDnn, MatchesReferenceOnFixedShapes) {
  const std::vector<ConvCase> cases = {
      {"3x3 same", {2, 3, 9, 8}, {4, 3, 3, 3}, conv_options({1, 1}, {1, 1}), true},
      {"stride 2, non-square kernel", {2, 4, 11, 10}, {6, 4, 3, 2}, conv_options({2, 2}, {1, 0}), true},
      {"dilation 2", {1, 3, 12, 12}, {5, 3, 3, 3}, conv_options({1, 1}, {2, 2}, {2, 2})},
      {"mixed stride/dilation, 2x4 kernel", {2, 5, 13, 17}, {7, 5, 2, 4}, conv_options({1, 3}, {1, 2}, {2, 1}), true},
      {"groups 2", {2, 6, 8, 9}, {4, 3, 3, 3}, conv_options({1, 2}, {1, 1}, {1, 1}, 2), true},
      {"depthwise", {2, 16, 10, 10}, {16, 1, 3, 3}, conv_options({1, 1}, {1, 1}, {1, 1}, 16)},
      {"depthwise x2 stride 2", {2, 8, 9, 11}, {16, 1, 3, 3}, conv_options({2, 2}, {1, 1}, {1, 1}, 8), true},
      {"1x1 stride 2", {2, 8, 7, 7}, {8, 8, 1, 1}, conv_options({2, 2}, {0, 0})},
      // The benchmark CNN's layers at a small batch: the 1-channel first layer takes the
      // plain-layout backward-data path, the others the blocked (reordered) one.
      {"cnn layer 1", {4, 1, 28, 28}, {32, 1, 3, 3}, conv_options({1, 1}, {1, 1})},
      {"cnn layer 2", {3, 32, 14, 14}, {64, 32, 3, 3}, conv_options({1, 1}, {1, 1})},
      {"cnn layer 3", {2, 64, 7, 7}, {128, 64, 3, 3}, conv_options({1, 1}, {1, 1})},
      {"channels not a multiple of 16", {2, 20, 7, 6}, {24, 20, 3, 3}, conv_options({1, 1}, {1, 1}), true},
  };
  for (const ConvCase& c : cases) check_onednn_against_reference(c, 7);
}

TEST(Conv2dOneDnn, MatchesReferenceOnRandomShapes) {
  std::mt19937 rng(2024);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (int trial = 0; trial < 16; ++trial) {
    ConvCase c;
    c.name = "random " + std::to_string(trial);
    // Every third case has up to 12 channels per group (oneDNN's blocked layouts pad to 16);
    // every fourth is depthwise (one input channel per group).
    const std::int64_t cg = pick(1, trial % 3 == 0 ? 12 : 4), og = pick(1, trial % 3 == 0 ? 12 : 4);
    const std::int64_t groups = trial % 4 == 0 ? cg * pick(1, 3) : pick(1, 3);
    const std::int64_t in_per = trial % 4 == 0 ? 1 : cg;
    Conv2dOptions& o = c.options;
    o.groups = groups;
    for (int d = 0; d < 2; ++d) {
      o.stride[d] = pick(1, 3);
      o.dilation[d] = pick(1, 2);
    }
    const std::int64_t kh = pick(1, 4), kw = pick(1, 4);
    o.padding = {pick(0, (kh - 1) * o.dilation[0]), pick(0, (kw - 1) * o.dilation[1])};
    const std::int64_t h = (kh - 1) * o.dilation[0] + pick(1, 9), w = (kw - 1) * o.dilation[1] + pick(1, 9);
    c.x = Shape{pick(1, 3), in_per * groups, h, w};
    c.w = Shape{og * groups, in_per, kh, kw};
    c.bias = trial % 2 == 1;
    check_onednn_against_reference(c, static_cast<unsigned>(100 + trial));
  }
}

/// The ConvGeometry of a stride-1 "same" convolution (square kernel k).
detail::cpu::ConvGeometry same_conv(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t o, std::int64_t k) {
  detail::cpu::ConvGeometry s;
  s.n = n, s.c = c, s.h = s.w = s.oh = s.ow = hw;
  s.o = o, s.kh = s.kw = k;
  s.padding = {k / 2, k / 2};
  return s;
}

TEST(Conv2dOneDnn, WeightGradientSplitByChannelsWhereFiltersOutweighActivations) {
  // ResNet-18 (CIFAR) at batch 32: the 512 -> 512 layers on 4x4 images split by channels,
  // the 64 -> 64 layers on 32x32 images by batch; so do the cases of the next test.
  EXPECT_GT(detail::cpu::conv_weight_channel_pieces(same_conv(32, 512, 4, 512, 3)), 1);
  EXPECT_EQ(detail::cpu::conv_weight_channel_pieces(same_conv(32, 64, 32, 64, 3)), 0);
  EXPECT_EQ(detail::cpu::conv_weight_channel_pieces(same_conv(4, 256, 4, 256, 3)), 16);
  EXPECT_EQ(detail::cpu::conv_weight_channel_pieces(same_conv(3, 64, 4, 200, 3)), 2);
  // Grouped convolutions and fewer than two channel blocks always take the batch split.
  detail::cpu::ConvGeometry grouped = same_conv(32, 512, 4, 512, 3);
  grouped.groups = 2, grouped.c = 1024;
  EXPECT_EQ(detail::cpu::conv_weight_channel_pieces(grouped), 0);
  EXPECT_EQ(detail::cpu::conv_weight_channel_pieces(same_conv(64, 512, 4, 31, 3)), 0);
}

TEST(Conv2dOneDnn, WeightGradientSplitByChannelsMatchesReferenceAndThreadCounts) {
  const std::vector<ConvCase> cases = {
      // 16 slices of 16 channels.
      {"late layer, 16 slices", {4, 256, 4, 4}, {256, 256, 3, 3}, conv_options({1, 1}, {1, 1})},
      // 13 channel blocks in 2 pieces: 112 channels, then a tail of 88 (not a whole block).
      {"tail slice", {3, 64, 4, 4}, {200, 64, 3, 3}, conv_options({1, 1}, {1, 1}), true},
  };
  for (const ConvCase& c : cases) {
    check_onednn_against_reference(c, 11);
    // Each filter is computed by one piece over the whole batch: the same bits whatever the
    // number of threads.
    SCOPED_TRACE(describe(c));
    std::mt19937 rng(5);
    const Tensor x = test::random_tensor(c.x, f32, rng), w = test::random_tensor(c.w, f32, rng);
    Graph g;
    const Value xv = g.input("x", c.x), wv = g.input("w", c.w);
    const Value loss = sum(mul(conv2d(xv, wv, {}, c.options), conv2d(xv, wv, {}, c.options)));
    const V grads = gradients(loss, {wv});
    const Feeds feeds{{"x", x}, {"w", w}};
    const Tensor one = test::run_train(loss, {grads[0]}, feeds, 1).at(0);
    for (const int threads : {2, 4}) {
      const Tensor other = test::run_train(loss, {grads[0]}, feeds, threads).at(0);
      EXPECT_EQ(std::memcmp(one.raw_data(), other.raw_data(), one.nbytes()), 0) << threads << " threads";
    }
  }
}

TEST(Conv2dOneDnn, ZeroBatchGivesZeroWeightGradient) {
  // An empty batch leaves the oneDNN path (zero-size memory) for the reference loops.
  Graph graph;
  const Value x = graph.input("x", {0, 2, 5, 5}), w = graph.input("w", {3, 2, 3, 3});
  const Value y = conv2d(x, w, {}, conv_options({1, 1}, {1, 1}));
  const Value loss = sum(y);
  const V grads = gradients(loss, {w});
  const Feeds feeds{{"x", Tensor::zeros({0, 2, 5, 5}, f32)}, {"w", Tensor::full({3, 2, 3, 3}, 1.0, f32)}};
  const auto out = test::run_train(loss, {y, grads[0]}, feeds);
  EXPECT_EQ(out[0].shape().to_string(), Shape({0, 3, 5, 5}).to_string());
  EXPECT_EQ(test::values(out[1]), std::vector<double>(54, 0.0));
}

TEST(Conv2dErrors, BadArgumentsThrowWhenTheOpIsAdded) {
  Graph graph;
  const Value x = graph.input("x", {1, 4, 5, 5}), w = graph.input("w", {6, 2, 3, 3});
  test::expect_error(
      [&] {
        conv2d(x, w, {}, conv_options({1, 1}, {0, 0}, {1, 1}, 3));
      },
      ErrorKind::ShapeMismatch, {"conv2d", "groups"});
  test::expect_error([&] { max_pool2d(x, pool_options_for_error()); }, ErrorKind::InvalidArgument,
                     {"max_pool2d", "padding"});
}

// ---- convolution: hand-computed and gradient checks ------------------------------------------

TEST(Conv2dHand, SmallCaseWithPaddingStrideAndBias) {
  // x = [[1 2 3] [4 5 6] [7 8 9]], w = [[1 0] [0 -1]], bias 10, padding 1, stride 2: the
  // window of output (i, j) covers rows 2i-1..2i and columns 2j-1..2j, so
  // y(i, j) = x[2i-1][2j-1] - x[2i][2j] + 10 with zeros outside x:
  //   (0,0): 0 - 1 + 10 = 9; (0,1): 0 - 3 + 10 = 7; (1,0): 0 - 7 + 10 = 3; (1,1): 5 - 9 + 10 = 6.
  for (DType dt : {f32, f64}) {
    Graph graph;
    const Value x = graph.input("x", {1, 1, 3, 3}, dt), w = graph.input("w", {1, 1, 2, 2}, dt);
    const Value b = graph.input("b", {1}, dt);
    const Value y = conv2d(x, w, b, conv_options({2, 2}, {1, 1}));
    const Feeds feeds{{"x", Tensor::from_vector<double>({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}).to(dt)},
                      {"w", Tensor::from_vector<double>({1, 1, 2, 2}, {1, 0, 0, -1}).to(dt)},
                      {"b", Tensor::from_vector<double>({1}, {10}).to(dt)}};
    const auto out = test::run_train(sum(y), {y}, feeds);
    EXPECT_EQ(test::values(out[0]), (std::vector<double>{9, 7, 3, 6})) << name(dt);
  }
}

TEST(Conv2dGrad, FiniteDifferences) {
  struct G {
    const char* name;
    Shape x, w;
    Conv2dOptions o;
  };
  const std::vector<G> cases = {
      {"plain", {2, 3, 6, 5}, {4, 3, 3, 3}, conv_options({1, 1}, {1, 1})},
      {"stride 2, non-square", {2, 2, 7, 8}, {3, 2, 3, 2}, conv_options({2, 2}, {1, 0})},
      {"dilation 2", {1, 2, 8, 7}, {3, 2, 3, 2}, conv_options({1, 2}, {2, 1}, {2, 2})},
      {"groups 2", {2, 4, 5, 6}, {6, 2, 2, 3}, conv_options({1, 1}, {1, 1}, {1, 1}, 2)},
      {"depthwise", {2, 3, 6, 6}, {3, 1, 3, 3}, conv_options({2, 1}, {1, 1}, {1, 1}, 3)},
  };
  for (unsigned seed : kSeeds)
    for (const G& c : cases) {
      const Conv2dOptions o = c.o;
      check_gradients({std::string("conv2d ") + c.name,
                       {c.x, c.w, Shape{c.w[0]}},
                       [o](Graph&, const V& in) { return conv2d(in[0], in[1], in[2], o); }},
                      seed);
    }
}

TEST(Conv2dGrad, FiniteDifferencesOnRandomShapes) {
  std::mt19937 rng(99);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (int trial = 0; trial < 6; ++trial) {
    Conv2dOptions o;
    o.groups = pick(1, 2);
    o.stride = {pick(1, 2), pick(1, 2)};
    o.dilation = {pick(1, 2), pick(1, 2)};
    const std::int64_t kh = pick(1, 3), kw = pick(1, 3);
    o.padding = {pick(0, kh - 1), pick(0, kw - 1)};
    const Shape x{pick(1, 2), pick(1, 2) * o.groups, (kh - 1) * o.dilation[0] + pick(1, 5),
                  (kw - 1) * o.dilation[1] + pick(1, 5)};
    const Shape w{pick(1, 3) * o.groups, x[1] / o.groups, kh, kw};
    check_gradients({"conv2d random " + std::to_string(trial),
                     {x, w, Shape{w[0]}},
                     [o](Graph&, const V& in) { return conv2d(in[0], in[1], in[2], o); }},
                    static_cast<unsigned>(trial + 1));
  }
}

// ---- pooling -----------------------------------------------------------------------------------

Pool2dOptions pool_options(Pair kernel, std::optional<Pair> stride = {}, Pair padding = {0, 0}, bool ceil_mode = false,
                           bool count_include_pad = true) {
  Pool2dOptions o;
  o.kernel = kernel, o.stride = stride, o.padding = padding, o.ceil_mode = ceil_mode;
  o.count_include_pad = count_include_pad;
  return o;
}

Value pool(bool max_pool, const Value& x, const Pool2dOptions& o) {
  return max_pool ? max_pool2d(x, o) : avg_pool2d(x, o);
}

/// y = pool(x) and dx for the upstream gradient g, in x's dtype, with `threads` threads.
std::vector<Tensor> run_pool(bool max_pool, const Pool2dOptions& o, const Tensor& x, const Tensor& g, int threads = 0) {
  Graph graph;
  const Value xv = graph.input("x", x.shape(), x.dtype());
  const Value y = pool(max_pool, xv, o);
  const Value loss = sum(mul(y, graph.constant(g.to(x.dtype()))));
  return test::run_train(loss, {y, gradients(loss, {xv})[0]}, {{"x", x}}, threads);
}

TEST(MaxPool2dHand, TiesGoToTheFirstMaximum) {
  // One 2x2 window per output, stride 2; and a 3x3 stride-1 window that sees the same
  // maxima from several outputs (their gradients add up on the first one).
  const Tensor x = Tensor::from_vector<double>({1, 1, 2, 4}, {3, 3, 1, 2,  //
                                                              3, 1, 2, 2});
  const auto out = run_pool(true, pool_options({2, 2}), x, Tensor::from_vector<double>({1, 1, 1, 2}, {10, 20}));
  EXPECT_EQ(test::values(out[0]), (std::vector<double>{3, 2}));
  EXPECT_EQ(test::values(out[1]), (std::vector<double>{10, 0, 0, 20, 0, 0, 0, 0}));

  const Tensor x2 = Tensor::from_vector<double>({1, 1, 3, 4}, {0, 5, 5, 0,  //
                                                               1, 2, 5, 1,  //
                                                               5, 0, 0, 5});
  // 3x3 windows at columns 0..2 and 1..3, stride 1. Both hold several 5s; in row-major
  // order the first is x[0][1] for both (column-major order would pick x[2][0] for the
  // first), so x[0][1] receives 1 + 2.
  const auto out2 =
      run_pool(true, pool_options({3, 3}, Pair{1, 1}), x2, Tensor::from_vector<double>({1, 1, 1, 2}, {1, 2}));
  EXPECT_EQ(test::values(out2[0]), (std::vector<double>{5, 5}));
  EXPECT_EQ(test::values(out2[1]), (std::vector<double>{0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(MaxPool2dTiled, MatchesNaiveLoopsWithTiesNanAndUncoveredEdges) {
  // Windows that tile the input (kernel == stride, no padding) take a dedicated kernel; it
  // must match a naive window-by-window loop exactly: ties (small integers), NaN, and rows
  // and columns past the last full window (odd sizes) that receive no gradient.
  std::mt19937 rng(41);
  for (const Pair kernel : {Pair{2, 2}, Pair{3, 2}}) {
    const std::int64_t n = 2, c = 3, h = 7, w = 9;
    const std::int64_t oh = h / kernel[0], ow = w / kernel[1];
    Tensor x = Tensor::empty({n, c, h, w}, f64), g = Tensor::empty({n, c, oh, ow}, f64);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = static_cast<double>(rng() % 4);
    for (std::int64_t i = 0; i < g.numel(); ++i) g.data<double>()[i] = 1.0 + static_cast<double>(i);
    x.data<double>()[5] = std::numeric_limits<double>::quiet_NaN();
    for (DType dt : {f64, f32}) {
      const auto out = run_pool(true, pool_options(kernel), x.to(dt), g, 2);
      for (std::int64_t p = 0; p < n * c; ++p)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j) {
            double m = 0;
            std::int64_t first = -1;
            for (std::int64_t a = 0; a < kernel[0]; ++a)
              for (std::int64_t b = 0; b < kernel[1]; ++b) {
                const std::int64_t at = (p * h + i * kernel[0] + a) * w + j * kernel[1] + b;
                const double v = x.at(at);
                if (first < 0 || v > m || (std::isnan(v) && !std::isnan(m))) m = v, first = at;
              }
            const double got = out[0].at((p * oh + i) * ow + j);
            EXPECT_TRUE(got == m || (std::isnan(got) && std::isnan(m))) << got << " vs " << m;
            // The gradient lands on the first element equal to the maximum.
            for (std::int64_t a = 0; a < kernel[0]; ++a)
              for (std::int64_t b = 0; b < kernel[1]; ++b) {
                const std::int64_t at = (p * h + i * kernel[0] + a) * w + j * kernel[1] + b;
                EXPECT_EQ(out[1].at(at), at == first ? g.at((p * oh + i) * ow + j) : 0.0) << name(dt) << " at " << at;
              }
          }
      for (std::int64_t p = 0; p < n * c; ++p)
        for (std::int64_t r = 0; r < h; ++r)
          for (std::int64_t col = 0; col < w; ++col)
            if (r >= oh * kernel[0] || col >= ow * kernel[1]) {
              EXPECT_EQ(out[1].at((p * h + r) * w + col), 0.0);
            }
    }
  }
}

TEST(AvgPool2dHand, CountIncludePad) {
  // x = [[1 2] [3 4]], kernel 2, stride 1, padding 1: a 3x3 output whose windows hold
  // 1, 2, 4, 2, 1, ... real elements; count_include_pad divides by 4 always, else by the count.
  const Tensor x = Tensor::from_vector<double>({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor g = Tensor::full({1, 1, 3, 3}, 1.0, f64);
  const auto with = run_pool(false, pool_options({2, 2}, Pair{1, 1}, {1, 1}, false, true), x, g);
  EXPECT_EQ(test::values(with[0]), (std::vector<double>{0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1}));
  EXPECT_EQ(test::values(with[1]), (std::vector<double>{1, 1, 1, 1}));  // each x in 4 windows of 1/4
  const auto without = run_pool(false, pool_options({2, 2}, Pair{1, 1}, {1, 1}, false, false), x, g);
  EXPECT_EQ(test::values(without[0]), (std::vector<double>{1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}));
  // x00 is in windows with 1, 2, 2, 4 real elements: 1 + 1/2 + 1/2 + 1/4.
  EXPECT_EQ(test::values(without[1]), (std::vector<double>{2.25, 2.25, 2.25, 2.25}));
}

TEST(AvgPool2dHand, CeilModeClipsTheLastWindow) {
  // x is 1x4, kernel 1x3, stride 2, padding 1, ceil_mode: three windows over columns
  // [-1, 2), [1, 4) and [3, 6); PyTorch clips the last to the padded input, [3, 5). With
  // count_include_pad the divisors are 3, 3 and 2 (the clipped size), without it the real
  // counts 2, 3 and 1.
  const Tensor x = Tensor::from_vector<double>({1, 1, 1, 4}, {1, 2, 3, 4});
  const Tensor g = Tensor::full({1, 1, 1, 3}, 1.0, f64);
  const auto with = run_pool(false, pool_options({1, 3}, Pair{1, 2}, {0, 1}, true, true), x, g);
  EXPECT_CLOSE(with[0], Tensor::from_vector<double>({1, 1, 1, 3}, {3.0 / 3, 9.0 / 3, 4.0 / 2}), 1e-15, 0);
  EXPECT_CLOSE(with[1], Tensor::from_vector<double>({1, 1, 1, 4}, {1.0 / 3, 2.0 / 3, 1.0 / 3, 1.0 / 3 + 1.0 / 2}),
               1e-15, 0);
  const auto without = run_pool(false, pool_options({1, 3}, Pair{1, 2}, {0, 1}, true, false), x, g);
  EXPECT_CLOSE(without[0], Tensor::from_vector<double>({1, 1, 1, 3}, {3.0 / 2, 9.0 / 3, 4.0}), 1e-15, 0);
  EXPECT_CLOSE(without[1],
               Tensor::from_vector<double>({1, 1, 1, 4}, {1.0 / 2, 1.0 / 2 + 1.0 / 3, 1.0 / 3, 1.0 / 3 + 1}), 1e-15, 0);
}

struct PoolGradCase {
  const char* name;
  Shape x;
  Pool2dOptions o;
};

const std::vector<PoolGradCase>& pool_grad_cases() {
  static const std::vector<PoolGradCase> cases = {
      {"2x2", {2, 3, 6, 6}, pool_options({2, 2})},
      {"3x3 stride 2 padding 1", {2, 2, 7, 6}, pool_options({3, 3}, Pair{2, 2}, {1, 1})},
      {"3x2 stride 1x3", {1, 3, 7, 8}, pool_options({3, 2}, Pair{1, 3}, {1, 0})},
      {"ceil_mode", {2, 2, 7, 8}, pool_options({3, 3}, Pair{2, 2}, {0, 1}, true)},
      {"ceil_mode no pad count", {2, 2, 8, 7}, pool_options({2, 3}, Pair{3, 2}, {1, 1}, true, false)},
      {"padding no pad count", {1, 2, 5, 5}, pool_options({3, 3}, Pair{1, 1}, {1, 1}, false, false)},
  };
  return cases;
}

TEST(MaxPool2dGrad, FiniteDifferences) {
  for (unsigned seed : kSeeds)
    for (const PoolGradCase& c : pool_grad_cases()) {
      const Pool2dOptions o = c.o;
      // Values drawn from a continuum: ties within h = 1e-6 (where the max switches) have
      // probability ~1e-5 per window pair.
      check_gradients(
          {std::string("max_pool2d ") + c.name, {c.x}, [o](Graph&, const V& in) { return max_pool2d(in[0], o); }},
          seed);
    }
}

TEST(AvgPool2dGrad, FiniteDifferences) {
  for (unsigned seed : kSeeds)
    for (const PoolGradCase& c : pool_grad_cases()) {
      const Pool2dOptions o = c.o;
      check_gradients(
          {std::string("avg_pool2d ") + c.name, {c.x}, [o](Graph&, const V& in) { return avg_pool2d(in[0], o); }},
          seed);
    }
}

TEST(Pool2dThreads, ResultsDoNotDependOnThreadCount) {
  // 256 planes of 16x16: enough work that the kernels split the planes over threads.
  std::mt19937 rng(5);
  const Tensor x = test::random_tensor({8, 32, 16, 16}, f32, rng);
  for (const PoolGradCase& c : pool_grad_cases()) {
    for (bool max_pool : {true, false}) {
      SCOPED_TRACE(std::string(max_pool ? "max " : "avg ") + c.name);
      Graph probe;
      const Shape ys = pool(max_pool, probe.input("x", x.shape()), c.o).shape();
      const Tensor g = test::random_tensor(ys, f32, rng);
      const auto one = run_pool(max_pool, c.o, x, g, 1);
      const auto two = run_pool(max_pool, c.o, x, g, 2);
      for (std::size_t i = 0; i < one.size(); ++i) {
        ASSERT_EQ(one[i].nbytes(), two[i].nbytes());
        EXPECT_EQ(std::memcmp(one[i].raw_data(), two[i].raw_data(), one[i].nbytes()), 0) << "output " << i;
      }
      // The f32 kernels agree with f64 on the same (f32) values: every output and input
      // gradient is a sum of at most 9 terms (kernel <= 3x3, stride >= 1) of magnitude < 1,
      // so its f32 rounding error is at most 9 * 9 * 2^-24 < 5e-6.
      const auto ref = run_pool(max_pool, c.o, x.to(f64), g.to(f64), 1);
      EXPECT_CLOSE(one[0], ref[0], 5e-6, 0);
      EXPECT_CLOSE(one[1], ref[1], 5e-6, 0);
    }
  }
}

TEST(MaxPool2d, NanPropagatesAndInfinitiesWork) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const Tensor x = Tensor::from_vector<double>({1, 1, 2, 4}, {1, nan, -inf, -inf,  //
                                                              nan, 2, -inf, -inf});
  const auto out = run_pool(true, pool_options({2, 2}), x, Tensor::from_vector<double>({1, 1, 1, 2}, {1, 2}));
  EXPECT_TRUE(std::isnan(out[0].at(0)));
  EXPECT_EQ(out[0].at(1), -inf);
  EXPECT_EQ(test::values(out[1]), (std::vector<double>{0, 1, 2, 0, 0, 0, 0, 0}));  // first NaN; first -inf
}

}  // namespace
}  // namespace trainrt
