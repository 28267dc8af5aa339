// compile() and Program: training steps, evaluation, variables by name, and every kind of
// bad input the issue lists — each must throw trainrt::Error naming what was expected and
// what came, and leave the Program usable.
#include <cmath>
#include <cstring>
#include <limits>

#include "test_util.h"

namespace trainrt {
namespace {

/// A small classifier: x[8, 5] -> linear(5, 4) -> relu -> linear(4, 3) -> cross_entropy(y).
struct Net {
  Graph g;
  Value x, y, logits, loss;
  Net() {
    x = g.input("x", {8, 5});
    y = g.input("y", {8}, i64);
    nn::Linear fc1(g, "fc1", 5, 4), fc2(g, "fc2", 4, 3);
    logits = fc2(relu(fc1(x)));
    loss = cross_entropy(logits, y);
  }
};

Feeds feeds_for(unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::int64_t> labels(8);
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 3);
  return {{"x", test::random_tensor({8, 5}, f32, rng)}, {"y", Tensor::from_vector<std::int64_t>({8}, labels)}};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

std::vector<Tensor> snapshot(const Program& p) {
  std::vector<Tensor> out;
  for (VariableKind k : {VariableKind::parameter, VariableKind::state, VariableKind::optimizer})
    for (const std::string& n : p.variables(k)) out.push_back(p.get(n));
  return out;
}

TEST(Program, TrainsAndCountsSteps) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{.lr = 0.5}, {.seed = 3});
  const Feeds f = feeds_for(1);
  const float first = p.step(f).get();
  float last = first;
  for (int i = 0; i < 100; ++i) last = p.step(f).get();
  EXPECT_LT(last, first * 0.7f) << "a fixed batch must be fitted";
  EXPECT_EQ(p.step_count(), 101);
  EXPECT_EQ(p.stats().steps, 101);
  EXPECT_EQ(p.stats().allocations_in_steps, 0);
  EXPECT_EQ(p.stats().blocking_waits, 0);
}

TEST(Program, SameSeedSameResultAnyThreadCount) {
  Net net;
  std::vector<std::vector<Tensor>> results;
  for (int threads : {1, 2, 1}) {
    Program p = compile(net.g, net.loss, optim::Adam{.lr = 0.01}, {.threads = threads, .seed = 7});
    for (int i = 0; i < 5; ++i) p.step(feeds_for(static_cast<unsigned>(i)));
    results.push_back(snapshot(p));
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (std::size_t i = 0; i < results[0].size(); ++i) {
    EXPECT_TRUE(same_bits(results[0][i], results[2][i])) << "run-to-run, variable " << i;
    EXPECT_TRUE(same_bits(results[0][i], results[1][i])) << "1 vs 2 threads, variable " << i;
  }
}

TEST(Program, ParallelExecutionGivesTheSameBitsForAnyThreadCount) {
  // Residual branches, weight and activation gradients side by side, updates overlapping the
  // rest of backward: 1, 2 and 4 threads, inter-op parallelism on and off, same bits.
  Graph g;
  auto x = g.input("x", {16, 4, 8, 8});
  auto y = g.input("y", {16}, i64);
  nn::Conv2d stem(g, "stem", 4, 8, {3, 3}, {.padding = {1, 1}});
  nn::Conv2d a(g, "a", 8, 8, {3, 3}, {.padding = {1, 1}}), b(g, "b", 8, 8, {1, 1});
  nn::BatchNorm2d bn(g, "bn", 8);
  nn::Linear fc(g, "fc", 8 * 16, 10);
  auto h = relu(stem(x));
  h = relu(bn(a(h)) + b(h) + h);
  auto loss = cross_entropy(fc(dropout(flatten(max_pool2d(h)), 0.2)), y);
  std::mt19937 rng(9);
  std::vector<std::int64_t> labels(16);
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 10);
  const Feeds f{{"x", test::random_tensor({16, 4, 8, 8}, f32, rng)},
                {"y", Tensor::from_vector<std::int64_t>({16}, labels)}};
  std::vector<Tensor> reference;
  for (int threads : {1, 2, 4})
    for (bool inter_op : {true, false}) {
      Program p = compile(g, loss, optim::AdamW{.lr = 0.01}, {.threads = threads, .inter_op = inter_op, .seed = 2});
      for (int i = 0; i < 4; ++i) p.step(f);
      const auto got = snapshot(p);
      if (reference.empty()) {
        reference = got;
        continue;
      }
      ASSERT_EQ(got.size(), reference.size());
      for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(same_bits(got[i], reference[i]))
            << threads << " threads, inter-op " << inter_op << ", variable " << i;
    }
}

