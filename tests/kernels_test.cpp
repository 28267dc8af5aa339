// CPU kernels against naive loops written here: broadcasting patterns, every reduction axis
// subset, matmul through oneDNN against the f64 reference, casts, 16-bit dtypes, dropout's
// mask statistics, and bitwise-identical results for 1 and 2 threads.
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "test_util.h"

namespace trainrt {
namespace {

/// Index of `out_index` (dense over `out`) in a tensor of shape `in` broadcast to `out`.
std::int64_t broadcast_index(const Shape& out, const Shape& in, std::int64_t out_index) {
  std::int64_t idx = 0, stride = 1, rest = out_index;
  for (std::int64_t d = out.rank() - 1; d >= 0; --d) {
    const std::int64_t i = rest % out[d];
    rest /= out[d];
    const std::int64_t id = d - (out.rank() - in.rank());
    if (id < 0) continue;
    if (in[id] != 1) idx += i * stride;
    stride *= in[id];
  }
  return idx;
}

std::vector<Tensor> run(const std::vector<Value>& fetch, const Feeds& feeds, int threads = 0) {
  Graph g = fetch[0].graph();
  // A dummy scalar loss keeps compile() happy; only the fetched outputs matter.
  auto ins = g.inputs();
  Value loss = g.scalar(0.0);
  return test::run_train(loss, fetch, feeds, threads);
}

TEST(Kernels, ElementwiseBroadcastPatterns) {
  std::mt19937 rng(11);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {7}},      {{5, 7}, {5, 1}},          {{2, 1, 4}, {3, 1}},    {{6}, {}},
      {{}, {6}},          {{2, 3, 4, 5}, {3, 1, 5}}, {{1, 1, 9}, {2, 3, 1}}, {{4, 1, 3, 1}, {1, 5, 1, 2}},
      {{70000}, {70000}}, {{300, 300}, {300}}};
  for (const auto& [sa, sb] : cases) {
    for (DType dt : {f32, f64, i32, i64}) {
      Graph g;
      auto a = g.input("a", sa, dt), b = g.input("b", sb, dt);
      auto c = g.input("c", sb, dt);
      std::vector<Value> outs{a + b, a - b, a * b, maximum(a, b), lt(a, b), fma(a, b, c), where(gt(a, b), a, b)};
      const Tensor ta = test::random_tensor(sa, dt, rng, -5, 5), tb = test::random_tensor(sb, dt, rng, -5, 5),
                   tc = test::random_tensor(sb, dt, rng, -5, 5);
      const auto r = run(outs, {{"a", ta}, {"b", tb}, {"c", tc}});
      const Shape out = broadcast_shapes(sa, sb);
      for (std::int64_t i = 0; i < out.numel(); ++i) {
        const double x = ta.at(broadcast_index(out, sa, i)), y = tb.at(broadcast_index(out, sb, i)),
                     z = tc.at(broadcast_index(out, sb, i));
        const double want[] = {x + y, x - y, x * y, std::max(x, y), double(x < y), x * y + z, x > y ? x : y};
        for (std::size_t k = 0; k < outs.size(); ++k) {
          const double tol = dt == f32 ? 1e-5 * (1 + std::abs(want[k])) : 0.0;
          ASSERT_NEAR(r[k].at(i), want[k], tol)
              << "op " << k << " " << sa.to_string() << " with " << sb.to_string() << " " << name(dt) << " at " << i;
        }
      }
    }
  }
}

TEST(Kernels, EveryReductionAxisSubset) {
  std::mt19937 rng(12);
  const Shape s{3, 1, 4, 5};
  for (DType dt : {f32, f64, i64}) {
    const Tensor x = test::random_tensor(s, dt, rng, -9, 9);
    for (int mask = 1; mask < 16; ++mask) {  // mask 0 would be "no axes", which sum() spells as all of them
      Axes axes;
      for (int a = 0; a < 4; ++a)
        if (mask & (1 << a)) axes.push_back(a);
      Graph g;
      auto in = g.input("x", s, dt);
      std::vector<Value> outs{sum(in, axes), max(in, axes)};
      if (is_floating(dt)) outs.push_back(mean(in, axes, true));
      const auto r = run(outs, {{"x", x}});
      // Naive: accumulate every element into its output slot.
      const Shape rs = r[0].shape();
      std::vector<double> sums(static_cast<std::size_t>(rs.numel()), 0), maxes(sums.size(), -1e300);
      std::vector<int> counts(sums.size(), 0);
      for (std::int64_t i = 0; i < s.numel(); ++i) {
        std::int64_t o = 0, rest = i, stride = 1;
        for (int d = 3; d >= 0; --d) {
          const std::int64_t id = rest % s[d];
          rest /= s[d];
          if (!(mask & (1 << d))) o += id * stride, stride *= s[d];
        }
        sums[static_cast<std::size_t>(o)] += x.at(i);
        maxes[static_cast<std::size_t>(o)] = std::max(maxes[static_cast<std::size_t>(o)], x.at(i));
        ++counts[static_cast<std::size_t>(o)];
      }
      for (std::size_t o = 0; o < sums.size(); ++o) {
        EXPECT_NEAR(r[0].at(static_cast<std::int64_t>(o)), sums[o], 1e-4) << "sum mask " << mask;
        EXPECT_EQ(r[1].at(static_cast<std::int64_t>(o)), maxes[o]) << "max mask " << mask;
        if (is_floating(dt)) {
          EXPECT_NEAR(r[2].at(static_cast<std::int64_t>(o)), sums[o] / counts[o], 1e-5);
        }
      }
    }
  }
}

