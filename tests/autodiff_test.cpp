// Gradient checks: every op's gradient against central finite differences in float64, on
// random shapes (size-1 axes, broadcasting, permutations, reductions over several axes)
// drawn from seeded generators. Conv/pool and attention have their own files.
//
// Tolerances: check_gradients uses h = 1e-6; in f64 the central difference then carries a
// truncation error ~h^2 f''' and a rounding error ~1e-16 |loss| / h ~ 1e-9 for our losses,
// far below atol 1e-6 + rtol 1e-5.
#include <algorithm>
#include <numeric>

#include "test_util.h"

namespace trainrt {
namespace {

using test::check_gradients;
using test::GradCase;
using V = std::vector<Value>;

constexpr unsigned kSeeds[] = {1, 2, 3};

/// A random shape of rank 1..4 with some size-1 axes.
Shape any_shape(std::mt19937& rng) { return test::random_shape(rng, std::uniform_int_distribution<int>(1, 4)(rng), 4); }

/// A shape that broadcasts against `s`: some axes set to 1, maybe fewer leading axes.
Shape broadcast_partner(const Shape& s, std::mt19937& rng) {
  std::vector<std::int64_t> d = s.dims();
  for (auto& x : d)
    if (rng() % 3 == 0) x = 1;
  const std::size_t drop = rng() % (d.size() + 1);
  d.erase(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(std::min(drop, d.size())));
  return Shape(d);
}

TEST(Gradients, Unary) {
  using Fn = Value (*)(const Value&, Loc);
  struct U {
    const char* name;
    Fn fn;
    double lo, hi;
  };
  const U ops[] = {{"neg", neg, -1, 1},    {"abs", abs, -1, 1},         {"exp", exp, -1, 1},  {"log", log, 0.5, 2},
                   {"sqrt", sqrt, 0.5, 2}, {"rsqrt", rsqrt, 0.5, 2},    {"sin", sin, -2, 2},  {"cos", cos, -2, 2},
                   {"tanh", tanh, -2, 2},  {"sigmoid", sigmoid, -3, 3}, {"relu", relu, -1, 1}};
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    for (const U& u : ops) {
      const Fn fn = u.fn;
      check_gradients(
          {u.name, {any_shape(rng)}, [fn](Graph&, const V& x) { return fn(x[0], Loc::current()); }, u.lo, u.hi}, seed);
    }
    check_gradients({"gelu", {any_shape(rng)}, [](Graph&, const V& x) { return gelu(x[0]); }, -3, 3}, seed);
    check_gradients(
        {"gelu_tanh", {any_shape(rng)}, [](Graph&, const V& x) { return gelu(x[0], GeluApproximation::tanh); }, -3, 3},
        seed);
  }
}

TEST(Gradients, PiecewiseConstantOpsHaveZeroGradient) {
  Graph g;
  auto x = g.input("x", {3, 2}, f64);
  auto loss = sum(floor(x) + sign(x) + cast(gt(x, g.scalar(0, f64)), f64));
  auto grads = gradients(loss, {x});
  std::mt19937 rng(4);
  auto out = test::run_train(loss, grads, {{"x", test::random_tensor({3, 2}, f64, rng)}});
  for (double v : test::values(out[0])) EXPECT_EQ(v, 0.0);
}

TEST(Gradients, BinaryWithBroadcasting) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    for (int trial = 0; trial < 3; ++trial) {
      const Shape a = any_shape(rng);
      const Shape b = broadcast_partner(a, rng);
      const bool swap = rng() % 2;  // the broadcast operand on either side
      const Shape s0 = swap ? b : a, s1 = swap ? a : b;
      check_gradients({"add", {s0, s1}, [](Graph&, const V& x) { return x[0] + x[1]; }}, seed);
      check_gradients({"sub", {s0, s1}, [](Graph&, const V& x) { return x[0] - x[1]; }}, seed);
      check_gradients({"mul", {s0, s1}, [](Graph&, const V& x) { return x[0] * x[1]; }}, seed);
      check_gradients({"div", {s0, s1}, [](Graph&, const V& x) { return x[0] / x[1]; }, 0.5, 2}, seed);
      check_gradients({"pow", {s0, s1}, [](Graph&, const V& x) { return pow(x[0], x[1]); }, 0.5, 2}, seed);
      check_gradients({"maximum", {s0, s1}, [](Graph&, const V& x) { return maximum(x[0], x[1]); }}, seed);
      check_gradients({"minimum", {s0, s1}, [](Graph&, const V& x) { return minimum(x[0], x[1]); }}, seed);
      check_gradients(
          {"scalar ops", {s0}, [](Graph&, const V& x) { return 2.0 - (x[0] * 3.0) / 4.0 + pow(x[0], 2.0); }}, seed);
      const Shape c = broadcast_partner(a, rng);
      check_gradients({"fma", {b, a, c}, [](Graph&, const V& x) { return fma(x[0], x[1], x[2]); }}, seed);
      check_gradients(
          {"where",
           {a, b},
           [](Graph&, const V& x) { return where(gt(x[0], x[0].graph().scalar(0, f64)), x[0] * 2.0, x[1]); }},
          seed);
    }
  }
}

