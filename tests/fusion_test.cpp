// tests/fusion_test.cpp — fused programs (generated, compiled, cached kernels) against the
// same programs unfused, for every fusion pattern; the fusion pass's grouping rules; the
// emitter's loop nests; the graph printer.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "codegen/emit_kernel.h"
#include "compile/host_compiler.h"
#include "compile/kernel_builder.h"
#include "compile/nvrtc.h"
#include "ir/builder.h"
#include "ir/fused.h"
#include "ir/printer.h"
#include "optim/build_optimizer.h"
#include "passes/lower_mode.h"
#include "passes/pipeline.h"
#include "test_util.h"

namespace trainrt {
namespace {

using detail::id_of;

struct Model {
  Value loss;
  Feeds feeds;
  std::vector<Value> fetches;  // evaluated after training too
};

/// Builds the same model twice (fused and unfused), trains both `steps` steps with
/// `optimizer` and expects every parameter, the losses and the fetches to agree within the
/// dtype's tolerance. Returns the fused Program's report.
CompileReport expect_fused_equals_unfused(const std::function<Model(Graph&)>& build, const optim::Optimizer& optimizer,
                                          int steps = 3, double atol = 2e-5, double rtol = 2e-4) {
  Graph g1, g2;
  Model m1 = build(g1), m2 = build(g2);
  Program fused = compile(g1, m1.loss, optimizer, {.threads = 2, .seed = 7});
  Program plain = compile(g2, m2.loss, optimizer, {.threads = 2, .seed = 7, .fusion = false});
  const CompileReport report = fused.compile_report();
  EXPECT_GT(report.fused_nodes, 0) << "nothing was fused:\n" << fused.to_string();
  EXPECT_EQ(plain.compile_report().fused_nodes, 0);
  for (int s = 0; s < steps; ++s) {
    const float a = fused.step(m1.feeds).get(), b = plain.step(m2.feeds).get();
    EXPECT_NEAR(a, b, atol + rtol * std::abs(b)) << "step " << s;
  }
  for (const std::string& name : plain.variables(VariableKind::parameter))
    EXPECT_CLOSE(fused.get(name), plain.get(name), atol, rtol) << name;
  for (const std::string& name : plain.variables(VariableKind::optimizer))
    EXPECT_CLOSE(fused.get(name), plain.get(name), atol, rtol) << name;
  if (!m1.fetches.empty()) {
    const std::vector<Tensor> a = fused.evaluate(m1.feeds, m1.fetches), b = plain.evaluate(m2.feeds, m2.fetches);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_CLOSE(a[i], b[i], atol, rtol) << "fetch " << i;
  }
  return report;
}

Feeds classification_feeds(std::int64_t batch, std::int64_t features, std::int64_t classes, DType dtype = f32) {
  std::mt19937 rng(42);
  Tensor x = test::random_tensor({batch, features}, dtype, rng, -2.0, 2.0);
  Tensor y = test::random_tensor({batch}, i64, rng, 0.0, static_cast<double>(classes));
  return {{"x", x}, {"y", y}};
}

TEST(Fusion, BiasAndActivationsMatchUnfused) {
  for (int act = 0; act < 5; ++act) {
    SCOPED_TRACE(act);
    expect_fused_equals_unfused(
        [&](Graph& g) {
          auto x = g.input("x", {16, 12});
          auto y = g.input("y", {16}, i64);
          nn::Linear fc1(g, "fc1", 12, 24), fc2(g, "fc2", 24, 5);
          Value h = fc1(x);
          switch (act) {
            case 0: h = relu(h); break;
            case 1: h = gelu(h); break;
            case 2: h = gelu(h, GeluApproximation::tanh); break;
            case 3: h = sigmoid(h); break;
            default: h = tanh(h); break;
          }
          Value logits = fc2(h);
          return Model{cross_entropy(logits, y), classification_feeds(16, 12, 5), {logits}};
        },
        optim::SGD{.lr = 0.1, .momentum = 0.9});
  }
}

Model residual_model(Graph& g) {
  auto x = g.input("x", {8, 16});
  auto y = g.input("y", {8}, i64);
  nn::Linear a(g, "a", 16, 16), b(g, "b", 16, 16), head(g, "head", 16, 3);
  Value h = x;
  h = h + relu(a(h));
  h = h + tanh(b(h)) * 0.5;
  return Model{cross_entropy(head(h), y), classification_feeds(8, 16, 3), {h}};
}

TEST(Fusion, ResidualBlocksMatchUnfused) { expect_fused_equals_unfused(residual_model, optim::Adam{.lr = 1e-2}); }

Model normalization_model(Graph& g) {
  auto x = g.input("x", {8, 32});
  auto y = g.input("y", {8}, i64);
  nn::Linear fc(g, "fc", 32, 32), head(g, "head", 32, 4);
  Value gamma = g.parameter("gamma", {32}, init::ones());
  Value beta = g.parameter("beta", {32}, init::zeros());
  Value h = fc(x);
  Value centered = h - mean(h, {1}, true);
  Value var = mean(centered * centered, {1}, true);
  Value normed = centered * rsqrt(var + 1e-5) * gamma + beta;
  return Model{cross_entropy(head(normed), y), classification_feeds(8, 32, 4), {normed}};
}

TEST(Fusion, NormalizationFromElementwiseOpsMatchesUnfused) {
  // Layer norm spelled out: reductions stay library kernels, everything around them fuses,
  // with operands broadcast along either axis.
  expect_fused_equals_unfused(normalization_model, optim::AdamW{.lr = 1e-2});
}

TEST(Fusion, OptimizerUpdatesMatchUnfused) {
  auto mlp = [](Graph& g) {
    auto x = g.input("x", {16, 10});
    auto y = g.input("y", {16}, i64);
    nn::Linear fc1(g, "fc1", 10, 20), fc2(g, "fc2", 20, 20), fc3(g, "fc3", 20, 4);
    return Model{cross_entropy(fc3(relu(fc2(relu(fc1(x))))), y), classification_feeds(16, 10, 4), {}};
  };
  expect_fused_equals_unfused(mlp, optim::SGD{.lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-3}, 4);
  expect_fused_equals_unfused(mlp, optim::Adam{.lr = 1e-2, .weight_decay = 1e-3}, 4);
  expect_fused_equals_unfused(mlp, optim::AdamW{.lr = 1e-2}, 4);
}

Model predicates_model(Graph& g) {
  auto x = g.input("x", {12, 9});
  auto y = g.input("y", {12}, i64);
  nn::Linear fc(g, "fc", 9, 9), head(g, "head", 9, 3);
  Value h = fc(x);
  Value leaky = where(gt(h, h * 0.0), h, h * 0.01);                     // comparison, where, Full inlined
  Value clipped = clamp(leaky, -0.5, 0.75) + minimum(h, abs(h) * 0.5);  // maximum/minimum
  Value wide = cast(cast(clipped, f64) * 1.5, f32);                     // casts through f64
  Value masked = wide * cast(logical_and(ge(h, h * 0.0 - 0.2), logical_not(lt(h, h * 0.0 - 2.0))), f32);
  Value out = masked + sign(h) * floor(abs(h) * 4.0) * 0.01 + exp(h * -0.5) - sqrt(abs(h) + 1.0);
  return Model{cross_entropy(head(out), y), classification_feeds(12, 9, 3), {out}};
}

TEST(Fusion, PredicatesCastsAndSelectionsMatchUnfused) {
  expect_fused_equals_unfused(predicates_model, optim::SGD{.lr = 0.05});
}

Model double_model(Graph& g) {
  auto x = g.input("x", {6, 8}, f64);
  auto y = g.input("y", {6}, i64);
  nn::Linear fc(g, "fc", 8, 8), head(g, "head", 8, 3);
  // Parameters are f32: the f64 input meets them through casts.
  Value h = cast(fc(cast(x * 0.5 + 1.0, f32)), f64);
  Value act = h * sigmoid(h) + pow(h, 2.0) * 0.1;
  return Model{cross_entropy(head(cast(act, f32)), y), classification_feeds(6, 8, 3, f64), {act}};
}

TEST(Fusion, DoublePrecisionGraphsMatchUnfused) {
  expect_fused_equals_unfused(double_model, optim::Adam{.lr = 1e-2}, 3, 1e-5, 1e-4);
}

TEST(Fusion, FusedProgramsGiveTheSameBitsForAnyThreadCount) {
  auto build = [](Graph& g) {
    auto x = g.input("x", {64, 300});
    auto y = g.input("y", {64}, i64);
    nn::Linear fc1(g, "fc1", 300, 512), fc2(g, "fc2", 512, 10);
    return cross_entropy(fc2(gelu(fc1(x)) + 0.5), y);
  };
  const Feeds feeds = classification_feeds(64, 300, 10);
  std::vector<Tensor> first;
  for (int threads : {1, 2, 4}) {
    Graph g;
    Value loss = build(g);
    Program p = compile(g, loss, optim::Adam{}, {.threads = threads, .seed = 3});
    ASSERT_GT(p.compile_report().fused_nodes, 0);
    for (int s = 0; s < 3; ++s) p.step(feeds);
    std::vector<Tensor> params;
    for (const std::string& n : p.variables(VariableKind::parameter)) params.push_back(p.get(n));
    if (first.empty()) {
      first = params;
      continue;
    }
    for (std::size_t i = 0; i < params.size(); ++i)
      EXPECT_EQ(test::values(params[i]), test::values(first[i])) << threads << " threads, parameter " << i;
  }
}

TEST(Fusion, GroupsNeverCrossLibraryCallsAndKeepValuesReadOutside) {
  Graph g;
  auto x = g.input("x", {4, 6});
  nn::Linear fc(g, "fc", 6, 6);
  Value a = relu(fc(x) * 2.0);  // one group: mul, relu
  Value b = matmul(a, fc.weight, {.transpose_b = true});
  Value c = exp(b) + a * 3.0;  // reads the group's result a (kept) after a library call
  Value loss = mean(c);
  detail::optimizer_variable(g.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
  const detail::ScheduledGraph s = detail::compile_evaluation_graph(g.impl(), {id_of(loss)}, true, DType::f32);
  int fused = 0, matmuls = 0;
  for (std::int32_t n : s.schedule) {
    const detail::Node& node = s.graph->node(n);
    if (node.kind == detail::OpKind::Matmul) ++matmuls;
    if (node.kind != detail::OpKind::Fused) continue;
    ++fused;
    for (const detail::FusedGroup& grp : detail::fused_body(node).groups)
      for (const detail::FusedOp& op : grp.ops)
        EXPECT_TRUE(detail::is_elementwise(op.kind) || op.kind == detail::OpKind::Full);
  }
  EXPECT_EQ(matmuls, 2);
  EXPECT_EQ(fused, 2) << "mul+relu before the matmul and exp+mul+add after it";
  EXPECT_NE(detail::print_graph(*s.graph).find("{loop "), std::string::npos) << "the printer shows the groups";
}

TEST(Fusion, TwoGroupsThatWouldCloseACycleBetweenThemDoNot) {
  // A = {x*2, (x*2)*b1} reads b1 from B = {s*3, sqrt(X), sqrt(X)*b1}, and B reads X = sum(x*2),
  // which depends on A. Each group alone is contractible; together they are a cycle. One of
  // them (the cheaper: B, on scalars) stays unfused, and the values match the unfused graph.
  auto build = [](Graph& g) {
    auto x = g.input("x", {4});
    auto s = g.input("s", {});
    Value a1 = x * 2.0;
    Value big = sum(a1);
    Value b1 = s * 3.0;
    Value b3 = sqrt(big) * b1;
    Value a2 = a1 * b1;
    return std::vector<Value>{a2, b3};
  };
  Graph direct;
  const std::vector<Value> d = build(direct);
  detail::optimizer_variable(direct.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
  const detail::ScheduledGraph s =
      detail::compile_evaluation_graph(direct.impl(), {id_of(d[0]), id_of(d[1])}, true, DType::f32);
  int fused = 0;
  for (std::int32_t n : s.schedule)
    if (s.graph->node(n).kind == detail::OpKind::Fused) {
      ++fused;
      EXPECT_EQ(detail::fused_body(s.graph->node(n)).groups.front().loop, Shape{4}) << "the [4] group is kept";
    }
  EXPECT_EQ(fused, 1);
  Graph g, plain;
  const std::vector<Value> out = build(g), ref = build(plain);
  const Feeds feeds{{"x", Tensor::from_vector<float>({4}, {1, 2, 3, 4})},
                    {"s", Tensor::from_vector<float>({}, {0.5f})}};
  Program p = compile(g, out[1], optim::None{}, {});
  Program q = compile(plain, ref[1], optim::None{}, {.fusion = false});
  const std::vector<Tensor> a = p.evaluate(feeds, out), b = q.evaluate(feeds, ref);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(test::values(a[0]), test::values(b[0]));
  EXPECT_EQ(test::values(a[1]), test::values(b[1]));
  EXPECT_FLOAT_EQ(test::values(a[1])[0], std::sqrt(20.0f) * 1.5f);
}

TEST(Fusion, TheOptimizerUpdatesEveryParameterInOneKernel) {
  Graph g;
  auto x = g.input("x", {8, 10});
  auto y = g.input("y", {8}, i64);
  nn::Linear fc1(g, "fc1", 10, 20), fc2(g, "fc2", 20, 20), fc3(g, "fc3", 20, 4);
  Value loss = cross_entropy(fc3(relu(fc2(relu(fc1(x))))), y);
  detail::optimizer_variable(g.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
  const detail::ScheduledGraph s = detail::compile_training_graph(g.impl(), {id_of(loss), {}, optim::Adam{}, 0});
  std::size_t largest = 0, update_nodes = 0;
  for (std::int32_t n : s.schedule) {
    const detail::Node& node = s.graph->node(n);
    if (node.kind != detail::OpKind::Fused || node.phase != detail::Phase::update) continue;
    ++update_nodes;
    largest = std::max(largest, detail::fused_body(node).groups.size());
  }
  EXPECT_GE(largest, 6u) << "six parameters, one group each, in one node\n" << detail::print_graph(*s.graph);
  EXPECT_LE(update_nodes, 3u) << detail::print_graph(*s.graph);
}

/// One NVRTC program holding the CUDA wrapper of every fused node of `s`, compiled for each
/// architecture; returns how many kernels it held.
std::size_t compile_cuda_wrappers(const detail::ScheduledGraph& s, const std::string& what) {
  const detail::Nvrtc* nvrtc = detail::Nvrtc::get();
  std::string source = detail::cuda_prelude();
  std::size_t kernels = 0;
  for (std::int32_t n : s.schedule)
    if (s.graph->node(n).kind == detail::OpKind::Fused)
      source += detail::cuda_kernel_code(detail::kernel_spec(*s.graph, n), "k" + std::to_string(kernels++));
  for (int arch : {80, 90}) {
    detail::NvrtcOptions o;
    o.arch = arch;
    o.ptx_fallback = false;
    const detail::NvrtcResult r = nvrtc->compile(source, what + ".cu", o);
    EXPECT_TRUE(r.is_cubin) << what << " sm_" << arch;
    EXPECT_EQ(detail::cubin_arch(r.image), arch) << what;
  }
  return kernels;
}

TEST(Fusion, EveryCudaWrapperCompilesWithNvrtcForSm80AndSm90) {
  if (detail::Nvrtc::get() == nullptr)
    GTEST_SKIP() << "NVRTC is not available: " << detail::Nvrtc::unavailable_reason();
  const std::vector<std::pair<std::string, std::function<Model(Graph&)>>> models{{"residual", residual_model},
                                                                                 {"normalization", normalization_model},
                                                                                 {"predicates", predicates_model},
                                                                                 {"double", double_model}};
  const std::vector<optim::Optimizer> optimizers{optim::SGD{.momentum = 0.9, .nesterov = true}, optim::Adam{},
                                                 optim::AdamW{}};
  std::size_t kernels = 0;
  for (const auto& [name, build] : models)
    for (const optim::Optimizer& opt : optimizers) {
      Graph g;
      const Model m = build(g);
      detail::optimizer_variable(g.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
      kernels += compile_cuda_wrappers(detail::compile_training_graph(g.impl(), {id_of(m.loss), {}, opt, 0}), name);
    }
  EXPECT_GE(kernels, 20u);
  // Mixed precision: autocast to f16, loss scaling (unscale, overflow flag, skipped-step
  // selects in every update) and clipping, under Adam-like and LAMB updates.
  std::size_t mixed = 0;
  for (const auto& [name, build] : models)
    for (const optim::Optimizer& opt : {optim::Optimizer{optim::AdamW{}}, optim::Optimizer{optim::LAMB{}}}) {
      Graph g;
      const Model m = build(g);
      detail::optimizer_variable(g.impl_ptr(), detail::kStepVariable, Shape{}, init::zeros(), i64);
      detail::TrainingRequest r{id_of(m.loss), {}, opt, 0};
      r.autocast = name == "double" ? f32 : f16;
      r.guard.scale = true;
      r.guard.max_grad_norm = 1.0;
      mixed += compile_cuda_wrappers(detail::compile_training_graph(g.impl(), r), name + " mixed");
    }
  EXPECT_GE(mixed, 8u);
}

TEST(Fusion, SixteenBitFloatsLoadAndStoreThroughF32OnBothTargets) {
  // A group over f16 and bf16 operands (the CUDA backend's dtypes; the CPU legalizes them).
  auto body = std::make_shared<detail::FusedBody>();
  detail::FusedGroup grp;
  grp.loop = Shape{4, 8};
  const detail::TensorType f32t{f32, grp.loop};
  grp.ops.push_back(
      {detail::OpKind::Mul, {detail::fused_operand_arg(0), detail::fused_operand_arg(1)}, f32t, detail::NoAttrs{}});
  grp.ops.push_back({detail::OpKind::Gelu, {0}, f32t, detail::GeluAttrs{}});
  body->groups.push_back(grp);
  body->outputs.push_back({0, 1});
  detail::KernelSpec spec{body.get(),
                          {detail::TensorType{f16, grp.loop}, detail::TensorType{bf16, Shape{8}}},
                          {detail::TensorType{bf16, grp.loop}}};
  const std::string cuda = detail::cuda_kernel_source(spec, "k16");
  EXPECT_NE(cuda.find("trk_f16_to_f32"), std::string::npos);
  EXPECT_NE(cuda.find("trk_f32_to_bf16"), std::string::npos);
  if (detail::Nvrtc::get() != nullptr) {
    detail::NvrtcOptions o;
    o.arch = 90;
    EXPECT_FALSE(detail::Nvrtc::get()->compile(cuda, "k16.cu", o).image.empty());
  }
  // The CPU wrapper of the same spec: compiled, loaded and run against f32 arithmetic on the
  // same rounded inputs (the row operand broadcast along the leading axis).
  const detail::HostCompiler* cc = detail::HostCompiler::get();
  if (cc == nullptr) GTEST_SKIP() << "no host compiler: " << detail::HostCompiler::unavailable_reason();
  auto module = detail::LoadedModule::load(cc->compile(detail::cpu_kernel_source(spec, "k16"), "k16"), "k16");
  auto fn = reinterpret_cast<detail::CpuKernelFn>(module->symbol("k16"));
  std::mt19937 rng(9);
  const Tensor a = test::random_tensor(grp.loop, f16, rng, -3, 3), b = test::random_tensor(Shape{8}, bf16, rng, -2, 2);
  Tensor out = Tensor::empty(grp.loop, bf16);
  void* buffers[] = {const_cast<void*>(a.raw_data()), const_cast<void*>(b.raw_data()), out.raw_data()};
  fn(buffers, 0, 0, grp.loop.numel());
  const std::vector<double> av = test::values(a), bv = test::values(b), ov = test::values(out);
  for (std::size_t i = 0; i < ov.size(); ++i) {
    const double p = av[i] * bv[i % 8];
    const double want = 0.5 * p * (1.0 + std::erf(p / std::sqrt(2.0)));
    EXPECT_NEAR(ov[i], want, 1e-2 * (1.0 + std::abs(want))) << "element " << i;  // bf16 keeps 8 bits
  }
}

TEST(Fusion, LoopNestsMergeContiguousDimsAndKeepBroadcasts) {
  // [4, 5, 6] with a full operand, a row vector [6] and a column [4, 1, 1].
  const detail::LoopNest n = detail::loop_nest(Shape{4, 5, 6}, {Shape{4, 5, 6}, Shape{6}, Shape{4, 1, 1}});
  ASSERT_EQ(n.dims, (std::vector<std::int64_t>{4, 5, 6}));
  EXPECT_EQ(n.strides[0], (std::vector<std::int64_t>{30, 6, 1}));
  EXPECT_EQ(n.strides[1], (std::vector<std::int64_t>{0, 0, 1}));
  EXPECT_EQ(n.strides[2], (std::vector<std::int64_t>{1, 0, 0}));
  const detail::LoopNest m = detail::loop_nest(Shape{4, 5, 6}, {Shape{4, 5, 6}, Shape{4, 5, 6}});
  EXPECT_EQ(m.dims, (std::vector<std::int64_t>{120}));
  const detail::LoopNest r = detail::loop_nest(Shape{4, 5, 6}, {Shape{5, 6}, Shape{}});
  EXPECT_EQ(r.dims, (std::vector<std::int64_t>{4, 30}));
  EXPECT_EQ(r.strides[0], (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(r.strides[1], (std::vector<std::int64_t>{0, 0}));
  EXPECT_EQ(r.numel, 120);
}

}  // namespace
}  // namespace trainrt