TEST(Program, ConvolutionNetworksGiveTheSameBitsForAnyThreadCount) {
  // Large enough that every convolution is cut into several batch pieces; the weight
  // gradients sum over pieces in a fixed order.
  Graph g;
  auto x = g.input("x", {32, 8, 16, 16});
  auto y = g.input("y", {32}, i64);
  nn::Conv2d c1(g, "c1", 8, 16, {3, 3}, {.padding = {1, 1}}),
      c2(g, "c2", 16, 16, {3, 3}, {.stride = {2, 2}, .padding = {1, 1}});
  nn::BatchNorm2d bn(g, "bn", 16);
  nn::Linear head(g, "head", 16, 10);
  auto loss = cross_entropy(head(global_avg_pool2d(relu(c2(max_pool2d(relu(bn(c1(x)))))))), y);
  std::mt19937 rng(3);
  std::vector<std::int64_t> labels(32);
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 10);
  const Feeds f{{"x", test::random_tensor({32, 8, 16, 16}, f32, rng)},
                {"y", Tensor::from_vector<std::int64_t>({32}, labels)}};
  std::vector<std::vector<Tensor>> results;
  for (int threads : {1, 2}) {
    Program p = compile(g, loss, optim::Adam{.lr = 0.01}, {.threads = threads, .seed = 5});
    for (int i = 0; i < 3; ++i) p.step(f);
    results.push_back(snapshot(p));
  }
  for (std::size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(same_bits(results[0][i], results[1][i])) << "1 vs 2 threads, variable " << i;
}

TEST(Program, ParameterInitDependsOnNameAndSeedNotOrder) {
  auto build = [](bool reversed, std::uint64_t seed) {
    Graph g;
    auto x = g.input("x", {2, 3});
    Value a, b;
    if (reversed) {
      b = g.parameter("b", {4, 3}, init::kaiming_uniform());
      a = g.parameter("a", {4, 3}, init::normal(0, 1));
    } else {
      a = g.parameter("a", {4, 3}, init::normal(0, 1));
      b = g.parameter("b", {4, 3}, init::kaiming_uniform());
    }
    auto loss = sum(matmul(x, a, {.transpose_b = true}) + matmul(x, b, {.transpose_b = true}));
    return compile(g, loss, optim::None{}, {.seed = seed});
  };
  Program p1 = build(false, 1), p2 = build(true, 1), p3 = build(false, 2);
  EXPECT_TRUE(same_bits(p1.get("a"), p2.get("a")));
  EXPECT_TRUE(same_bits(p1.get("b"), p2.get("b")));
  EXPECT_FALSE(same_bits(p1.get("a"), p3.get("a")));
  // kaiming_uniform(a = 0, relu-like leaky gain sqrt(2)): bound = sqrt(6 / fan_in), fan_in = 3.
  for (double v : test::values(p1.get("b"))) EXPECT_LE(std::abs(v), std::sqrt(6.0 / 3.0));
}

TEST(Program, EvaluateUsesEvaluationModeAndChangesNothing) {
  Graph g;
  auto x = g.input("x", {6, 2});
  nn::BatchNorm2d bn(g, "bn", 2, {.momentum = 0.5});
  auto y = dropout(bn(x), 0.5);
  auto loss = mean(y * y);
  Program p = compile(g, loss, optim::None{});
  const Tensor xt = Tensor::from_vector<float>({6, 2}, {1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60});
  p.step({{"x", xt}});
  // Running statistics after one step: 0.5 * init + 0.5 * batch (variance unbiased).
  EXPECT_CLOSE(p.get("bn.running_mean"), Tensor::from_vector<float>({2}, {1.75f, 17.5f}), 1e-5, 1e-5);
  EXPECT_CLOSE(p.get("bn.running_var"), Tensor::from_vector<float>({2}, {0.5f + 0.5f * 3.5f, 0.5f + 0.5f * 350.f}),
               1e-4, 1e-5);
  const auto before = snapshot(p);
  const Tensor out = p.evaluate({{"x", xt}}, {y})[0];
  // Evaluation: (x - running_mean) / sqrt(running_var + eps), no dropout.
  const auto rm = test::values(p.get("bn.running_mean")), rv = test::values(p.get("bn.running_var"));
  const auto xv = test::values(xt), ov = test::values(out);
  for (std::size_t i = 0; i < xv.size(); ++i)
    EXPECT_NEAR(ov[i], (xv[i] - rm[i % 2]) / std::sqrt(rv[i % 2] + 1e-5), 1e-5);
  const auto after = snapshot(p);
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(same_bits(before[i], after[i]));
  EXPECT_EQ(p.step_count(), 1);
}