TEST(Kernels, LargeReductionsAreAccurateAndThreadIndependent) {
  std::mt19937 rng(13);
  const Shape s{3, 70001};
  const Tensor x = test::random_tensor(s, f32, rng, 0, 1);
  std::vector<std::vector<Tensor>> results;
  for (int threads : {1, 2}) {
    Graph g;
    auto in = g.input("x", s);
    results.push_back(run({sum(in), sum(in, {0}), sum(in, {1}), mean(in), max(in, {1}), softmax(in), log_softmax(in, 0),
                           layer_norm(in, {}, {})},
                          {{"x", x}}, threads));
  }
  double exact = 0;
  for (std::int64_t i = 0; i < s.numel(); ++i) exact += x.at(i);
  EXPECT_NEAR(results[0][0].item(), exact, 1e-6 * exact);  // f64 accumulation: only the final rounding
  for (std::size_t k = 0; k < results[0].size(); ++k)
    EXPECT_EQ(std::memcmp(results[0][k].raw_data(), results[1][k].raw_data(), results[0][k].nbytes()), 0)
        << "output " << k;
}

TEST(Kernels, BatchNormStatisticsAreAccurateFarFromZero) {
  // One-pass shifted moments in f32 lanes: check mean and variance of data offset by 1e3
  // (where unshifted sums of squares would lose every digit of the variance) against f64.
  std::mt19937 rng(21);
  std::normal_distribution<double> noise(0.0, 0.5);
  const Shape s{64, 3, 10, 10};
  Tensor x = Tensor::empty(s, f32);
  for (std::int64_t i = 0; i < s.numel(); ++i) x.data<float>()[i] = static_cast<float>(1000.0 + noise(rng));
  Graph g;
  auto in = g.input("x", s);
  nn::BatchNorm2d bn(g, "bn", 3, {.momentum = 1.0});  // running statistics = this batch's
  Program p = compile(g, mean(bn(in)), optim::None{});
  p.step({{"x", x}});
  const std::int64_t per = 64 * 100;
  for (std::int64_t c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    for (std::int64_t n = 0; n < 64; ++n)
      for (std::int64_t i = 0; i < 100; ++i) sum += x.at((n * 3 + c) * 100 + i);
    const double mu = sum / per;
    for (std::int64_t n = 0; n < 64; ++n)
      for (std::int64_t i = 0; i < 100; ++i)
        sq += (x.at((n * 3 + c) * 100 + i) - mu) * (x.at((n * 3 + c) * 100 + i) - mu);
    EXPECT_NEAR(p.get("bn.running_mean").at(c), mu, 1e-4);
    EXPECT_NEAR(p.get("bn.running_var").at(c), sq / (per - 1), 1e-4 * sq / per);
  }
}

TEST(Kernels, MatmulOneDnnMatchesReference) {
  std::mt19937 rng(14);
  struct Case {
    Shape a, b;
    MatmulOptions o;
  };
  const Case cases[] = {{{33, 17}, {17, 9}, {}},
                        {{17, 33}, {17, 9}, {true, false}},
                        {{33, 17}, {9, 17}, {false, true}},
                        {{17, 33}, {9, 17}, {true, true}},
                        {{4, 1, 5, 6}, {3, 6, 7}, {}},
                        {{2, 64, 128}, {128, 256}, {}},
                        // Large enough to be cut into row pieces (6, then a shorter tail; and
                        // 2 pieces over every batch, transposed operands).
                        {{333, 512}, {512, 512}, {}},
                        {{3, 256, 131}, {300, 256}, {true, true}}};
  for (const Case& c : cases) {
    const Tensor a = test::random_tensor(c.a, f64, rng), b = test::random_tensor(c.b, f64, rng);
    Graph g;
    auto a64 = g.input("a", c.a, f64), b64 = g.input("b", c.b, f64);
    auto ref = matmul(a64, b64, c.o);
    auto fast = cast(matmul(cast(a64, f32), cast(b64, f32), c.o), f64);
    const auto r = run({ref, fast}, {{"a", a}, {"b", b}});
    // f32 inputs carry 2^-24 relative error; sums of K products bound the difference by
    // about K * 2^-24 * max|a||b| ~ 1e-5 for K = 128.
    EXPECT_CLOSE(r[1], r[0], 2e-5, 1e-4);
  }
}

