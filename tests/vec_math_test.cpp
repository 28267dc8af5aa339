// tests/vec_math_test.cpp — the f32 array loops of vec_kernels.h (exp, sigmoid, exact GELU
// and its backward, the cross-entropy's sums) against double precision, at special values,
// and the vector bodies against their scalar tails.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/cpu/vec_kernels.h"
#include "test_util.h"

namespace trainrt {
namespace {

using namespace detail::cpu;

/// About 2^31 / 9973 floats spread over [lo, hi] by their bit patterns (every 9973rd float of
/// each sign), so the sweep covers every binade.
std::vector<float> sweep(float lo, float hi) {
  std::vector<float> v;
  for (std::uint32_t bits = 0; bits < 0x7f800000u; bits += 9973) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    if (x <= hi && x >= lo) v.push_back(x);
    if (-x <= hi && -x >= lo) v.push_back(-x);
  }
  return v;
}

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double gelu_ref(double x) { return x * phi(x); }
double gelu_backward_ref(double x) { return phi(x) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }

/// Runs f over xs (n a multiple of 16 plus 5, so the last 5 are a tail) and returns the results.
template <class F>
std::vector<float> run_array(const std::vector<float>& xs, F f) {
  std::vector<float> y(xs.size());
  f(xs.data(), y.data(), static_cast<std::int64_t>(xs.size()));
  return y;
}

/// How many results miss |got - want(x)| <= rel |want| + abs, ignoring where want is not a
/// normal float; prints the first few.
template <class Want>
int misses(const std::vector<float>& xs, const std::vector<float>& got, Want want, double rel, double abs) {
  int bad = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double w = want(static_cast<double>(xs[i]));
    if (std::fabs(w) < std::numeric_limits<float>::min() || std::fabs(w) > std::numeric_limits<float>::max()) continue;
    const double err = std::fabs(static_cast<double>(got[i]) - w);
    if (!(err <= rel * std::fabs(w) + abs) && bad++ < 5)
      ADD_FAILURE() << "x = " << xs[i] << ": got " << got[i] << ", want " << w << " (relative error "
                    << err / std::fabs(w) << ")";
  }
  return bad;
}

TEST(VecMath, ExpIsWithinTwoUlp) {
  const std::vector<float> xs = sweep(-87.0f, 88.0f);
  EXPECT_EQ(misses(
                xs, run_array(xs, exp_f32_array), [](double x) { return std::exp(x); }, 2 * 0x1p-24, 0),
            0);
}

TEST(VecMath, SigmoidIsAccurate) {
  const std::vector<float> xs = sweep(-80.0f, 80.0f);
  EXPECT_EQ(misses(
                xs, run_array(xs, sigmoid_f32_array), [](double x) { return 1 / (1 + std::exp(-x)); }, 4 * 0x1p-24, 0),
            0);
}

TEST(VecMath, GeluKeepsItsLeftTail) {
  // 1 + erf(x / sqrt 2) in f32 is 0 below x = -5.5; Phi computed from erfc keeps the tail.
  const std::vector<float> xs = sweep(-12.0f, 12.0f);
  EXPECT_EQ(misses(xs, run_array(xs, gelu_f32_array), gelu_ref, 1e-6, 0), 0);
  const std::vector<float> deep = run_array(std::vector<float>{-9.0f}, gelu_f32_array);
  EXPECT_NEAR(deep[0], gelu_ref(-9.0), 1e-6 * std::fabs(gelu_ref(-9.0)));
}

TEST(VecMath, GeluBackwardIsAccurate) {
  const std::vector<float> xs = sweep(-12.0f, 12.0f);
  std::vector<float> g(xs.size(), 1.0f), y(xs.size());
  gelu_backward_f32_array(g.data(), xs.data(), y.data(), static_cast<std::int64_t>(xs.size()));
  // Phi(x) + x phi(x) cancels near its zero, x = -0.75, to a few ulp of Phi (~0.2) there.
  EXPECT_EQ(misses(xs, y, gelu_backward_ref, 2e-6, 1e-7), 0);
}

TEST(VecMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> xs = {-inf, -200.0f, -88.0f, 0.0f, -0.0f, 89.0f, 200.0f, inf, nan};
  const std::vector<float> e = run_array(xs, exp_f32_array);
  EXPECT_EQ(e[0], 0.0f);
  EXPECT_EQ(e[1], 0.0f);
  EXPECT_EQ(e[3], 1.0f);
  EXPECT_EQ(e[4], 1.0f);
  EXPECT_EQ(e[5], inf);
  EXPECT_EQ(e[7], inf);
  EXPECT_TRUE(std::isnan(e[8]));
  const std::vector<float> s = run_array(xs, sigmoid_f32_array);
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_EQ(s[3], 0.5f);
  EXPECT_EQ(s[7], 1.0f);
  EXPECT_TRUE(std::isnan(s[8]));
  const std::vector<float> g = run_array(xs, gelu_f32_array);
  EXPECT_EQ(g[1], -0.0f);
  EXPECT_EQ(g[3], 0.0f);
  EXPECT_EQ(g[6], 200.0f);
  EXPECT_EQ(g[7], inf);
  EXPECT_TRUE(std::isnan(g[8]));
}

TEST(VecMath, VectorBodyAndScalarTailGiveTheSameBits) {
  // 21 values: 16 in the vector body, 5 in the tail; shifted by 8, each value lands in the
  // other part.
  std::vector<float> xs;
  for (int i = 0; i < 21; ++i) xs.push_back(-6.0f + 0.61f * static_cast<float>(i));
  std::vector<float> shifted(xs.begin() + 8, xs.end());
  shifted.insert(shifted.end(), xs.begin(), xs.begin() + 8);
  for (auto fn : {exp_f32_array, sigmoid_f32_array, gelu_f32_array}) {
    const std::vector<float> a = run_array(xs, fn), b = run_array(shifted, fn);
    for (int i = 0; i < 21; ++i)
      EXPECT_EQ(a[static_cast<std::size_t>(i)], b[static_cast<std::size_t>((i + 13) % 21)]) << i;
  }
}

TEST(VecMath, SumExpMatchesDoubleAndIsOrderFixed) {
  std::vector<float> x(5000);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 4.0f;
  double want = 0;
  for (float v : x) want += std::exp(static_cast<double>(v) - 4.0);
  const double got = sum_exp_f32(x.data(), 4.0f, static_cast<std::int64_t>(x.size()));
  EXPECT_NEAR(got, want, 1e-6 * want);
  EXPECT_EQ(got, sum_exp_f32(x.data(), 4.0f, static_cast<std::int64_t>(x.size())));
  std::vector<float> d(x.size());
  softmax_minus_f32(x.data(), 4.0f, 0.5f, 0.01f, d.data(), static_cast<std::int64_t>(x.size()));
  for (std::size_t i = 0; i < x.size(); i += 101)
    EXPECT_NEAR(d[i], 0.5 * (std::exp(static_cast<double>(x[i]) - 4.0) - 0.01), 1e-6) << i;
}

}  // namespace
}  // namespace trainrt