TEST(Program, EvaluateNeedsOnlyTheFeedsItUses) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{});
  const Feeds f = feeds_for(2);
  const Tensor logits = p.evaluate({{"x", f.items()[0].tensor}}, {net.logits})[0];
  EXPECT_EQ(logits.shape(), (Shape{8, 3}));
  test::expect_error(
      [&] {
        p.evaluate({{"x", f.items()[0].tensor}}, {net.loss});
      },
      ErrorKind::NotFound, {"missing feed 'y'", "i64[8]"});
  EXPECT_NEAR(p.evaluate_loss(f), p.evaluate(f, {net.loss})[0].item(), 1e-7);
}

TEST(Program, BadFeedsThrowAndLeaveTheProgramUsable) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{.lr = 0.1});
  Program reference = compile(net.g, net.loss, optim::SGD{.lr = 0.1});
  const Feeds good = feeds_for(3);
  const Tensor x = good.items()[0].tensor, y = good.items()[1].tensor;
  test::expect_error([&] { p.step({{"x", x}}); }, ErrorKind::NotFound, {"missing feed 'y'"});
  test::expect_error(
      [&] {
        p.step({{"x", x}, {"y", y}, {"z", x}});
      },
      ErrorKind::NotFound, {"unknown feed 'z'", "x f32[8,5]", "y i64[8]"});
  test::expect_error(
      [&] {
        p.step({{"x", Tensor::zeros({8, 6}, f32)}, {"y", y}});
      },
      ErrorKind::ShapeMismatch, {"feed 'x' must be f32[8,5], got f32[8,6]"});
  test::expect_error(
      [&] {
        p.step({{"x", x}, {"y", Tensor::zeros({8}, i32)}});
      },
      ErrorKind::DTypeMismatch, {"feed 'y' must be i64[8], got i32[8]"});
  test::expect_error([&] { p.step({{"x", x}, {"y", y}, {"x", x}}); }, ErrorKind::InvalidArgument, {"given twice"});
  test::expect_error([&] { p.step({{"x", Tensor()}, {"y", y}}); }, ErrorKind::InvalidArgument, {"undefined"});
  std::vector<std::int64_t> bad(8, 1);
  bad[5] = 7;
  test::expect_error(
      [&] {
        p.step({{"x", x}, {"y", Tensor::from_vector<std::int64_t>({8}, bad)}});
      },
      ErrorKind::InvalidArgument, {"label 7 at position 5", "[0, 3)"});
  // Nothing above changed the program: it now matches a fresh one step for step.
  EXPECT_EQ(p.step_count(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p.step(good).get(), reference.step(good).get());
  const auto a = snapshot(p), b = snapshot(reference);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i]));
}

TEST(Program, GetAndSetByName) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{.lr = 0.1, .momentum = 0.9});
  EXPECT_EQ(p.variables(VariableKind::parameter),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  const auto state = p.variables(VariableKind::optimizer);
  EXPECT_NE(std::find(state.begin(), state.end(), "fc1.weight.momentum_buffer"), state.end());
  const Tensor w = Tensor::full({4, 5}, 0.25, f32);
  p.set("fc1.weight", w);
  EXPECT_TRUE(same_bits(p.get("fc1.weight"), w));
  test::expect_error(
      [&] {
        p.set("fc1.weight", Tensor::zeros({5, 4}, f32));
      },
      ErrorKind::ShapeMismatch, {"fc1.weight", "expected f32[4,5], got f32[5,4]"});
  test::expect_error(
      [&] {
        p.set("fc1.weight", Tensor::zeros({4, 5}, f64));
      },
      ErrorKind::DTypeMismatch, {"expected f32[4,5], got f64[4,5]"});
  test::expect_error([&] { p.get("fc3.weight"); }, ErrorKind::NotFound,
                     {"fc3.weight", "known:", "fc1.weight", "fc2.bias"});
  test::expect_error([&] { p.set("nope", w); }, ErrorKind::NotFound, {"nope"});
  EXPECT_TRUE(same_bits(p.get("fc1.weight"), w));
  p.step(feeds_for(4));  // and training goes on from the value set
  EXPECT_FALSE(same_bits(p.get("fc1.weight"), w));
}

