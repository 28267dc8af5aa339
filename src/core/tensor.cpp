#include "trainrt/tensor.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/aligned.h"
#include "core/element.h"
#include "core/error.h"
#include "core/half.h"

namespace trainrt {

namespace detail {

// NOLINTNEXTLINE(cppcoreguidelines-no-malloc): frees std::aligned_alloc memory
void AlignedFree::operator()(void* p) const noexcept { std::free(p); }

namespace {
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): a process-wide count of live buffers, atomic
std::atomic<std::int64_t> g_allocations{0};
}  // namespace

std::int64_t aligned_allocation_count() noexcept { return g_allocations.load(std::memory_order_relaxed); }

AlignedBuffer aligned_alloc_bytes(std::size_t bytes) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t n = align_up(bytes == 0 ? kAlignment : bytes);
  void* p = std::aligned_alloc(kAlignment, n);
  if (p == nullptr) fail(ErrorKind::Runtime, cat("out of host memory allocating ", n, " bytes"));
  return AlignedBuffer(static_cast<std::byte*>(p));
}

double load_as_double(const void* p, DType dtype, std::int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::f16: return half_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::i32: return static_cast<const std::int32_t*>(p)[i];
    case DType::i64: return static_cast<double>(static_cast<const std::int64_t*>(p)[i]);
    case DType::boolean: return static_cast<const std::uint8_t*>(p)[i] ? 1.0 : 0.0;
  }
  return 0.0;
}

void store_from_double(void* p, DType dtype, std::int64_t i, double v) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::f16: static_cast<std::uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::bf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::i32: static_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v); break;
    case DType::i64: static_cast<std::int64_t*>(p)[i] = static_cast<std::int64_t>(v); break;
    case DType::boolean: static_cast<std::uint8_t*>(p)[i] = v != 0.0 ? 1 : 0; break;
  }
}

}  // namespace detail

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.numel_ = shape.numel();
  t.defined_ = true;
  auto buffer = detail::aligned_alloc_bytes(t.nbytes());
  t.data_ = buffer.get();
  t.owner_ = std::shared_ptr<void>(buffer.release(), detail::AlignedFree{});
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  for (std::int64_t i = 0; i < t.numel_; ++i) detail::store_from_double(t.data_, dtype, i, value);
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype) {
  if (data == nullptr && shape.numel() != 0)
    detail::fail(ErrorKind::InvalidArgument, "Tensor::borrow: null data for shape " + shape.to_string());
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.numel_ = shape.numel();
  t.defined_ = true;
  t.data_ = data;
  return t;
}

Tensor Tensor::from_bools(const Shape& shape, const std::vector<bool>& values) {
  if (static_cast<std::int64_t>(values.size()) != shape.numel())
    detail::fail(ErrorKind::ShapeMismatch,
                 detail::cat("Tensor::from_bools: ", values.size(), " values for shape ", shape.to_string()));
  Tensor t = empty(shape, DType::boolean);
  auto* p = static_cast<std::uint8_t*>(t.data_);
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i] ? 1 : 0;
  return t;
}

void Tensor::check_dtype(DType expected) const {
  if (expected != dtype_)
    detail::fail(ErrorKind::DTypeMismatch, detail::cat("Tensor: accessed as ", name(expected), " but the tensor is ",
                                                       name(dtype_), shape_.to_string()));
}

double Tensor::item() const {
  if (numel_ != 1)
    detail::fail(ErrorKind::ShapeMismatch,
                 "Tensor::item: tensor has shape " + shape_.to_string() + ", not one element");
  return detail::load_as_double(data_, dtype_, 0);
}

double Tensor::at(std::int64_t i) const {
  if (i < 0 || i >= numel_)
    detail::fail(ErrorKind::InvalidArgument,
                 detail::cat("Tensor::at: index ", i, " out of range for ", numel_, " elements"));
  return detail::load_as_double(data_, dtype_, i);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape.numel() != numel_)
    detail::fail(ErrorKind::ShapeMismatch,
                 "Tensor::reshape: cannot view " + shape_.to_string() + " as " + shape.to_string());
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (shape_.rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    detail::fail(ErrorKind::InvalidArgument,
                 detail::cat("Tensor::rows: [", begin, ", ", end, ") of shape ", shape_.to_string()));
  std::vector<std::int64_t> dims = shape_.dims();
  const std::int64_t row = dims[0] ? numel_ / dims[0] : 0;
  dims[0] = end - begin;
  Tensor t = *this;
  t.shape_ = Shape(std::move(dims));
  t.numel_ = t.shape_.numel();
  t.data_ = static_cast<std::byte*>(data_) + static_cast<std::size_t>(begin * row) * size_of(dtype_);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  for (std::int64_t i = 0; i < numel_; ++i)
    detail::store_from_double(t.data_, dtype, i, detail::load_as_double(data_, dtype_, i));
  return t;
}

}  // namespace trainrt
