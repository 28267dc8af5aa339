#include "trainrt/shape.hpp"

#include <algorithm>

#include "core/error.h"

namespace trainrt {

namespace {
void check_dims(const std::vector<std::int64_t>& dims) {
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (dims[i] < 0)
      detail::fail(ErrorKind::InvalidArgument,
                   detail::cat("Shape: dimension ", i, " is ", dims[i], "; dimensions must be >= 0"));
}
}  // namespace

Shape::Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) { check_dims(dims_); }
Shape::Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) { check_dims(dims_); }

std::int64_t Shape::dim(std::int64_t axis) const {
  return dims_[static_cast<std::size_t>(normalize_axis(axis, rank()))];
}

std::int64_t Shape::numel() const noexcept {
  std::int64_t n = 1;
  for (auto d : dims_) n *= d;
  return n;
}

std::string Shape::to_string() const {
  std::string s;
  s.reserve(2 + dims_.size() * 4);
  s.push_back('[');
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s.push_back(',');
    s.append(std::to_string(dims_[i]));
  }
  s.push_back(']');
  return s;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::int64_t rank = std::max(a.rank(), b.rank());
  std::vector<std::int64_t> out(static_cast<std::size_t>(rank));
  for (std::int64_t i = 0; i < rank; ++i) {
    const std::int64_t ia = a.rank() - rank + i, ib = b.rank() - rank + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      detail::fail(ErrorKind::ShapeMismatch,
                   detail::cat("shapes ", a.to_string(), " and ", b.to_string(), " do not broadcast (axis ", i,
                               " of the result: ", da, " vs ", db, ")"));
    out[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank) {
  const std::int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    detail::fail(ErrorKind::InvalidArgument, detail::cat("axis ", axis, " is out of range for rank ", rank,
                                                         " (valid: ", -rank, "..", rank - 1, ")"));
  return a;
}

}  // namespace trainrt