TEST(Program, CompileRejectsBadRequests) {
  Net net;
  Graph other;
  auto foreign = mean(other.input("z", {3}));
  test::expect_error([&] { compile(net.g, net.logits, optim::SGD{}); }, ErrorKind::InvalidArgument,
                     {"loss must be a floating scalar", "f32[8,3]"});
  test::expect_error([&] { compile(net.g, foreign, optim::SGD{}); }, ErrorKind::InvalidArgument, {"another graph"});
  test::expect_error([&] { compile(net.g, net.loss, optim::SGD{}, {.outputs = {foreign}}); },
                     ErrorKind::InvalidArgument, {"CompileOptions::outputs", "another graph"});
  test::expect_error([&] { compile(net.g, net.loss, optim::SGD{.lr = -1}); }, ErrorKind::InvalidArgument,
                     {"optim::SGD", "lr"});
  test::expect_error([&] { compile(net.g, net.loss, optim::Adam{.beta1 = 1.0}); }, ErrorKind::InvalidArgument,
                     {"beta1"});
  test::expect_error([&] { compile(net.g, net.loss, optim::SGD{.nesterov = true}); }, ErrorKind::InvalidArgument,
                     {"nesterov"});
  test::expect_error([&] { compile(net.g, net.loss, optim::SGD{}, {.threads = -2}); }, ErrorKind::InvalidArgument,
                     {"threads"});
  test::expect_error(
      [&] {
        compile(net.g, net.loss, optim::SGD{},
                {.loss_scaling = {.mode = LossScaling::Mode::dynamic, .backoff_factor = 2}});
      },
      ErrorKind::InvalidArgument, {"loss_scaling.backoff_factor", "in (0, 1)"});
  Program p = compile(net.g, net.loss, optim::SGD{});
  auto late = net.logits * 2.0;
  test::expect_error([&] { p.evaluate(feeds_for(1), {late}); }, ErrorKind::InvalidArgument, {"after compile()"});
  Program empty;
  test::expect_error([&] { empty.step({}); }, ErrorKind::InvalidArgument, {"empty"});
}

TEST(Program, FiniteLossGuardLeavesEverythingUnchanged) {
  Graph g;
  auto x = g.input("x", {4, 3});
  nn::Linear fc(g, "fc", 3, 2);
  nn::BatchNorm2d bn(g, "bn", 2);
  auto loss = mean(bn(fc(x)) * fc(x));
  Program p = compile(g, loss, optim::Adam{.lr = 0.1}, {.check_finite_loss = true});
  std::mt19937 rng(5);
  const Tensor good = test::random_tensor({4, 3}, f32, rng);
  p.step({{"x", good}});
  const auto before = snapshot(p);
  Tensor bad = good.clone();
  bad.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
  test::expect_error([&] { p.step({{"x", bad}}); }, ErrorKind::Runtime, {"loss is nan", "unchanged"});
  bad.data<float>()[4] = std::numeric_limits<float>::infinity();
  test::expect_error([&] { p.step({{"x", bad}}); }, ErrorKind::Runtime, {"unchanged"});
  const auto after = snapshot(p);
  ASSERT_EQ(before.size(), after.size());
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(same_bits(before[i], after[i])) << "variable " << i;
  EXPECT_EQ(p.step_count(), 1);
  EXPECT_TRUE(std::isfinite(p.step({{"x", good}}).get()));
  EXPECT_EQ(p.step_count(), 2);
}

TEST(Program, OutputsAreReturnedByEveryStep) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{}, {.outputs = {net.logits, net.loss}});
  const auto r = p.step(feeds_for(6));
  ASSERT_EQ(r.outputs().size(), 2u);
  EXPECT_EQ(r.outputs()[0].shape(), (Shape{8, 3}));
  EXPECT_FLOAT_EQ(static_cast<float>(r.outputs()[1].item()), r.get());
}

