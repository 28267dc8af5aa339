// Optimizers and learning-rate schedules compiled into the step, against a reference
// implementation of torch.optim's update rules written out here in double precision.
//
// The loss 0.5 * sum((w - t)^2) has gradient w - t, so the reference needs no autodiff.
// Parameters are f64 and so is the optimizer's scalar math; the graph and the reference
// differ only in rounding (the graph uses fma and rsqrt), hence the 1e-12 relative tolerance.
#include <cmath>
#include <numbers>

#include "compile/program_cache.h"
#include "ir/builder.h"
#include "test_util.h"

namespace trainrt {
namespace {

const std::vector<double> kInit{0.5, -1.5, 2.0, 0.25, -0.75};
const std::vector<double> kTarget{1.0, 0.0, -1.0, 0.5, 3.0};

struct Problem {
  Graph g;
  Value w, loss;
  Problem() {
    w = g.parameter("w", {5}, init::zeros(), f64);
    const Value t = g.constant(Tensor::from_vector<double>({5}, kTarget));
    const Value d = w - t;
    loss = sum(d * d) * 0.5;
  }
};

Program start(Problem& p, const optim::Optimizer& o) {
  Program prog = compile(p.g, p.loss, o);
  prog.set("w", Tensor::from_vector<double>({5}, kInit));
  return prog;
}

struct Ref {
  std::vector<double> w = kInit, buf = std::vector<double>(5, 0), m = std::vector<double>(5, 0),
                      v = std::vector<double>(5, 0);
  int t = 0;
  std::vector<double> grad() const {
    std::vector<double> g(5);
    for (int i = 0; i < 5; ++i)
      g[static_cast<std::size_t>(i)] = w[static_cast<std::size_t>(i)] - kTarget[static_cast<std::size_t>(i)];
    return g;
  }
  void sgd(const optim::SGD& o, double lr) {
    auto g = grad();
    for (std::size_t i = 0; i < 5; ++i) {
      double d = g[i] + o.weight_decay * w[i];
      if (o.momentum != 0) {
        buf[i] = t == 0 ? d : o.momentum * buf[i] + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      w[i] -= lr * d;
    }
    ++t;
  }
  template <class A>
  void adam(const A& o, bool decoupled, double lr) {
    auto g = grad();
    ++t;
    for (std::size_t i = 0; i < 5; ++i) {
      if (decoupled) w[i] *= 1 - lr * o.weight_decay;
      const double gi = decoupled ? g[i] : g[i] + o.weight_decay * w[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
      const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
      w[i] -= lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.eps);
    }
  }
};

void expect_vec(const Tensor& got, const std::vector<double>& want, const char* what, int step) {
  const auto v = test::values(got);
  ASSERT_EQ(v.size(), want.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(v[i], want[i], 1e-12 * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "] after step " << step;
}

TEST(Optimizers, SgdVariantsMatchTorchRules) {
  const optim::SGD cases[] = {
      {.lr = 0.1},
      {.lr = 0.1, .momentum = 0.9},
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.3},
      {.lr = 0.05, .momentum = 0.8, .nesterov = true},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01},
  };
  for (const optim::SGD& o : cases) {
    Problem p;
    Program prog = start(p, o);
    Ref ref;
    for (int s = 1; s <= 6; ++s) {
      prog.step({});
      ref.sgd(o, o.lr);
      expect_vec(prog.get("w"), ref.w, "w", s);
      if (o.momentum != 0) expect_vec(prog.get("w.momentum_buffer"), ref.buf, "momentum_buffer", s);
    }
  }
}

TEST(Optimizers, AdamAndAdamWMatchTorchRules) {
  for (double wd : {0.0, 0.1}) {
    const optim::Adam a{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = wd};
    Problem p;
    Program prog = start(p, a);
    Ref ref;
    for (int s = 1; s <= 6; ++s) {
      prog.step({});
      ref.adam(a, false, a.lr);
      expect_vec(prog.get("w"), ref.w, "adam w", s);
      expect_vec(prog.get("w.exp_avg"), ref.m, "exp_avg", s);
      expect_vec(prog.get("w.exp_avg_sq"), ref.v, "exp_avg_sq", s);
    }
    const optim::AdamW aw{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = wd};
    Problem q;
    Program prog2 = start(q, aw);
    Ref ref2;
    for (int s = 1; s <= 6; ++s) {
      prog2.step({});
      ref2.adam(aw, true, aw.lr);
      expect_vec(prog2.get("w"), ref2.w, "adamw w", s);
    }
  }
}

// LAMB on three parameters of different norms, so that a ratio computed over all of them at
// once, or not per parameter, shows: "w" starts at kInit; "z" starts at zeros (||p|| = 0 on
// the first step: ratio 1, not 0); "still" is zero at its target, so its gradient and its
// update stay 0 (both norms 0: ratio 1, and no 0/0 reaches the parameter).
const std::vector<double> kZTarget{2.0, -1.0, 0.5};

template <class T>
struct LambProblem {
  Graph g;
  Value loss;
  explicit LambProblem(DType dtype) {
    const Value w = g.parameter("w", {5}, init::zeros(), dtype);
    const Value z = g.parameter("z", {3}, init::zeros(), dtype);
    const Value still = g.parameter("still", {2}, init::zeros(), dtype);
    const Value tw = g.constant(Tensor::from_vector<T>({5}, std::vector<T>(kTarget.begin(), kTarget.end())));
    const Value tz = g.constant(Tensor::from_vector<T>({3}, std::vector<T>(kZTarget.begin(), kZTarget.end())));
    const Value dw = w - tw, dz = z - tz;
    loss = sum(dw * dw) * 0.5 + sum(dz * dz) * 0.5 + sum(still * still) * 0.5;
  }
};

/// The LAMB rule written out in double, one parameter at a time.
struct LambRef {
  struct Param {
    const char* name;
    std::vector<double> w, target, m, v;
    double last_raw_ratio = 0;  // before the clamp
  };
  std::vector<Param> params{{"w", kInit, kTarget, {}, {}},
                            {"z", std::vector<double>(3, 0.0), kZTarget, {}, {}},
                            {"still", std::vector<double>(2, 0.0), std::vector<double>(2, 0.0), {}, {}}};
  int t = 0;
  void step(const optim::LAMB& o) {
    ++t;
    for (Param& p : params) {
      const std::size_t n = p.w.size();
      p.m.resize(n, 0.0);
      p.v.resize(n, 0.0);
      std::vector<double> u(n);
      for (std::size_t i = 0; i < n; ++i) {
        const double g = p.w[i] - p.target[i];
        p.m[i] = o.beta1 * p.m[i] + (1 - o.beta1) * g;
        p.v[i] = o.beta2 * p.v[i] + (1 - o.beta2) * g * g;
        const double mh = o.bias_correction ? p.m[i] / (1 - std::pow(o.beta1, t)) : p.m[i];
        const double vh = o.bias_correction ? p.v[i] / (1 - std::pow(o.beta2, t)) : p.v[i];
        u[i] = mh / (std::sqrt(vh) + o.eps) + o.weight_decay * p.w[i];
      }
      double pn = 0, un = 0;
      for (std::size_t i = 0; i < n; ++i) {
        pn += p.w[i] * p.w[i];
        un += u[i] * u[i];
      }
      pn = std::sqrt(pn);
      un = std::sqrt(un);
      double r = pn > 0 && un > 0 ? pn / un : 1.0;
      p.last_raw_ratio = r;
      if (o.max_trust_ratio > 0) r = std::min(r, o.max_trust_ratio);
      for (std::size_t i = 0; i < n; ++i) p.w[i] -= o.lr * r * u[i];
    }
  }
};

Program start_lamb(LambProblem<double>& p, const optim::LAMB& o) {
  Program prog = compile(p.g, p.loss, o);
  prog.set("w", Tensor::from_vector<double>({5}, kInit));
  return prog;
}

TEST(Optimizers, LambMatchesTheReferenceRule) {
  struct Case {
    const char* what;
    optim::LAMB o;
    bool clamps;  // the reference must see a raw ratio above max_trust_ratio
  };
  const Case cases[] = {
      {"bias correction", {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = 0, .max_trust_ratio = 0}, false},
      {"no bias correction",
       {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = 0, .bias_correction = false, .max_trust_ratio = 0},
       false},
      {"weight decay", {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = 0.1, .max_trust_ratio = 0}, false},
      {"clamped", {.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-8, .max_trust_ratio = 0.5}, true},
      {"defaults", {.lr = 0.05}, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    LambProblem<double> p(f64);
    Program prog = start_lamb(p, c.o);
    LambRef ref;
    bool clamped = false;
    for (int s = 1; s <= 6; ++s) {
      prog.step({});
      ref.step(c.o);
      for (const LambRef::Param& q : ref.params) {
        expect_vec(prog.get(q.name), q.w, q.name, s);
        expect_vec(prog.get(std::string(q.name) + ".exp_avg"), q.m, "exp_avg", s);
        expect_vec(prog.get(std::string(q.name) + ".exp_avg_sq"), q.v, "exp_avg_sq", s);
        clamped = clamped || (c.o.max_trust_ratio > 0 && q.last_raw_ratio > c.o.max_trust_ratio);
      }
    }
    EXPECT_EQ(clamped, c.clamps) << "the case does not exercise what it says";
    // "z" moved off zero (its first ratio was 1, not 0); "still" stayed exactly zero.
    EXPECT_NE(test::values(prog.get("z"))[0], 0.0);
    EXPECT_EQ(test::values(prog.get("still")), std::vector<double>(2, 0.0));
  }
}

TEST(Optimizers, LambWithFloatParametersMatchesTheReference) {
  const optim::LAMB o{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .weight_decay = 0.1, .max_trust_ratio = 1.0};
  LambProblem<float> p(f32);
  Program prog = compile(p.g, p.loss, o);
  prog.set("w", Tensor::from_vector<float>({5}, std::vector<float>(kInit.begin(), kInit.end())));
  LambRef ref;
  for (int s = 1; s <= 6; ++s) {
    prog.step({});
    ref.step(o);
    for (const LambRef::Param& q : ref.params) {
      const auto got = test::values(prog.get(q.name));
      ASSERT_EQ(got.size(), q.w.size());
      for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], q.w[i], 1e-5 * std::max(1.0, std::abs(q.w[i]))) << q.name << "[" << i << "] step " << s;
    }
  }
}

TEST(Optimizers, LambRejectsEachBadSetting) {
  LambProblem<double> p(f64);
  const std::pair<const char*, optim::LAMB> bad[] = {
      {"lr", {.lr = -1e-3}},
      {"beta1", {.beta1 = 1.0}},
      {"beta1", {.beta1 = -0.1}},
      {"beta2", {.beta2 = 1.0}},
      {"beta2", {.beta2 = -0.5}},
      {"eps", {.eps = 0}},
      {"eps", {.eps = -1e-6}},
      {"weight_decay", {.weight_decay = -0.01}},
      {"max_trust_ratio", {.max_trust_ratio = -1}},
      {"schedule.total_steps", {.schedule = optim::cosine(0)}},
  };
  for (const auto& [field, o] : bad)
    test::expect_error([&] { compile(p.g, p.loss, o); }, ErrorKind::InvalidArgument, {"optim::LAMB", field});
  // The edges that are allowed.
  EXPECT_NO_THROW(compile(p.g, p.loss, optim::LAMB{.lr = 0, .beta1 = 0, .beta2 = 0, .weight_decay = 0}));
  EXPECT_NO_THROW(compile(p.g, p.loss, optim::LAMB{.max_trust_ratio = 0}));
}

TEST(Optimizers, EveryLambSettingIsPartOfTheProgramCacheKey) {
  LambProblem<double> p(f64);
  auto key = [&](const optim::Optimizer& o) {
    return detail::training_graph_key(p.g.impl(), {detail::id_of(p.loss), {}, o, 0}).hex();
  };
  const optim::LAMB base{};
  EXPECT_EQ(key(base), key(optim::LAMB{}));
  EXPECT_NE(key(base), key(optim::AdamW{.lr = base.lr, .eps = base.eps, .weight_decay = base.weight_decay}));
  const optim::LAMB changed[] = {
      {.lr = 2e-3},           {.beta1 = 0.8},
      {.beta2 = 0.99},        {.eps = 1e-8},
      {.weight_decay = 0.02}, {.bias_correction = false},
      {.max_trust_ratio = 0}, {.schedule = optim::cosine(10)},
  };
  for (std::size_t i = 0; i < std::size(changed); ++i) EXPECT_NE(key(changed[i]), key(base)) << "case " << i;
}

double factor(const optim::Schedule& s, std::int64_t t) {
  const double w = static_cast<double>(s.warmup_steps);
  if (static_cast<double>(t) < w) return static_cast<double>(t + 1) / w;
  const double since = static_cast<double>(t) - w;
  switch (s.kind) {
    case optim::Schedule::Kind::constant: return 1.0;
    case optim::Schedule::Kind::step: return std::pow(s.gamma, std::floor(since / static_cast<double>(s.step_size)));
    case optim::Schedule::Kind::cosine: {
      const double progress = std::min(since / static_cast<double>(s.total_steps), 1.0);
      return s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    }
  }
  return 0;
}

TEST(Schedules, LearningRateFollowsTheScheduleWithoutRecompiling) {
  const optim::Schedule schedules[] = {optim::constant(3), optim::step_decay(2, 0.5), optim::step_decay(3, 0.1, 2),
                                       optim::cosine(4, 2, 0.1), optim::cosine(5)};
  for (const auto& s : schedules) {
    Problem p;
    Program prog = start(p, optim::SGD{.lr = 0.2, .schedule = s});
    Ref ref;
    for (std::int64_t t = 0; t < 10; ++t) {
      const double lr = 0.2 * factor(s, t);
      prog.step({});
      EXPECT_NEAR(prog.learning_rate(), lr, 1e-14) << "step " << t;
      ref.sgd(optim::SGD{}, prog.learning_rate());  // the update used exactly this rate
      expect_vec(prog.get("w"), ref.w, "w", static_cast<int>(t));
    }
  }
}

TEST(Schedules, BaseRateAndStepCountAreSettable) {
  Problem p;
  Program prog = start(p, optim::Adam{.lr = 0.01, .schedule = optim::cosine(100, 10)});
  EXPECT_DOUBLE_EQ(prog.base_learning_rate(), 0.01);
  prog.set_step_count(55);
  prog.set_base_learning_rate(0.5);
  prog.step({});
  EXPECT_NEAR(prog.learning_rate(), 0.5 * factor(optim::cosine(100, 10), 55), 1e-14);
  EXPECT_EQ(prog.step_count(), 56);
  test::expect_error([&] { prog.set_base_learning_rate(-1); }, ErrorKind::InvalidArgument, {"lr"});
  test::expect_error([&] { prog.set_step_count(-3); }, ErrorKind::InvalidArgument, {"step"});
  test::expect_error([&] { compile(p.g, p.loss, optim::SGD{.schedule = optim::cosine(0)}); },
                     ErrorKind::InvalidArgument, {"total_steps"});
  test::expect_error([&] { compile(p.g, p.loss, optim::SGD{.schedule = optim::step_decay(0, 0.5)}); },
                     ErrorKind::InvalidArgument, {"step_size"});
}

TEST(Optimizers, NoneTrainsNothing) {
  Problem p;
  Program prog = start(p, optim::None{});
  prog.step({});
  prog.step({});
  expect_vec(prog.get("w"), kInit, "w", 2);
  EXPECT_EQ(prog.step_count(), 2);
  EXPECT_TRUE(prog.variables(VariableKind::optimizer) == std::vector<std::string>{"optim.step"});
}

}  // namespace
}  // namespace trainrt