TEST(Gradients, MaximumSplitsTiesEvenly) {
  Graph g;
  auto a = g.input("a", {3}, f64);
  auto b = g.input("b", {3}, f64);
  auto loss = sum(maximum(a, b) + minimum(a, b) * 3.0);
  auto grads = gradients(loss, {a, b});
  auto out = test::run_train(
      loss, grads,
      {{"a", Tensor::from_vector<double>({3}, {1, 2, 3})}, {"b", Tensor::from_vector<double>({3}, {1, 5, 0})}});
  EXPECT_EQ(test::values(out[0]), (std::vector<double>{2, 3, 1}));  // tie: 0.5 + 1.5
  EXPECT_EQ(test::values(out[1]), (std::vector<double>{2, 1, 3}));
}

TEST(Gradients, ShapeOps) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    const Shape s = test::random_shape(rng, 4, 4);
    check_gradients({"reshape", {s}, [](Graph&, const V& x) { return reshape(x[0], {-1, x[0].shape()[3]}); }}, seed);
    std::vector<std::int64_t> perm{0, 1, 2, 3};
    std::shuffle(perm.begin(), perm.end(), rng);
    check_gradients({"permute", {s}, [perm](Graph&, const V& x) { return permute(x[0], perm) * 1.5; }}, seed);
    check_gradients(
        {"transpose then matmul-free ops", {s}, [](Graph&, const V& x) { return exp(transpose(x[0], 1, 3)); }}, seed);
    const std::int64_t axis = static_cast<std::int64_t>(rng() % 4);
    const std::int64_t dim = s[axis];
    const std::int64_t start = static_cast<std::int64_t>(rng() % static_cast<unsigned>(dim));
    const std::int64_t step = 1 + static_cast<std::int64_t>(rng() % 2);
    check_gradients({"slice", {s}, [=](Graph&, const V& x) { return slice(x[0], axis, start, dim, step); }}, seed);
    check_gradients(
        {"slice negative", {s}, [=](Graph&, const V& x) { return slice(x[0], axis - 4, -dim, -start - 1 + dim); }},
        seed);
    std::vector<std::int64_t> d = s.dims();
    d[static_cast<std::size_t>(axis)] = 2;
    const Shape s2(d);
    check_gradients({"concat", {s, s2, s}, [=](Graph&, const V& x) { return concat({x[0], x[1], x[2]}, axis); }}, seed);
    const Shape b = broadcast_partner(s, rng);
    check_gradients({"broadcast_to", {b}, [s](Graph&, const V& x) { return broadcast_to(x[0], s); }}, seed);
    check_gradients({"unsqueeze/squeeze/flatten",
                     {s},
                     [](Graph&, const V& x) {
                       return flatten(squeeze(unsqueeze(x[0], 2), 2), 1, 2) * x[0].graph().scalar(2, f64);
                     }},
                    seed);
  }
}

TEST(Gradients, Reductions) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    const Shape s = test::random_shape(rng, 4, 4);
    for (int trial = 0; trial < 4; ++trial) {
      Axes axes;
      for (std::int64_t a = 0; a < 4; ++a)
        if (rng() % 2) axes.push_back(rng() % 2 ? a : a - 4);  // negative axes too
      const bool keep = rng() % 2;
      check_gradients({"sum", {s}, [=](Graph&, const V& x) { return sum(x[0], axes, keep); }}, seed);
      check_gradients({"mean", {s}, [=](Graph&, const V& x) { return mean(x[0], axes, keep); }}, seed);
      check_gradients({"max", {s}, [=](Graph&, const V& x) { return max(x[0], axes, keep); }}, seed);
    }
  }
}

