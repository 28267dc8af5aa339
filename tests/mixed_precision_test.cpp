// Mixed precision on the CPU: autocast (CompileOptions::precision), dynamic loss scaling
// (CompileOptions::loss_scaling) and global-norm clipping (CompileOptions::max_grad_norm).
//
// The CPU stores autocast's 16-bit tensors in 16 bits and computes in f32, so these tests see
// the rounding of a mixed-precision step exactly; the overflow tests make a real f16 overflow.
#include <cmath>
#include <cstring>
#include <random>

#include "compile/program_cache.h"
#include "core/half.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "passes/pipeline.h"
#include "test_util.h"

namespace trainrt {
namespace {

using detail::id_of;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.nbytes() == b.nbytes() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

/// x [1, 2] times a parameter w [2, 1] set to (1, 0): the product is x[0], rounded to the
/// matmul's compute dtype.
struct Product {
  Graph g;
  Value x, w, y, loss;
  Product() {
    x = g.input("x", {1, 2});
    w = g.parameter("w", {2, 1}, init::zeros());
    y = matmul(x, w);
    loss = sum(y);
  }
  float evaluate(Precision p, float x0) {
    Program prog = compile(g, loss, optim::SGD{.lr = 0.0}, {.precision = p});
    prog.set("w", Tensor::from_vector<float>({2, 1}, {1.0f, 0.0f}));
    const std::vector<Tensor> out = prog.evaluate({{"x", Tensor::from_vector<float>({1, 2}, {x0, 0.0f})}}, {y});
    EXPECT_EQ(out[0].dtype(), f32) << "a fetched value keeps the graph's dtype";
    return out[0].data<float>()[0];
  }
};

TEST(Autocast, MatmulRoundsItsOperandsToTheLowDtype) {
  Product p;
  const float bf16_tie = 1.0f + std::ldexp(1.0f, -10);  // below bf16's precision, within f16's
  EXPECT_EQ(p.evaluate(Precision::f32, bf16_tie), bf16_tie);
  EXPECT_EQ(p.evaluate(Precision::bf16, bf16_tie), 1.0f);
  EXPECT_EQ(p.evaluate(Precision::f16, bf16_tie), bf16_tie);
  const float f16_tie = 1.0f + std::ldexp(1.0f, -12);  // below f16's precision
  EXPECT_EQ(p.evaluate(Precision::f16, f16_tie), 1.0f);
  EXPECT_EQ(p.evaluate(Precision::f32, f16_tie), f16_tie);
}

/// A two-layer classifier with layer norm: matmuls autocast, norm, softmax and loss in f32.
struct Classifier {
  Graph g;
  Value loss, logits;
  Classifier() {
    const Value x = g.input("x", {16, 8});
    const Value y = g.input("y", {16}, i64);
    const Value w1 = g.parameter("w1", {8, 32}, init::normal(0.0, 0.3));
    const Value b1 = g.parameter("b1", {32}, init::zeros());
    const Value w2 = g.parameter("w2", {32, 4}, init::normal(0.0, 0.3));
    const Value h = relu(layer_norm(matmul(x, w1) + b1, {}, {}));
    logits = matmul(h, w2);
    loss = cross_entropy(logits, y);
  }
  static Feeds feeds() {
    Tensor x = Tensor::empty({16, 8}, f32), y = Tensor::empty({16}, i64);
    for (std::int64_t i = 0; i < 16; ++i) {
      y.data<std::int64_t>()[i] = i % 4;
      for (std::int64_t j = 0; j < 8; ++j)
        x.data<float>()[i * 8 + j] =
            static_cast<float>((j % 4 == i % 4 ? 1.0 : 0.0) + 0.05 * static_cast<double>((i * 3 + j) % 5));
    }
    return {{"x", x}, {"y", y}};
  }
};

TEST(Autocast, TrainsWithF32MasterWeightsInBf16AndF16) {
  std::vector<float> finals;
  for (Precision p : {Precision::f32, Precision::bf16, Precision::f16}) {
    Classifier c;
    Program prog = compile(c.g, c.loss, optim::Adam{.lr = 0.01}, {.precision = p, .seed = 3});
    const float first = prog.step(Classifier::feeds()).get();
    float last = first;
    for (int s = 0; s < 40; ++s) last = prog.step(Classifier::feeds()).get();
    EXPECT_LT(last, 0.2f * first) << "precision " << static_cast<int>(p);
    for (const std::string& name : prog.variables(VariableKind::parameter)) EXPECT_EQ(prog.get(name).dtype(), f32);
    EXPECT_EQ(prog.get("w1.exp_avg").dtype(), f32) << "optimizer state is f32 too";
    finals.push_back(last);
  }
  // The 16-bit runs follow the f32 one closely (same seed, same data).
  EXPECT_NEAR(finals[1], finals[0], 0.05 + 0.1 * finals[0]);
  EXPECT_NEAR(finals[2], finals[0], 0.05 + 0.1 * finals[0]);
}

TEST(Autocast, TheStepShowsSixteenBitMatmulsAndF32Normalization) {
  Classifier c;
  Program prog = compile(c.g, c.loss, optim::SGD{.lr = 0.1}, {.precision = Precision::bf16});
  const std::string ir = prog.to_string();
  EXPECT_NE(ir.find("bf16"), std::string::npos) << ir;
  // Under f32 the graph has no 16-bit tensor at all.
  Program plain = compile(c.g, c.loss, optim::SGD{.lr = 0.1});
  EXPECT_EQ(plain.to_string().find("bf16"), std::string::npos);
  EXPECT_EQ(prog.get("optim.step").dtype(), i64);
}

/// Every variable of `p` except the step counter and those named in `moving`.
std::map<std::string, Tensor> snapshot(const Program& p) {
  std::map<std::string, Tensor> out;
  for (VariableKind k : {VariableKind::parameter, VariableKind::state, VariableKind::optimizer})
    for (const std::string& name : p.variables(k)) out.emplace(name, p.get(name));
  return out;
}

TEST(LossScaling, AnOverflowingStepKeepsEveryParameterAndStateBitIdentical) {
  const std::vector<optim::Optimizer> optimizers{optim::SGD{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3},
                                                 optim::Adam{.lr = 0.01}, optim::AdamW{.lr = 0.01, .weight_decay = 0.1},
                                                 optim::LAMB{.lr = 0.01}};
  for (const optim::Optimizer& optimizer : optimizers) {
    SCOPED_TRACE(optimizer.index());
    Classifier c;
    Program prog =
        compile(c.g, c.loss, optimizer,
                {.precision = Precision::f16, .loss_scaling = {.init_scale = 1024.0, .growth_interval = 1000}});
    for (int s = 0; s < 3; ++s) prog.step(Classifier::feeds());
    EXPECT_EQ(prog.get("amp.overflow").data<float>()[0], 0.0f);
    EXPECT_EQ(prog.get("amp.loss_scale").data<float>()[0], 1024.0f);
    EXPECT_EQ(prog.get("amp.growth_tracker").data<std::int64_t>()[0], 3);
    EXPECT_EQ(prog.get("optim.applied_steps").data<std::int64_t>()[0], 3);

    // An injected scale of 2^30 takes the scaled gradients (f16 between the matmuls) far
    // beyond f16's 65504: they overflow to infinity.
    prog.set("amp.loss_scale", Tensor::from_vector<float>({}, {std::ldexp(1.0f, 30)}));
    const std::map<std::string, Tensor> before = snapshot(prog);
    const float loss = prog.step(Classifier::feeds()).get();
    EXPECT_TRUE(std::isfinite(loss)) << "the loss itself is unscaled and finite";
    EXPECT_EQ(prog.get("amp.overflow").data<float>()[0], 1.0f);
    EXPECT_EQ(prog.get("amp.loss_scale").data<float>()[0], std::ldexp(1.0f, 29)) << "backed off by 0.5";
    EXPECT_EQ(prog.get("amp.growth_tracker").data<std::int64_t>()[0], 0);
    EXPECT_EQ(prog.step_count(), 4) << "the step counter (the schedule's clock) still moves";
    const std::map<std::string, Tensor> after = snapshot(prog);
    int compared = 0;
    for (const auto& [name, value] : before) {
      if (name.rfind("amp.", 0) == 0 || name == "optim.step" || name == "optim.lr") continue;
      EXPECT_TRUE(same_bits(value, after.at(name))) << name << " changed on a skipped step";
      ++compared;
    }
    EXPECT_GE(compared, 7) << "parameters, their state, applied steps";

    // The scale backs off step by step until the gradients fit again; the first clean step
    // updates the parameters, and the skipped ones left no trace.
    int skipped = 1;
    while (skipped < 40 && prog.get("amp.overflow").data<float>()[0] != 0.0f) {
      EXPECT_TRUE(same_bits(prog.get("w1"), after.at("w1")));
      prog.step(Classifier::feeds());
      ++skipped;
    }
    EXPECT_EQ(prog.get("amp.overflow").data<float>()[0], 0.0f);
    EXPECT_GT(skipped, 5) << "2^29 overflows for several more steps";
    EXPECT_FALSE(same_bits(prog.get("w1"), after.at("w1")));
    EXPECT_EQ(prog.get("optim.applied_steps").data<std::int64_t>()[0], 4);
    EXPECT_EQ(prog.step_count(), 3 + skipped);
  }
}

TEST(LossScaling, TheScaleGrowsAfterGrowthIntervalCleanSteps) {
  Classifier c;
  Program prog = compile(c.g, c.loss, optim::SGD{.lr = 0.05},
                         {.precision = Precision::f16, .loss_scaling = {.init_scale = 8.0, .growth_interval = 3}});
  const std::vector<float> scales{8, 8, 16, 16, 16, 32};
  const std::vector<std::int64_t> trackers{1, 2, 0, 1, 2, 0};
  for (std::size_t s = 0; s < scales.size(); ++s) {
    prog.step(Classifier::feeds());
    EXPECT_EQ(prog.get("amp.loss_scale").data<float>()[0], scales[s]) << "after step " << s + 1;
    EXPECT_EQ(prog.get("amp.growth_tracker").data<std::int64_t>()[0], trackers[s]) << "after step " << s + 1;
  }
}

TEST(LossScaling, APowerOfTwoScaleChangesNoBitOfAnF32Run) {
  // Scaling by 2^k and unscaling by 2^-k are exact in f32 while nothing overflows or
  // underflows, so a scaled f32 run is the unscaled run, bit for bit.
  std::vector<std::map<std::string, Tensor>> runs;
  for (LossScaling::Mode mode : {LossScaling::Mode::off, LossScaling::Mode::dynamic}) {
    Classifier c;
    Program prog = compile(c.g, c.loss, optim::Adam{.lr = 0.01},
                           {.loss_scaling = {.mode = mode, .init_scale = 4096.0}, .seed = 5});
    for (int s = 0; s < 5; ++s) prog.step(Classifier::feeds());
    runs.push_back(snapshot(prog));
  }
  for (const auto& [name, value] : runs[0]) EXPECT_TRUE(same_bits(value, runs[1].at(name))) << name;
  EXPECT_TRUE(runs[1].contains("amp.loss_scale"));
  EXPECT_FALSE(runs[0].contains("amp.loss_scale"));
}

TEST(LossScaling, BadSettingsAreRefusedByName) {
  Classifier c;
  auto bad = [&](const LossScaling& l, const char* field) {
    test::expect_error([&] { compile(c.g, c.loss, optim::SGD{}, {.precision = Precision::f16, .loss_scaling = l}); },
                       ErrorKind::InvalidArgument, {field});
  };
  bad({.init_scale = 0}, "loss_scaling.init_scale");
  bad({.init_scale = INFINITY}, "loss_scaling.init_scale");
  bad({.growth_factor = 1.0}, "loss_scaling.growth_factor");
  bad({.backoff_factor = 1.0}, "loss_scaling.backoff_factor");
  bad({.backoff_factor = 0.0}, "loss_scaling.backoff_factor");
  bad({.growth_interval = 0}, "loss_scaling.growth_interval");
  test::expect_error([&] { compile(c.g, c.loss, optim::SGD{}, {.max_grad_norm = -1}); }, ErrorKind::InvalidArgument,
                     {"max_grad_norm"});
  // Loss scaling's variables have reserved names.
  Graph g;
  const Value w = g.parameter("amp.loss_scale", {2}, init::ones());
  test::expect_error([&] { compile(g, sum(w * w), optim::SGD{}, {.precision = Precision::f16}); },
                     ErrorKind::InvalidArgument, {"amp.loss_scale", "reserved"});
}

TEST(Clipping, ScalesTheGradientsToTheGlobalNorm) {
  // loss = sum(a * [3, 0]) + sum(b * [0, 4]): the gradients are [3, 0] and [0, 4], norm 5.
  for (double max_norm : {1.0, 10.0}) {
    Graph g;
    const Value a = g.parameter("a", {2}, init::ones()), b = g.parameter("b", {2}, init::ones());
    const Value loss = sum(a * g.constant(Tensor::from_vector<float>({2}, {3, 0}))) +
                       sum(b * g.constant(Tensor::from_vector<float>({2}, {0, 4})));
    Program prog = compile(g, loss, optim::SGD{.lr = 1.0}, {.max_grad_norm = max_norm});
    prog.step({});
    EXPECT_FLOAT_EQ(prog.get("optim.grad_norm").data<float>()[0], 5.0f);
    const double coef = std::min(1.0, max_norm / (5.0 + 1e-6));
    EXPECT_FLOAT_EQ(prog.get("a").data<float>()[0], static_cast<float>(1.0 - 3.0 * coef));
    EXPECT_FLOAT_EQ(prog.get("a").data<float>()[1], 1.0f);
    EXPECT_FLOAT_EQ(prog.get("b").data<float>()[1], static_cast<float>(1.0 - 4.0 * coef));
  }
}

TEST(Clipping, WorksAfterUnscaling) {
  // Under f16 with a loss scale, the norm is the norm of the true gradients.
  Graph g;
  const Value a = g.parameter("a", {2}, init::ones());
  const Value loss = sum(a * g.constant(Tensor::from_vector<float>({2}, {3, 4})));
  Program prog = compile(g, loss, optim::SGD{.lr = 1.0},
                         {.precision = Precision::f16, .loss_scaling = {.init_scale = 256.0}, .max_grad_norm = 1.0});
  prog.step({});
  EXPECT_FLOAT_EQ(prog.get("optim.grad_norm").data<float>()[0], 5.0f);
  EXPECT_NEAR(prog.get("a").data<float>()[0], 1.0 - 0.6, 1e-6);
  EXPECT_NEAR(prog.get("a").data<float>()[1], 1.0 - 0.8, 1e-6);
}

TEST(MixedPrecision, ACheckpointCarriesTheLossScaleAndResumesTheSameSteps) {
  // 8 f16 steps straight, against 4 steps, a checkpoint, a fresh Program loading it and 4
  // more. A growth interval of 3 and an injected overflow make the scale move on both sides
  // of the checkpoint: the loss scale, its counter and the applied-step count must travel.
  test::TempDir dir;
  const CompileOptions options{.precision = Precision::f16,
                               .loss_scaling = {.init_scale = 256.0, .growth_interval = 3},
                               .max_grad_norm = 5.0,
                               .seed = 9};
  auto run = [&](Program& p, int from, int to, std::vector<float>& losses) {
    for (int s = from; s < to; ++s) {
      if (s == 2) p.set("amp.loss_scale", Tensor::from_vector<float>({}, {std::ldexp(1.0f, 30)}));
      losses.push_back(p.step(Classifier::feeds()).get());
    }
  };
  std::vector<float> straight, resumed;
  Classifier a;
  Program one = compile(a.g, a.loss, optim::Adam{.lr = 0.02}, options);
  run(one, 0, 8, straight);

  Classifier b;
  Program first = compile(b.g, b.loss, optim::Adam{.lr = 0.02}, options);
  run(first, 0, 4, resumed);
  save_checkpoint(first, dir.file("ck.safetensors"));
  Program second = compile(b.g, b.loss, optim::Adam{.lr = 0.02}, options);
  load_checkpoint(second, dir.file("ck.safetensors"));
  EXPECT_EQ(second.get("amp.loss_scale").data<float>()[0], first.get("amp.loss_scale").data<float>()[0]);
  run(second, 4, 8, resumed);

  EXPECT_EQ(straight, resumed);
  const std::map<std::string, Tensor> x = snapshot(one), y = snapshot(second);
  for (const auto& [name, value] : x) EXPECT_TRUE(same_bits(value, y.at(name))) << name;
  EXPECT_LT(one.get("optim.applied_steps").data<std::int64_t>()[0], 8) << "the injected overflow skipped steps";
}

/// gradient_stats (one pass over every gradient: found, sum of squares) over four tensors of
/// four dtypes, fed as f32 and cast in the graph. `big` spans several of the kernel's chunks
/// and ends in a partial one.
struct StatsGraph {
  static constexpr std::int64_t kBig = 300001;
  Graph g;
  std::vector<Value> out;
  StatsGraph() {
    const Value big = g.input("big", {kBig});
    const Value half = cast(g.input("half", {37}), f16);
    const Value brain = cast(g.input("brain", {5, 7}), bf16);
    const Value wide = cast(g.input("wide", {1000}), f64);
    out = detail::gradient_stats({big, half, brain, wide}, Loc::current());
  }
  static std::vector<std::vector<float>> values() {
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.0f, 2.0f);
    std::vector<std::vector<float>> v{std::vector<float>(kBig), std::vector<float>(37), std::vector<float>(35),
                                      std::vector<float>(1000)};
    for (auto& t : v)
      for (float& x : t) x = d(rng);
    return v;
  }
  /// {found, sum of squares} for these values, with `threads` threads.
  std::pair<bool, float> run(const std::vector<std::vector<float>>& v, int threads) {
    Program p = compile(g, out[1], optim::None{}, {.threads = threads});
    const std::vector<Tensor> r = p.evaluate({{"big", Tensor::from_vector<float>({kBig}, v[0])},
                                              {"half", Tensor::from_vector<float>({37}, v[1])},
                                              {"brain", Tensor::from_vector<float>({5, 7}, v[2])},
                                              {"wide", Tensor::from_vector<float>({1000}, v[3])}},
                                             out);
    return {r[0].data<bool>()[0], r[1].data<float>()[0]};
  }
};

TEST(GradientStats, MatchesAnF64ReferenceOverMixedDtypesAndAnyThreadCount) {
  StatsGraph s;
  const auto v = s.values();
  double ref = 0;
  for (float x : v[0]) ref += double(x) * x;
  for (float x : v[1]) {
    const double h = detail::half_to_float(detail::float_to_half(x));
    ref += h * h;
  }
  for (float x : v[2]) {
    const double b = detail::bf16_to_float(detail::float_to_bf16(x));
    ref += b * b;
  }
  for (float x : v[3]) ref += double(x) * x;
  const auto [found1, sum1] = s.run(v, 1);
  const auto [found2, sum2] = s.run(v, 2);
  EXPECT_FALSE(found1);
  EXPECT_NEAR(sum1, ref, ref * 1e-7);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(sum1), std::bit_cast<std::uint32_t>(sum2)) << "same bits on 1 and 2 threads";
}