TEST(Kernels, CastsSaturateAndRound) {
  Graph g;
  auto x = g.input("x", {6}, f64);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor v = Tensor::from_vector<double>({6}, {1.7, -1.7, nan, 1e20, -1e20, 0.0});
  const auto r = run({cast(x, i32), cast(x, i64), cast(x, boolean), cast(cast(x, bf16), f32), cast(cast(x, f16), f64)},
                     {{"x", v}});
  EXPECT_EQ(test::values(r[0]), (std::vector<double>{1, -1, 0, 2147483647, -2147483648.0, 0}));
  EXPECT_EQ(r[1].at(3), static_cast<double>(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(test::values(r[2]), (std::vector<double>{1, 1, 1, 1, 1, 0}));
  EXPECT_NEAR(r[3].at(0), 1.7, 1.7 / 128);
  EXPECT_TRUE(std::isinf(r[4].at(3)));
}

TEST(Kernels, HalfCastsMatchTheSoftwareConversionBitForBit) {
  // The cast kernel converts f32 <-> f16 eight lanes at a time with F16C where the CPU has
  // it, and element by element otherwise: both must give Tensor::to()'s bits (round to nearest
  // even, denormals, overflow to infinity), for every f16 and for f32 values around every
  // rounding boundary, at lengths that leave a remainder of the eight lanes.
  std::vector<float> fs;
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0) continue;  // NaN payloads may differ
    const float f = to_float(Half{static_cast<std::uint16_t>(h)});
    fs.push_back(f);
    fs.push_back(std::nextafter(f, 0.0f));
    fs.push_back(std::nextafter(f, f < 0 ? -INFINITY : INFINITY));
    const float up = to_float(Half{static_cast<std::uint16_t>(h + 1)});
    if (std::isfinite(f) && std::isfinite(up) && (h & 0x7FFFu) != 0x7BFFu) fs.push_back(f + (up - f) / 2);  // a tie
  }
  fs.insert(fs.end(), {65519.0f, 65520.0f, 1e-8f, 3e-8f, -3e-8f, 1e30f, std::numeric_limits<float>::denorm_min()});
  fs.push_back(1.0f);  // an odd count: a remainder after the 8-lane blocks
  const auto n = static_cast<std::int64_t>(fs.size());
  Graph g;
  auto x = g.input("x", {n});
  auto h = g.input("h", {0x10000 - 2046 + 1}, f16);
  std::vector<Half> hs;
  for (std::uint32_t b = 0; b < 0x10000; ++b)
    if (!((b & 0x7C00u) == 0x7C00u && (b & 0x3FFu) != 0)) hs.push_back(Half{static_cast<std::uint16_t>(b)});
  hs.push_back(Half{0x3C00});
  ASSERT_EQ(static_cast<std::int64_t>(hs.size()), h.shape()[0]);
  Tensor xv = Tensor::from_vector<float>({n}, fs), hv = Tensor::empty({h.shape()[0]}, f16);
  std::memcpy(hv.raw_data(), hs.data(), hv.nbytes());
  const Value to_half = cast(x, f16), to_single = cast(h, f32);
  Program p = compile(g, g.scalar(0.0), optim::None{}, {.fusion = false});
  const auto r = p.evaluate({{"x", xv}, {"h", hv}}, {to_half, to_single});
  const Tensor want_h = xv.to(f16), want_f = hv.to(f32);
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_EQ(r[0].data<Half>()[i].bits, want_h.data<Half>()[i].bits) << "f32 " << fs[static_cast<std::size_t>(i)];
  for (std::int64_t i = 0; i < h.shape()[0]; ++i) {
    const float got = r[1].data<float>()[i], want = want_f.data<float>()[i];
    ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "f16 bits " << hs[static_cast<std::size_t>(i)].bits;
  }
}