TEST(Program, MemoryIsPlannedAndReused) {
  Net net;
  Program p = compile(net.g, net.loss, optim::SGD{.momentum = 0.9});
  const MemoryReport m = p.memory_report();
  EXPECT_GT(m.arena_bytes, 0u);
  EXPECT_LT(m.arena_bytes, m.naive_bytes);
  // 4*5 + 4 + 3*4 + 3 parameters and as many momentum buffers, plus the step counter and
  // the base and current learning rates (8 bytes each).
  EXPECT_EQ(m.variable_bytes, 2 * 4u * (20 + 4 + 12 + 3) + 3 * 8u);
  EXPECT_NE(m.to_string().find("arena"), std::string::npos);
  ASSERT_FALSE(m.largest.empty());
  EXPECT_GE(m.largest.front().bytes, m.largest.back().bytes);
  EXPECT_NE(m.largest.front().op.find("program_test.cpp:"), std::string::npos) << m.largest.front().op;
  EXPECT_NE(m.to_string().find(m.largest.front().type), std::string::npos);
}

TEST(Program, RecomputationUnderAMemoryBudgetChangesNothingButMemory) {
  // conv -> batch norm -> relu blocks keep, without a budget, both the normalized and the
  // activated tensors for backward; recomputing them from the convolution's output saves
  // memory and must give the same bits.
  Graph g;
  auto x = g.input("x", {16, 4, 12, 12});
  auto y = g.input("y", {16}, i64);
  Value h = x;
  std::int64_t in = 4;
  for (int b = 0; b < 3; ++b) {
    const std::string name = "b" + std::to_string(b);
    nn::Conv2d conv(g, name + ".conv", in, 8, {3, 3}, {.padding = {1, 1}}, false);
    nn::BatchNorm2d bn(g, name + ".bn", 8);
    h = gelu(bn(conv(h)) * 2.0);
    in = 8;
  }
  nn::Linear fc(g, "fc", 8, 10);
  auto loss = cross_entropy(fc(global_avg_pool2d(h)), y);
  std::mt19937 rng(12);
  std::vector<std::int64_t> labels(16);
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 10);
  const Feeds f{{"x", test::random_tensor({16, 4, 12, 12}, f32, rng)},
                {"y", Tensor::from_vector<std::int64_t>({16}, labels)}};
  Program full = compile(g, loss, optim::Adam{.lr = 0.01}, {.seed = 4});
  Program lean = compile(g, loss, optim::Adam{.lr = 0.01}, {.seed = 4, .memory_budget = 1});
  const MemoryReport a = full.memory_report(), b = lean.memory_report();
  EXPECT_EQ(a.recomputed, 0u);
  EXPECT_GT(b.recomputed, 0u);
  EXPECT_LT(b.arena_bytes, a.arena_bytes) << a.to_string() << "\n" << b.to_string();
  EXPECT_NE(b.to_string().find("recomputed in backward"), std::string::npos);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(full.step(f).get(), lean.step(f).get()) << "step " << i;
  const auto va = snapshot(full), vb = snapshot(lean);
  for (std::size_t i = 0; i < va.size(); ++i) EXPECT_TRUE(same_bits(va[i], vb[i])) << "variable " << i;
  // A budget already met changes nothing.
  Program roomy = compile(g, loss, optim::Adam{.lr = 0.01}, {.seed = 4, .memory_budget = std::size_t{1} << 40});
  EXPECT_EQ(roomy.memory_report().recomputed, 0u);
}

TEST(Program, MovedProgramsKeepWorking) {
  Net net;
  Program a = compile(net.g, net.loss, optim::SGD{});
  Program b = std::move(a);
  EXPECT_TRUE(std::isfinite(b.step(feeds_for(1)).get()));
}

}  // namespace
}  // namespace trainrt

namespace trainrt {
namespace {
TEST(Program, FetchingAnInputOrAReshapeOfOneReturnsTheFeed) {
  Graph g;
  auto x = g.input("x", {2, 3});
  auto w = g.parameter("w", {2, 3}, init::ones());
  auto loss = mean(x * w);
  auto flat = reshape(x, {6});
  Program p = compile(g, loss, optim::SGD{.lr = 0.1}, {.outputs = {reshape(x, {3, 2})}});
  const Tensor xs = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const std::vector<Tensor> out = p.evaluate({{"x", xs}}, {x, flat});
  EXPECT_EQ(test::values(out.at(0)), test::values(xs));
  EXPECT_EQ(test::values(out.at(1)), test::values(xs));
  const StepResult r = p.step({{"x", xs}});
  EXPECT_EQ(test::values(r.outputs().at(0)), test::values(xs));
}
}  // namespace
}  // namespace trainrt
