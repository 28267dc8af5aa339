// Shapes, broadcasting, host tensors and the 16-bit float conversions.
#include <cmath>
#include <cstring>
#include <limits>

#include "test_util.h"

namespace trainrt {
namespace {

TEST(Shape, BasicsAndBroadcasting) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s.dim(-1), 4);
  EXPECT_EQ(s.to_string(), "[2,3,4]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ(broadcast_shapes({2, 1, 4}, {3, 1}), (Shape{2, 3, 4}));
  EXPECT_EQ(broadcast_shapes({}, {5}), (Shape{5}));
  test::expect_error(
      [] {
        broadcast_shapes({2, 3}, {4});
      },
      ErrorKind::ShapeMismatch, {"[2,3]", "[4]", "do not broadcast"});
  test::expect_error([] { Shape({2, -1}); }, ErrorKind::InvalidArgument, {"dimension 1 is -1"});
  test::expect_error([&] { (void)s.dim(3); }, ErrorKind::InvalidArgument, {"axis 3 is out of range for rank 3"});
  EXPECT_EQ(normalize_axis(-3, 3), 0);
}

TEST(Tensor, CreationAccessAndViews) {
  Tensor t = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(t.defined());
  EXPECT_FALSE(Tensor().defined());
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_EQ(t.rows(1, 2).to_vector<float>(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(t.reshape({3, 2}).shape(), (Shape{3, 2}));
  Tensor c = t.clone();
  c.data<float>()[0] = 9;
  EXPECT_EQ(t.data<float>()[0], 1);  // clone copies; copies share
  Tensor shared = t;
  shared.data<float>()[0] = 7;
  EXPECT_EQ(t.data<float>()[0], 7);
  EXPECT_EQ(Tensor::full({2}, 2.5, f64).to_vector<double>(), (std::vector<double>{2.5, 2.5}));
  EXPECT_EQ(Tensor::full({2}, 3.0, i32).at(1), 3.0);
  EXPECT_EQ(t.to(i64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{7, 2, 3, 4, 5, 6}));
  EXPECT_DOUBLE_EQ(Tensor::from_bools({2}, {true, false}).at(0), 1.0);
  float buffer[4] = {1, 2, 3, 4};
  Tensor b = Tensor::borrow(buffer, {4}, f32);
  EXPECT_EQ(b.data<float>(), buffer);
  test::expect_error([&] { t.data<double>(); }, ErrorKind::DTypeMismatch, {"accessed as f64", "f32[2,3]"});
  test::expect_error([&] { t.item(); }, ErrorKind::ShapeMismatch, {"not one element"});
  test::expect_error([&] { t.reshape({4, 2}); }, ErrorKind::ShapeMismatch, {"[2,3]", "[4,2]"});
  test::expect_error([&] { t.rows(1, 3); }, ErrorKind::InvalidArgument, {"rows"});
  test::expect_error(
      [] {
        Tensor::from_vector<float>({3}, {1, 2});
      },
      ErrorKind::ShapeMismatch, {"2 values for shape [3]"});
  test::expect_error([] { Tensor::borrow(nullptr, {3}, f32); }, ErrorKind::InvalidArgument, {"null data"});
}

TEST(Half, RoundTripsAndRoundsToNearestEven) {
  EXPECT_EQ(to_float(to_half(1.0f)), 1.0f);
  EXPECT_EQ(to_float(to_half(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(to_float(to_half(65520.0f))));        // rounds up past the largest half
  EXPECT_EQ(to_float(to_half(5.9604645e-8f)), 5.9604645e-8f);  // smallest denormal
  EXPECT_EQ(to_float(to_half(2.9802322e-8f)), 0.0f);           // half of it: ties to even (0)
  EXPECT_TRUE(std::isnan(to_float(to_half(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(to_float(to_half(1.0f + 1.0f / 2048)), 1.0f);                // tie -> even
  EXPECT_EQ(to_float(to_half(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);  // tie -> even (up)
  EXPECT_EQ(to_float(to_bfloat16(1.0f + 1.0f / 256)), 1.0f);             // tie -> even
  EXPECT_EQ(to_float(to_bfloat16(3.0f)), 3.0f);
  EXPECT_TRUE(std::isnan(to_float(to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  // Every half converts to float and back unchanged.
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const Half h{static_cast<std::uint16_t>(bits)};
    const float f = to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(to_half(f).bits, h.bits) << bits;
  }
}

TEST(DType, Names) {
  EXPECT_EQ(name(boolean), "bool");
  EXPECT_EQ(size_of(bf16), 2u);
  EXPECT_TRUE(is_floating(f16));
  EXPECT_FALSE(is_floating(i32));
  EXPECT_TRUE(is_integer(i64));
  EXPECT_STREQ(to_string(ErrorKind::ShapeMismatch), "shape mismatch");
}

}  // namespace
}  // namespace trainrt