TEST(Kernels, SixteenBitGraphsComputeInF32) {
  std::mt19937 rng(15);
  const Tensor xv = test::random_tensor({16, 8}, f32, rng), wv = test::random_tensor({8, 4}, f32, rng);
  for (DType low : {bf16, f16}) {
    Graph g;
    auto x = g.input("x", {16, 8}), w = g.input("w", {8, 4});
    auto full = softmax(relu(matmul(x, w)) * 2.0);
    auto half = cast(softmax(relu(matmul(cast(x, low), cast(w, low))) * 2.0), f32);
    const auto r = run({full, half}, {{"x", xv}, {"w", wv}});
    // bf16 keeps 8 significant bits, f16 11: relative error below 2^-7 resp. 2^-10 per rounding.
    EXPECT_CLOSE(r[1], r[0], 1e-3, low == bf16 ? 3e-2 : 4e-3);
  }
}

TEST(Kernels, ShapeOpsOnEveryElementSize) {
  std::mt19937 rng(16);
  for (DType dt : {f32, f64, i32, bf16, boolean}) {
    const Shape s{3, 4, 5};
    Graph g;
    auto x = g.input("x", s, dt);
    const Tensor xv = test::random_tensor(s, dt, rng, -3, 3);
    const auto r = run(
        {permute(x, {2, 0, 1}), slice(x, 1, 1, 4, 2), concat({x, x}, 2), broadcast_to(slice(x, 0, 0, 1), {2, 3, 4, 5})},
        {{"x", xv}});
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t j = 0; j < 4; ++j)
        for (std::int64_t k = 0; k < 5; ++k) {
          const double v = xv.at((i * 4 + j) * 5 + k);
          ASSERT_EQ(r[0].at((k * 3 + i) * 4 + j), v);
          if (j == 1 || j == 3) {
            ASSERT_EQ(r[1].at((i * 2 + (j - 1) / 2) * 5 + k), v);
          }
          ASSERT_EQ(r[2].at((i * 4 + j) * 10 + k), v);
          ASSERT_EQ(r[2].at((i * 4 + j) * 10 + 5 + k), v);
          if (i == 0) {
            ASSERT_EQ(r[3].at(((1 * 3 + 2) * 4 + j) * 5 + k), v);
          }
        }
  }
}

TEST(Kernels, DropoutMaskStatisticsAndDeterminism) {
  const std::int64_t n = 200003;
  Graph g;
  auto x = g.input("x", {n});
  auto y = dropout(x, 0.25);
  auto loss = sum(y);
  auto grad = gradients(loss, {x})[0];
  const Tensor ones = Tensor::full({n}, 1.0, f32);
  auto masks = [&](std::uint64_t seed, std::int64_t step) {
    Program p = compile(g, loss, optim::None{}, {.seed = seed, .outputs = {y, grad}});
    p.set_step_count(step);
    return p.step({{"x", ones}}).outputs();
  };
  const auto a = masks(1, 0), b = masks(1, 0), c = masks(1, 1), d = masks(2, 0);
  std::int64_t kept = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = a[0].at(i);
    ASSERT_TRUE(v == 0.0 || std::abs(v - 1.0 / 0.75) < 1e-6) << v;
    kept += v != 0.0;
    ASSERT_EQ(a[1].at(i), v) << "the backward mask is the forward mask";
  }
  // Binomial(n, 0.75): standard deviation sqrt(n * 0.75 * 0.25) ~ 194; allow 5 of them.
  EXPECT_NEAR(static_cast<double>(kept), 0.75 * static_cast<double>(n), 5 * 194.0);
  EXPECT_EQ(std::memcmp(a[0].raw_data(), b[0].raw_data(), a[0].nbytes()), 0) << "same seed and step";
  EXPECT_NE(std::memcmp(a[0].raw_data(), c[0].raw_data(), a[0].nbytes()), 0) << "another step";
  EXPECT_NE(std::memcmp(a[0].raw_data(), d[0].raw_data(), a[0].nbytes()), 0) << "another seed";
}

TEST(Kernels, IndexErrorsNameThePosition) {
  Graph g;
  auto table = g.parameter("table", {4, 2}, init::normal());
  auto idx = g.input("idx", {3}, i32);
  auto loss = sum(embedding(table, idx));
  Program p = compile(g, loss, optim::SGD{});
  test::expect_error(
      [&] {
        p.step({{"idx", Tensor::from_vector<std::int32_t>({3}, {0, 4, 1})}});
      },
      ErrorKind::InvalidArgument, {"embedding at", "index 4 at position 1", "[0, 4)"});
  EXPECT_TRUE(std::isfinite(p.step({{"idx", Tensor::from_vector<std::int32_t>({3}, {0, 3, 1})}}).get()));
}

}  // namespace
}  // namespace trainrt