TEST(Gradients, MaxSharesTies) {
  Graph g;
  auto x = g.input("x", {2, 3}, f64);
  auto loss = sum(max(x, {1}));
  auto grads = gradients(loss, {x});
  auto out = test::run_train(loss, grads, {{"x", Tensor::from_vector<double>({2, 3}, {1, 4, 4, 2, 0, 1})}});
  EXPECT_EQ(test::values(out[0]), (std::vector<double>{0, 0.5, 0.5, 1, 0, 0}));
}

TEST(Gradients, Matmul) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(1, 5);
    const std::int64_t m = d(rng), k = d(rng), n = d(rng);
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const Shape a = ta ? Shape{k, m} : Shape{m, k};
        const Shape b = tb ? Shape{n, k} : Shape{k, n};
        const MatmulOptions o{ta == 1, tb == 1};
        check_gradients({"matmul 2d", {a, b}, [o](Graph&, const V& x) { return matmul(x[0], x[1], o); }}, seed);
        // Broadcast batches: a [2, 1, ...] with b [3, ...].
        const Shape ab{2, 1, a[0], a[1]}, bb{3, b[0], b[1]};
        check_gradients({"matmul batched", {ab, bb}, [o](Graph&, const V& x) { return matmul(x[0], x[1], o); }}, seed);
      }
    check_gradients(
        {"matmul vector-matrix", {Shape{k}, Shape{2, k, n}}, [](Graph&, const V& x) { return matmul(x[0], x[1]); }},
        seed);
    check_gradients(
        {"matmul matrix-vector", {Shape{m, k}, Shape{k}}, [](Graph&, const V& x) { return matmul(x[0], x[1]); }}, seed);
  }
}

TEST(Gradients, SoftmaxFamily) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    const Shape s = test::random_shape(rng, 3, 5);
    for (std::int64_t axis = -3; axis < 3; ++axis) {
      check_gradients({"softmax", {s}, [axis](Graph&, const V& x) { return softmax(x[0], axis); }, -2, 2}, seed);
      check_gradients({"log_softmax", {s}, [axis](Graph&, const V& x) { return log_softmax(x[0], axis); }, -2, 2},
                      seed);
    }
  }
}

TEST(Gradients, CrossEntropy) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    const std::int64_t rows = 2 + static_cast<std::int64_t>(rng() % 4),
                       classes = 2 + static_cast<std::int64_t>(rng() % 5);
    std::vector<std::int64_t> labels(static_cast<std::size_t>(rows * 2));
    for (auto& l : labels) l = static_cast<std::int64_t>(rng() % static_cast<unsigned>(classes));
    labels[1] = -100;  // ignored
    const Tensor lt = Tensor::from_vector<std::int64_t>({rows, 2}, labels);
    for (double smoothing : {0.0, 0.2}) {
      check_gradients({"cross_entropy",
                       {Shape{rows, 2, classes}},
                       [&](Graph& g, const V& x) {
                         return cross_entropy(x[0], g.constant(lt),
                                              {.ignore_index = -100, .label_smoothing = smoothing});
                       },
                       -2,
                       2},
                      seed);
    }
  }
}

TEST(Gradients, Embedding) {
  const Tensor idx = Tensor::from_vector<std::int32_t>({2, 3}, {0, 4, 4, 1, 0, 2});  // repeats accumulate
  check_gradients({"embedding", {Shape{5, 3}}, [&](Graph& g, const V& x) { return embedding(x[0], g.constant(idx)); }});
}

TEST(Gradients, BatchNormTrainingMode) {
  for (unsigned seed : kSeeds) {
    for (const Shape& s : {Shape{6, 3}, Shape{3, 2, 3, 2}}) {
      check_gradients({"batch_norm",
                       {s, Shape{s[1]}, Shape{s[1]}},
                       [](Graph& g, const V& x) {
                         const std::int64_t c = x[0].shape()[1];
                         auto rm = g.state("rm", {c}, init::zeros(), f64), rv = g.state("rv", {c}, init::ones(), f64);
                         return batch_norm(x[0], x[1], x[2], rm, rv);
                       },
                       -2,
                       2},
                      seed);
      check_gradients({"batch_norm without affine",
                       {s},
                       [](Graph&, const V& x) { return batch_norm(x[0], {}, {}, {}, {}); },
                       -2,
                       2},
                      seed);
    }
  }
}