TEST(GradientStats, FindsOneInfinityOrNaNAnywhere) {
  StatsGraph s;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::size_t tensor, index;
    float value;
    const char* what;
  };
  const Case cases[] = {{0, 0, inf, "the first element"},
                        {0, 3 * 65536 + 17, -inf, "inside a later chunk"},
                        {0, StatsGraph::kBig - 1, nan, "the last element of a partial chunk"},
                        {1, 36, 1e6f, "an f16 overflow (1e6 is inf in f16)"},
                        {2, 20, nan, "a bf16 NaN"},
                        {3, 999, inf, "an f64 infinity"}};
  for (const Case& c : cases) {
    auto v = s.values();
    v[c.tensor][c.index] = c.value;
    EXPECT_TRUE(s.run(v, 2).first) << c.what;
  }
  // Finite gradients whose sum of squares exceeds f32 are not an overflow: found stays false.
  auto v = s.values();
  v[3][5] = 3e38f;
  v[3][6] = 3e38f;
  const auto [found, squares] = s.run(v, 2);
  EXPECT_FALSE(found);
  EXPECT_TRUE(std::isinf(squares)) << "its square does not fit an f32";
}

TEST(MixedPrecision, PrecisionScalingAndClippingArePartOfTheProgramCacheKey) {
  Classifier c;
  const detail::GraphImpl& source = c.g.impl();
  auto key = [&](auto&& edit) {
    detail::TrainingRequest r{id_of(c.loss), {}, optim::SGD{}, 0, 0, true};
    edit(r);
    return detail::training_graph_key(source, r).hex();
  };
  const std::string base = key([](detail::TrainingRequest&) {});
  EXPECT_NE(base, key([](detail::TrainingRequest& r) { r.autocast = bf16; }));
  EXPECT_NE(key([](detail::TrainingRequest& r) { r.autocast = bf16; }),
            key([](detail::TrainingRequest& r) { r.autocast = f16; }));
  EXPECT_NE(base, key([](detail::TrainingRequest& r) { r.guard.scale = true; }));
  EXPECT_NE(key([](detail::TrainingRequest& r) { r.guard.scale = true; }), key([](detail::TrainingRequest& r) {
              r.guard.scale = true;
              r.guard.growth_interval = 7;
            }));
  EXPECT_NE(base, key([](detail::TrainingRequest& r) { r.guard.max_grad_norm = 1.0; }));
}

}  // namespace
}  // namespace trainrt
