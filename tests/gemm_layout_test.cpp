// runtime/cuda/gemm.h: the row-major GEMM of a matmul node mapped to cuBLASLt's column-major
// call. A column-major reference GEMM with cuBLASLt's argument conventions, run on the CPU
// over the layout gemm_layout() gives, must compute the row-major product for every transpose,
// batch and broadcast pattern: the mapping is checked here without a GPU.
#include "runtime/cuda/gemm.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "test_util.h"

namespace trainrt::detail {
namespace {

/// D = op(X) op(Y) in cuBLASLt's terms: column-major, X and Y as `first`/`second` describe
/// them, D m x n with leading dimension out.ld, batches at their strides.
std::vector<double> column_major_gemm(const GemmLayout& l, std::int64_t batch, const std::vector<double>& x,
                                      const std::vector<double>& y) {
  std::vector<double> d(static_cast<std::size_t>(batch * l.out.stride), 0.0);
  auto at = [](const GemmOperand& o, const std::vector<double>& data, std::int64_t b, std::int64_t row,
               std::int64_t col) {
    // op(o)(row, col): the stored matrix is column-major rows x cols; transposed, swap.
    const std::int64_t r = o.transpose ? col : row, c = o.transpose ? row : col;
    EXPECT_LT(r, o.rows);
    EXPECT_LT(c, o.cols);
    return data[static_cast<std::size_t>(b * o.stride + c * o.ld + r)];
  };
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < l.m; ++i)
      for (std::int64_t j = 0; j < l.n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < l.k; ++p) s += at(l.first, x, b, i, p) * at(l.second, y, b, p, j);
        d[static_cast<std::size_t>(b * l.out.stride + j * l.out.ld + i)] = s;
      }
  return d;
}

/// Row-major C[b] = op(A[b]) op(B[b]) straight from the definition.
std::vector<double> row_major_gemm(const GemmDesc& g, const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> c(static_cast<std::size_t>(g.batch * g.m * g.n), 0.0);
  for (std::int64_t t = 0; t < g.batch; ++t)
    for (std::int64_t i = 0; i < g.m; ++i)
      for (std::int64_t j = 0; j < g.n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < g.k; ++p) {
          const double av = a[static_cast<std::size_t>(t * g.stride_a + (g.transpose_a ? p * g.m + i : i * g.k + p))];
          const double bv = b[static_cast<std::size_t>(t * g.stride_b + (g.transpose_b ? j * g.k + p : p * g.n + j))];
          s += av * bv;
        }
        c[static_cast<std::size_t>((t * g.m + i) * g.n + j)] = s;
      }
  return c;
}

TEST(GemmLayout, EveryTransposeBatchAndBroadcastComputesTheRowMajorProduct) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  int checked = 0;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t batch : {1, 3})
        for (int shared : {0, 1, 2}) {  // 0: both batched; 1: B shared (a weight); 2: A shared
          GemmDesc g;
          g.m = 5;
          g.n = 3;
          g.k = 4;
          g.batch = batch;
          g.transpose_a = ta;
          g.transpose_b = tb;
          g.stride_a = batch > 1 && shared != 2 ? g.m * g.k : 0;
          g.stride_b = batch > 1 && shared != 1 ? g.k * g.n : 0;
          std::vector<double> a(static_cast<std::size_t>(g.m * g.k * (g.stride_a ? batch : 1)));
          std::vector<double> b(static_cast<std::size_t>(g.k * g.n * (g.stride_b ? batch : 1)));
          for (double& v : a) v = u(rng);
          for (double& v : b) v = u(rng);
          const GemmLayout l = gemm_layout(g);
          EXPECT_EQ(l.m, g.n);
          EXPECT_EQ(l.n, g.m);
          EXPECT_EQ(l.k, g.k);
          // cuBLASLt's first operand is our B, its second our A; D column-major is C row-major.
          const std::vector<double> d = column_major_gemm(l, batch, b, a), c = row_major_gemm(g, a, b);
          ASSERT_EQ(d.size(), c.size());
          for (std::size_t i = 0; i < c.size(); ++i)
            ASSERT_NEAR(d[i], c[i], 1e-12)
                << "ta " << ta << " tb " << tb << " batch " << batch << " shared " << shared << " at " << i;
          ++checked;
        }
  EXPECT_EQ(checked, 24);
}

TEST(GemmLayout, TheBiasRunsAlongCublasRowsWhichAreOurOutputFeatures) {
  GemmDesc g;
  g.m = 64;  // rows of the batch
  g.n = 10;  // output features: the bias's length
  g.k = 32;
  g.epilogue = GemmEpilogue::bias_relu;
  EXPECT_EQ(gemm_layout(g).m, 10) << "cuBLASLt's bias has one value per row of D, i.e. per output feature";
}

TEST(GemmLayout, BadDescriptionsAreRefusedByField) {
  auto refused = [](auto edit, std::vector<std::string> parts) {
    GemmDesc g;
    g.m = g.n = g.k = 8;
    edit(g);
    test::expect_error([&] { validate(g); }, ErrorKind::InvalidArgument, parts);
  };
  refused([](GemmDesc& g) { g.dtype = DType::i32; }, {"GEMM", "dtype i32"});
  refused([](GemmDesc& g) { g.k = 0; }, {"k = 0"});
  refused([](GemmDesc& g) { g.m = std::int64_t{1} << 33; }, {"m = 8589934592"});
  refused([](GemmDesc& g) { g.batch = 0; }, {"batch = 0"});
  refused(
      [](GemmDesc& g) {
        g.batch = 2;
        g.stride_a = 10;
      },
      {"stride_a = 10", "64 elements of A"});
  refused([](GemmDesc& g) { g.stride_b = 3; }, {"stride_b = 3"});
  refused(
      [](GemmDesc& g) {
        g.dtype = DType::bf16;
        g.tf32 = true;
      },
      {"TF32", "bf16"});
  refused([](GemmDesc& g) { g.alignment = 24; }, {"alignment = 24"});
  GemmDesc ok;
  ok.m = ok.n = ok.k = 8;
  ok.dtype = DType::f16;
  EXPECT_NO_THROW(validate(ok));
}

}  // namespace
}  // namespace trainrt::detail