TEST(Gradients, LayerNorm) {
  for (unsigned seed : kSeeds) {
    std::mt19937 rng(seed);
    const Shape s = test::random_shape(rng, 3, 5);
    for (std::int64_t k : {1, 2}) {
      std::vector<std::int64_t> trail(s.dims().end() - k, s.dims().end());
      check_gradients({"layer_norm",
                       {s, Shape(trail), Shape(trail)},
                       [k](Graph&, const V& x) { return layer_norm(x[0], x[1], x[2], {.normalized_axes = k}); },
                       -2,
                       2},
                      seed);
    }
    check_gradients({"layer_norm plain", {s}, [](Graph&, const V& x) { return layer_norm(x[0], {}, {}); }, -2, 2},
                    seed);
  }
}

TEST(Gradients, Dropout) {
  // The mask is a function of (seed, step, node): check_gradients pins the step, so the
  // function is smooth in x and its gradient is the mask scaled by 1/(1-p).
  check_gradients({"dropout", {Shape{7, 9}}, [](Graph&, const V& x) { return dropout(x[0] * 2.0, 0.3); }});
}

TEST(Gradients, SmallNetworkEndToEnd) {
  check_gradients({"mlp",
                   {Shape{4, 5}, Shape{6, 5}, Shape{6}, Shape{3, 6}},
                   [](Graph& g, const V& x) {
                     const Tensor labels = Tensor::from_vector<std::int64_t>({4}, {0, 2, 1, 2});
                     auto h = tanh(matmul(x[0], x[1], {.transpose_b = true}) + x[2]);
                     auto logits = matmul(layer_norm(h, {}, {}), x[3], {.transpose_b = true});
                     return cross_entropy(logits, g.constant(labels));
                   },
                   -1,
                   1});
}

TEST(Gradients, CastPassesTheGradientBackInTheOperandsDtype) {
  // A finite difference through f32 would drown h = 1e-6 in rounding: check exactly instead.
  // d/dx sum(w * cast(x, f32)) = cast(w, f64) elementwise, and no gradient crosses a cast
  // from an integer or bool.
  Graph g;
  auto x = g.input("x", {5}, f64);
  const Tensor w = Tensor::from_vector<float>({5}, {0.5f, -2.0f, 3.0f, 0.25f, 1.0f});
  auto loss = cast(sum(cast(x, f32) * g.constant(w)), f64) + sum(cast(cast(x, i64), f64));
  auto grads = gradients(loss, {x});
  std::mt19937 rng(8);
  auto out = test::run_train(loss, grads, {{"x", test::random_tensor({5}, f64, rng)}});
  EXPECT_EQ(test::values(out[0]), (std::vector<double>{0.5, -2.0, 3.0, 0.25, 1.0}));
  EXPECT_EQ(out[0].dtype(), f64);
}

TEST(Gradients, GlobalAveragePooling) {
  check_gradients(
      {"global_avg_pool2d", {Shape{2, 3, 4, 5}}, [](Graph&, const V& x) { return global_avg_pool2d(x[0]); }});
}

TEST(Gradients, UnreachableValuesGetZeros) {
  Graph g;
  auto x = g.input("x", {2}, f64);
  auto unused = g.input("u", {3}, f64);
  auto loss = sum(x * x);
  auto grads = gradients(loss, {x, unused});
  std::mt19937 rng(1);
  auto out = test::run_train(
      loss, grads, {{"x", Tensor::from_vector<double>({2}, {1, -2})}, {"u", test::random_tensor({3}, f64, rng)}});
  EXPECT_EQ(test::values(out[0]), (std::vector<double>{2, -4}));
  EXPECT_EQ(test::values(out[1]), (std::vector<double>{0, 0, 0}));
}

TEST(Gradients, RejectsBadRequests) {
  Graph g, other;
  auto x = g.input("x", {2});
  auto i = g.input("i", {2}, i64);
  test::expect_error([&] { gradients(x, {x}); }, ErrorKind::InvalidArgument, {"floating scalar"});
  test::expect_error([&] { gradients(sum(x), {i}); }, ErrorKind::DTypeMismatch, {"not a floating tensor"});
  test::expect_error([&] { gradients(sum(x), {other.input("y", {2})}); }, ErrorKind::InvalidArgument,
                     {"another graph"});
}

}  // namespace
}  // namespace trainrt
