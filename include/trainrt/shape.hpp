// trainrt/shape.hpp — static tensor shapes and numpy broadcasting.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace trainrt {

/// The dimensions of a tensor, outermost first; rank 0 is a scalar. Dimensions are >= 0
/// (the constructors throw trainrt::Error otherwise). Layout is always dense row-major.
class Shape {
 public:
  /// A scalar (rank 0).
  Shape() = default;
  /// The shape with these dimensions, `{128, 784}`; throws trainrt::Error (InvalidArgument)
  /// for a negative dimension.
  Shape(std::initializer_list<std::int64_t> dims);
  /// The shape with these dimensions; throws trainrt::Error (InvalidArgument) for a negative
  /// dimension.
  explicit Shape(std::vector<std::int64_t> dims);

  /// The number of dimensions (0 for a scalar).
  std::int64_t rank() const noexcept { return static_cast<std::int64_t>(dims_.size()); }
  /// Dimension `i`, 0 <= i < rank() (unchecked).
  std::int64_t operator[](std::int64_t i) const noexcept { return dims_[static_cast<std::size_t>(i)]; }
  /// Dimension `axis`, where a negative axis counts from the end; throws when out of range.
  std::int64_t dim(std::int64_t axis) const;
  /// Product of the dimensions (1 for a scalar).
  std::int64_t numel() const noexcept;
  /// The dimensions, outermost first.
  const std::vector<std::int64_t>& dims() const noexcept { return dims_; }
  /// Iterator to the outermost dimension (a Shape is a range of dimensions).
  auto begin() const noexcept { return dims_.begin(); }
  /// Iterator past the innermost dimension.
  auto end() const noexcept { return dims_.end(); }
  /// True when both shapes have the same dimensions.
  bool operator==(const Shape& other) const noexcept { return dims_ == other.dims_; }
  /// "[128,784]"; "[]" for a scalar.
  std::string to_string() const;

 private:
  std::vector<std::int64_t> dims_;
};

/// The numpy broadcast of two shapes; throws trainrt::Error (ShapeMismatch) when they do not
/// broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b);

/// Normalizes `axis` (negative counts from the end) against `rank`; throws when out of range.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank);

}  // namespace trainrt
