// tests/attention_test.cpp — scaled_dot_product_attention on the CPU.
//
//   Forward      the fused kernel against softmax(where(visible, q k^T * scale, -inf)) v built
//                from public ops, in f64 and f32, over random shapes (rank 3 and 4, Lq != Lk,
//                Dv != D, lengths past one 64-wide tile) and masks of several broadcast shapes.
//   Gradients    finite differences (f64) for small cases; the fused backward against the
//                gradients of the composed reference for multi-tile cases; f32 against f64.
//   Masked rows  a query with no visible key yields zeros and passes no gradient.
//   Threads      1 and 2 threads give the same bits.
//   Errors       bad operands fail when the op is added, naming the op.
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "test_util.h"

namespace trainrt::test {
namespace {

/// One attention problem: shapes, options and the mask's shape (if any).
struct Problem {
  Shape q, k, v;
  std::optional<Shape> mask{};
  bool causal = false;
  std::optional<double> scale{};
  double q_range = 1.0;  // q is drawn from [-q_range, q_range)
};

std::string describe(const Problem& p) {
  return "q" + p.q.to_string() + " k" + p.k.to_string() + " v" + p.v.to_string() +
         (p.mask ? " mask" + p.mask->to_string() : "") + (p.causal ? " causal" : "");
}

/// A random mask of `shape` in which key 0 is always visible (so no row is empty and the
/// -inf reference stays finite).
Tensor random_mask(const Shape& shape, std::mt19937& rng) {
  Tensor m = random_tensor(shape, boolean, rng);
  const std::int64_t lk = shape[shape.rank() - 1];
  for (std::int64_t i = 0; i < m.numel(); i += lk) m.data<bool>()[i] = true;
  return m;
}

/// Random inputs of a problem in `dtype` (the mask, if any, is the last tensor).
std::vector<Tensor> random_inputs(const Problem& p, DType dtype, std::mt19937& rng) {
  std::vector<Tensor> t{random_tensor(p.q, dtype, rng, -p.q_range, p.q_range), random_tensor(p.k, dtype, rng),
                        random_tensor(p.v, dtype, rng)};
  if (p.mask) t.push_back(random_mask(*p.mask, rng));
  return t;
}

/// softmax(where(visible, q k^T * scale, -inf)) v from public ops.
Value reference_attention(Graph& g, const Value& q, const Value& k, const Value& v, const Value& mask, bool causal,
                          double scale) {
  const std::int64_t lq = q.shape()[q.rank() - 2], lk = k.shape()[k.rank() - 2];
  const Value scores = matmul(q, k, {.transpose_b = true}) * scale;
  Value visible = mask;
  if (causal) {
    Tensor c = Tensor::empty(Shape{lq, lk}, boolean);
    for (std::int64_t i = 0; i < lq; ++i)
      for (std::int64_t j = 0; j < lk; ++j) c.data<bool>()[i * lk + j] = j <= i;
    const Value cm = g.constant(c);
    visible = visible.valid() ? logical_and(visible, cm) : cm;
  }
  const Value hidden = g.scalar(-std::numeric_limits<double>::infinity(), q.dtype());
  const Value probs = softmax(visible.valid() ? where(visible, scores, hidden) : scores, -1);
  return matmul(probs, v);
}

/// The graph of one problem: inputs q, k, v (and mask), the fused op and the reference.
struct Built {
  Graph g;
  Value q, k, v, mask, fused, reference;
};

Built build(const Problem& p, DType dtype) {
  Built b;
  b.q = b.g.input("q", p.q, dtype);
  b.k = b.g.input("k", p.k, dtype);
  b.v = b.g.input("v", p.v, dtype);
  if (p.mask) b.mask = b.g.input("mask", *p.mask, boolean);
  b.fused = scaled_dot_product_attention(b.q, b.k, b.v, {.mask = b.mask, .causal = p.causal, .scale = p.scale});
  const double scale = p.scale.value_or(1.0 / std::sqrt(static_cast<double>(p.q[p.q.rank() - 1])));
  b.reference = reference_attention(b.g, b.q, b.k, b.v, b.mask, p.causal, scale);
  return b;
}

Feeds feeds_of(const std::vector<Tensor>& t) {
  Feeds f{{"q", t[0]}, {"k", t[1]}, {"v", t[2]}};
  if (t.size() > 3) f.add("mask", t[3]);
  return f;
}

std::vector<Tensor> to_dtype(const std::vector<Tensor>& t, DType dtype) {
  std::vector<Tensor> r;
  for (const Tensor& x : t) r.push_back(x.dtype() == boolean ? x : x.to(dtype));
  return r;
}

/// Random problems over the mask layouts the op meets in practice: none, key padding
/// [B, 1, 1, Lk], one [Lq, Lk] for all heads, and a full [B, H, Lq, Lk].
std::vector<Problem> random_problems(std::mt19937& rng) {
  // The second round crosses the 64-wide tiles in both lengths and uses features wide
  // enough for the vector blocks of the tile products (up to 64 bytes).
  std::uniform_int_distribution<std::int64_t> small(1, 4), len(1, 9), longer(50, 140), feat(1, 12), wide(20, 80);
  std::vector<Problem> ps;
  for (int round = 0; round < 2; ++round) {
    for (int kind = 0; kind < 8; ++kind) {
      const bool rank4 = kind % 2 == 1;
      const std::int64_t b = small(rng), h = small(rng);
      const std::int64_t d = round ? wide(rng) : feat(rng), dv = round ? wide(rng) : feat(rng);
      const std::int64_t lq = round ? longer(rng) : len(rng), lk = round ? longer(rng) : len(rng);
      auto shape = [&](std::int64_t l, std::int64_t f) { return rank4 ? Shape{b, h, l, f} : Shape{b, l, f}; };
      Problem p{shape(lq, d), shape(lk, d), shape(lk, dv)};
      switch (kind / 2) {
        case 0: break;
        case 1: p.mask = rank4 ? Shape{b, 1, 1, lk} : Shape{b, 1, lk}; break;
        case 2: p.mask = Shape{lq, lk}; break;
        case 3: p.mask = rank4 ? Shape{b, h, lq, lk} : Shape{b, lq, lk}; break;
      }
      p.causal = (kind + round) % 3 == 0;
      if (kind == 5) p.scale = 0.37;
      ps.push_back(p);
    }
  }
  return ps;
}

TEST(Attention, ForwardMatchesComposedOpsF64) {
  std::mt19937 rng(11);
  for (const Problem& p : random_problems(rng)) {
    SCOPED_TRACE(describe(p));
    Built b = build(p, f64);
    const auto out = run_train(sum(b.fused), {b.fused, b.reference}, feeds_of(random_inputs(p, f64, rng)));
    EXPECT_CLOSE(out[0], out[1], 1e-12, 1e-10);
  }
}

TEST(Attention, ForwardMatchesComposedOpsF32) {
  // f32 results against the f64 reference on the same (f32-representable) inputs: the
  // tolerance allows the rounding of D-term dot products and 64-term tile sums in f32.
  std::mt19937 rng(12);
  for (const Problem& p : random_problems(rng)) {
    SCOPED_TRACE(describe(p));
    const std::vector<Tensor> x32 = random_inputs(p, f32, rng);
    Built b32 = build(p, f32);
    Built b64 = build(p, f64);
    const Tensor got = run_train(sum(b32.fused), {b32.fused}, feeds_of(x32))[0];
    const Tensor want = run_train(sum(b64.reference), {b64.reference}, feeds_of(to_dtype(x32, f64)))[0];
    EXPECT_CLOSE(got.to(f64), want, 2e-6, 1e-5);
  }
}

TEST(Attention, ForwardIsStableForLargeScores) {
  // Scores of several hundred: a naive exp overflows, the running max must not.
  std::mt19937 rng(13);
  for (DType dtype : {f64, f32}) {
    Problem p{Shape{2, 70, 16}, Shape{2, 90, 16}, Shape{2, 90, 8}, Shape{2, 1, 90}, true, 4.0, 30.0};
    SCOPED_TRACE(describe(p) + " " + std::string(name(dtype)));
    const std::vector<Tensor> x = random_inputs(p, dtype, rng);
    Built bd = build(p, dtype);
    Built b64 = build(p, f64);
    const Tensor got = run_train(sum(bd.fused), {bd.fused}, feeds_of(x))[0];
    const Tensor want = run_train(sum(b64.reference), {b64.reference}, feeds_of(to_dtype(x, f64)))[0];
    for (double v : values(got)) ASSERT_TRUE(std::isfinite(v));
    // f32 scores near 1e3 carry absolute errors near 1e-4, which the softmax amplifies.
    EXPECT_CLOSE(got.to(f64), want, dtype == f64 ? 1e-11 : 1e-3, dtype == f64 ? 1e-9 : 1e-3);
  }
}

/// check_gradients of attention w.r.t. q, k and v for one problem (mask as a constant).
void check_attention_gradients(const Problem& p, unsigned seed) {
  std::mt19937 rng(seed);
  std::optional<Tensor> mask;
  if (p.mask) mask = random_mask(*p.mask, rng);
  GradCase c{describe(p), {p.q, p.k, p.v}, [&](Graph& g, const std::vector<Value>& in) {
               const Value m = mask ? g.constant(*mask) : Value{};
               return scaled_dot_product_attention(in[0], in[1], in[2],
                                                   {.mask = m, .causal = p.causal, .scale = p.scale});
             }};
  check_gradients(c, seed);
}

TEST(Attention, GradientsMatchFiniteDifferences) {
  check_attention_gradients({Shape{2, 3, 4}, Shape{2, 5, 4}, Shape{2, 5, 3}}, 1);
  check_attention_gradients({Shape{1, 2, 5, 3}, Shape{1, 2, 4, 3}, Shape{1, 2, 4, 2}, {}, true}, 2);
  check_attention_gradients({Shape{2, 2, 4, 3}, Shape{2, 2, 6, 3}, Shape{2, 2, 6, 5}, Shape{2, 1, 1, 6}}, 3);
  check_attention_gradients({Shape{2, 6, 3}, Shape{2, 6, 3}, Shape{2, 6, 2}, Shape{6, 6}, true, 0.8}, 4);
  check_attention_gradients({Shape{1, 2, 3, 2}, Shape{1, 2, 5, 2}, Shape{1, 2, 5, 4}, Shape{1, 2, 3, 5}, true}, 5);
}

TEST(Attention, GradientsMatchComposedOpsAcrossTiles) {
  // Past a 64-wide tile, every gradient element is checked against the gradients of the
  // composed reference (both f64; finite differences would sample only a few elements).
  std::mt19937 rng(21);
  const std::vector<Problem> problems{
      {Shape{2, 100, 7}, Shape{2, 150, 7}, Shape{2, 150, 5}},
      {Shape{1, 2, 130, 6}, Shape{1, 2, 70, 6}, Shape{1, 2, 70, 9}, {}, true},
      {Shape{2, 2, 90, 5}, Shape{2, 2, 129, 5}, Shape{2, 2, 129, 4}, Shape{2, 1, 1, 129}, true},
      {Shape{1, 140, 4}, Shape{1, 140, 4}, Shape{1, 140, 4}, Shape{140, 140}, false, 0.6},
      {Shape{1, 2, 70, 40}, Shape{1, 2, 66, 40}, Shape{1, 2, 66, 72}, Shape{70, 66}, true},
  };
  for (const Problem& p : problems) {
    SCOPED_TRACE(describe(p));
    Built b = build(p, f64);
    const Value w = b.g.constant(random_tensor(b.fused.shape(), f64, rng));
    const std::vector<Value> fused = gradients(sum(mul(b.fused, w)), {b.q, b.k, b.v});
    const std::vector<Value> ref = gradients(sum(mul(b.reference, w)), {b.q, b.k, b.v});
    const auto out = run_train(sum(b.fused), {fused[0], fused[1], fused[2], ref[0], ref[1], ref[2]},
                               feeds_of(random_inputs(p, f64, rng)));
    for (std::size_t i = 0; i < 3; ++i) EXPECT_CLOSE(out[i], out[i + 3], 1e-11, 1e-9) << "gradient " << i;
  }
}

TEST(Attention, F32GradientsMatchF64) {
  std::mt19937 rng(22);
  const Problem p{Shape{2, 2, 100, 16}, Shape{2, 2, 80, 16}, Shape{2, 2, 80, 12}, Shape{2, 1, 100, 80}, true};
  const std::vector<Tensor> x32 = random_inputs(p, f32, rng);
  const Tensor w = random_tensor(Shape{2, 2, 100, 12}, f64, rng);
  std::vector<Tensor> grads[2];
  for (int i = 0; i < 2; ++i) {
    const DType dtype = i ? f64 : f32;
    Built b = build(p, dtype);
    const std::vector<Value> g = gradients(sum(mul(b.fused, b.g.constant(w.to(dtype)))), {b.q, b.k, b.v});
    grads[i] = run_train(sum(b.fused), g, feeds_of(to_dtype(x32, dtype)));
  }
  for (std::size_t i = 0; i < 3; ++i) EXPECT_CLOSE(grads[0][i].to(f64), grads[1][i], 1e-5, 1e-4) << "gradient " << i;
}

TEST(Attention, RowsWithoutVisibleKeysGiveZerosAndNoGradient) {
  // Query 1 is hidden by the mask everywhere; with causal, query 0 sees only key 0, which
  // the mask hides too. Lq = 70 puts the empty rows and the others in different tiles.
  const std::int64_t lq = 70, lk = 66;
  Tensor mask = Tensor::full(Shape{lq, lk}, 1.0, boolean);
  for (std::int64_t j = 0; j < lk; ++j) mask.data<bool>()[lk + j] = false;
  mask.data<bool>()[0] = false;
  std::mt19937 rng(31);
  for (DType dtype : {f64, f32}) {
    SCOPED_TRACE(name(dtype));
    Graph g;
    const Value q = g.input("q", Shape{2, lq, 5}, dtype), k = g.input("k", Shape{2, lk, 5}, dtype),
                v = g.input("v", Shape{2, lk, 3}, dtype);
    const Value out = scaled_dot_product_attention(q, k, v, {.mask = g.constant(mask), .causal = true});
    // Weights only on the empty rows: every gradient must be exactly zero.
    Tensor w = Tensor::zeros(out.shape(), dtype);
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t r = 0; r < 2; ++r)
        for (std::int64_t x = 0; x < 3; ++x) {
          const std::int64_t i = (b * lq + r) * 3 + x;
          if (dtype == f64) w.data<double>()[i] = 1.0 + static_cast<double>(x);
          else w.data<float>()[i] = 1.0f + static_cast<float>(x);
        }
    const Value loss = sum(mul(out, g.constant(w)));
    const std::vector<Value> grads = gradients(loss, {q, k, v});
    const auto r = run_train(loss, {out, grads[0], grads[1], grads[2]},
                             {{"q", random_tensor(q.shape(), dtype, rng)},
                              {"k", random_tensor(k.shape(), dtype, rng)},
                              {"v", random_tensor(v.shape(), dtype, rng)}});
    for (std::int64_t b = 0; b < 2; ++b)
      for (std::int64_t i = 0; i < lq * 3; ++i) {
        const double y = r[0].at(b * lq * 3 + i);
        if (i < 6) EXPECT_EQ(y, 0.0) << "batch " << b << " element " << i;
        else EXPECT_NE(y, 0.0) << "batch " << b << " element " << i;
      }
    for (std::size_t i = 1; i < 4; ++i)
      for (double x : values(r[i])) ASSERT_EQ(x, 0.0) << "gradient " << i - 1;
  }
  // With weights everywhere, finite differences agree (the empty rows contribute nothing).
  auto build_empty_rows = [](Graph& g, const std::vector<Value>& in) {
    Tensor m = Tensor::full(Shape{4, 5}, 1.0, boolean);
    for (std::int64_t j = 0; j < 5; ++j) m.data<bool>()[2 * 5 + j] = false;
    m.data<bool>()[0] = false;
    return scaled_dot_product_attention(in[0], in[1], in[2], {.mask = g.constant(m), .causal = true});
  };
  check_gradients({"empty rows", {Shape{1, 4, 3}, Shape{1, 5, 3}, Shape{1, 5, 2}}, build_empty_rows}, 7);
}

TEST(Attention, MaskBroadcastAlongKeysHidesWholeRows) {
  // A [B, Lq, 1] mask (stride 0 along the keys) hides whole query rows: they become zero,
  // and the other rows equal unmasked attention.
  const std::int64_t lq = 67;
  std::mt19937 rng(61);
  Graph g;
  const Value q = g.input("q", Shape{2, lq, 6}, f64), k = g.input("k", Shape{2, 70, 6}, f64),
              v = g.input("v", Shape{2, 70, 3}, f64), mask = g.input("mask", Shape{2, lq, 1}, boolean);
  const Value masked = scaled_dot_product_attention(q, k, v, {.mask = mask, .causal = true});
  const Value plain = scaled_dot_product_attention(q, k, v, {.causal = true});
  const Tensor m = random_tensor(mask.shape(), boolean, rng);
  const auto r = run_train(sum(masked), {masked, plain},
                           {{"q", random_tensor(q.shape(), f64, rng)},
                            {"k", random_tensor(k.shape(), f64, rng)},
                            {"v", random_tensor(v.shape(), f64, rng)},
                            {"mask", m}});
  int hidden = 0;
  for (std::int64_t row = 0; row < 2 * lq; ++row) {
    const bool visible = m.at(row) != 0;
    hidden += !visible;
    for (std::int64_t x = 0; x < 3; ++x)
      EXPECT_EQ(r[0].at(row * 3 + x), visible ? r[1].at(row * 3 + x) : 0.0) << "row " << row;
  }
  EXPECT_GT(hidden, 0);
}

TEST(Attention, EmptySequencesGiveZeros) {
  {  // Lq = 0: nothing to attend from; k and v get zero gradients.
    Graph g;
    const Value q = g.input("q", Shape{2, 0, 4}, f64), k = g.input("k", Shape{2, 3, 4}, f64),
                v = g.input("v", Shape{2, 3, 5}, f64);
    const Value loss = sum(scaled_dot_product_attention(q, k, v));
    const std::vector<Value> grads = gradients(loss, {k, v});
    const auto r = run_train(loss, grads,
                             {{"q", Tensor::zeros(q.shape(), f64)},
                              {"k", Tensor::full(k.shape(), 1.0, f64)},
                              {"v", Tensor::full(v.shape(), 1.0, f64)}});
    for (const Tensor& t : r)
      for (double x : values(t)) EXPECT_EQ(x, 0.0);
  }
  // Lk = 0: every query row is empty.
  Graph g;
  const Value q = g.input("q", Shape{2, 3, 4}, f64), k = g.input("k", Shape{2, 0, 4}, f64),
              v = g.input("v", Shape{2, 0, 5}, f64);
  const Value out = scaled_dot_product_attention(q, k, v, {.causal = true});
  const Value loss = sum(out);
  const std::vector<Value> grads = gradients(loss, {q, k, v});
  std::mt19937 rng(51);
  const auto r = run_train(loss, {out, grads[0]},
                           {{"q", random_tensor(q.shape(), f64, rng)},
                            {"k", Tensor::zeros(k.shape(), f64)},
                            {"v", Tensor::zeros(v.shape(), f64)}});
  EXPECT_EQ(r[0].shape().to_string(), Shape({2, 3, 5}).to_string());
  for (double x : values(r[0])) EXPECT_EQ(x, 0.0);
  for (double x : values(r[1])) EXPECT_EQ(x, 0.0);
}

TEST(Attention, ThreadCountDoesNotChangeBits) {
  std::mt19937 rng(41);
  const Problem p{Shape{2, 3, 130, 24}, Shape{2, 3, 100, 24}, Shape{2, 3, 100, 20}, Shape{2, 1, 130, 100}, true};
  const std::vector<Tensor> x = random_inputs(p, f32, rng);
  const Tensor w = random_tensor(Shape{2, 3, 130, 20}, f32, rng);
  std::vector<Tensor> results[2];
  for (int threads : {1, 2}) {
    Built b = build(p, f32);
    const Value loss = sum(mul(b.fused, b.g.constant(w)));
    const std::vector<Value> g = gradients(loss, {b.q, b.k, b.v});
    results[threads - 1] = run_train(loss, {b.fused, g[0], g[1], g[2]}, feeds_of(x), threads);
  }
  for (std::size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(results[0][i].nbytes(), results[1][i].nbytes());
    EXPECT_EQ(std::memcmp(results[0][i].raw_data(), results[1][i].raw_data(), results[0][i].nbytes()), 0)
        << "output " << i << " differs between 1 and 2 threads";
  }
}

TEST(Attention, BadOperandsNameTheOp) {
  Graph g;
  const Value q = g.input("q", Shape{2, 4, 8}), k = g.input("k", Shape{2, 6, 8}), v = g.input("v", Shape{2, 6, 3});
  const std::string here = "attention_test.cpp";
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, v, {.mask = g.input("m", Shape{4, 6})});
      },
      ErrorKind::DTypeMismatch, {"attention", "mask must be bool", here});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, g.input("k5", Shape{2, 6, 5}), v);
      },
      ErrorKind::ShapeMismatch, {"attention", "feature size D", here});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, g.input("v7", Shape{2, 7, 3}));
      },
      ErrorKind::ShapeMismatch, {"attention", "length Lk", here});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, g.input("k3", Shape{3, 6, 8}), g.input("v3", Shape{3, 6, 3}));
      },
      ErrorKind::ShapeMismatch, {"attention", "leading"});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, k, v, {.mask = g.input("mb", Shape{4, 5}, boolean)});
      },
      ErrorKind::ShapeMismatch, {"attention", "broadcast", "[2,4,6]"});
  expect_error(
      [&] {
        scaled_dot_product_attention(q, g.input("k64", Shape{2, 6, 8}, f64), v);
      },
      ErrorKind::DTypeMismatch, {"attention", "floating dtype"});
  expect_error(
      [&] {
        scaled_dot_product_attention(g.input("qi", Shape{2, 4, 8}, DType::i32), k, v);
      },
      ErrorKind::DTypeMismatch, {"attention"});
  expect_error([&] { scaled_dot_product_attention(g.input("q1", Shape{8}), k, v); }, ErrorKind::ShapeMismatch,
               {"attention", here});
  expect_error([&] { scaled_dot_product_attention(q, k, v, {.scale = std::numeric_limits<double>::infinity()}); },
               ErrorKind::InvalidArgument, {"attention", "scale"});
}

}  // namespace
}  // namespace trainrt::test
