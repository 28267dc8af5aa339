// trainrt/tensor.hpp — host tensors: what the application feeds and reads back.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "trainrt/dtype.hpp"
#include "trainrt/errors.hpp"
#include "trainrt/shape.hpp"

namespace trainrt {

/// A dense row-major tensor in host memory. Copying a Tensor shares its storage (like a
/// shared_ptr); clone() copies the data. Storage is either owned (allocated here, 64-byte
/// aligned) or borrowed from the caller, who then keeps it alive while the Tensor is used.
class Tensor {
 public:
  /// An undefined tensor (defined() is false).
  Tensor() = default;

  /// Uninitialized owned storage.
  static Tensor empty(const Shape& shape, DType dtype);
  /// Owned storage filled with zeros.
  static Tensor zeros(const Shape& shape, DType dtype);
  /// Owned storage filled with `value` converted to `dtype`.
  static Tensor full(const Shape& shape, double value, DType dtype);
  /// Wraps caller memory without copying; `data` must hold shape.numel() elements of `dtype`
  /// and outlive every use of the tensor.
  static Tensor borrow(void* data, const Shape& shape, DType dtype);
  /// Copies `values` (shape.numel() of them, else trainrt::Error) into owned storage.
  template <class T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values);
  /// from_vector for booleans (std::vector<bool> is bit-packed, so it gets its own function).
  static Tensor from_bools(const Shape& shape, const std::vector<bool>& values);

  /// False for a default-constructed Tensor, which has no storage.
  bool defined() const noexcept { return defined_; }
  /// The element type.
  DType dtype() const noexcept { return dtype_; }
  /// The dimensions.
  const Shape& shape() const noexcept { return shape_; }
  /// The number of elements (shape().numel()).
  std::int64_t numel() const noexcept { return numel_; }
  /// The size of the elements in bytes.
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel_) * size_of(dtype_); }

  /// The first element, untyped (nullptr when undefined).
  void* raw_data() noexcept { return data_; }
  /// The first element, untyped and read-only (nullptr when undefined).
  const void* raw_data() const noexcept { return data_; }
  /// Typed access; throws trainrt::Error (DTypeMismatch) when T does not match dtype().
  template <class T>
  T* data();
  /// Typed read-only access; throws trainrt::Error (DTypeMismatch) when T does not match
  /// dtype().
  template <class T>
  const T* data() const;
  /// A copy of the elements; throws when T does not match dtype().
  template <class T>
  std::vector<T> to_vector() const;
  /// The single element of a one-element tensor, converted to double.
  double item() const;
  /// Element `i` of the flattened tensor converted to double (any dtype; bounds-checked).
  double at(std::int64_t i) const;

  /// A deep copy in owned storage.
  Tensor clone() const;
  /// The same storage seen with another shape of equal numel.
  Tensor reshape(const Shape& shape) const;
  /// Rows [begin, end) of the leading dimension, sharing storage.
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  /// An owned copy converted to `dtype`.
  Tensor to(DType dtype) const;

 private:
  void check_dtype(DType expected) const;
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  std::int64_t numel_ = 0;
  bool defined_ = false;
};

template <class T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values) {
  static_assert(!std::is_same_v<T, bool>, "use Tensor::from_bools for booleans");
  if (static_cast<std::int64_t>(values.size()) != shape.numel())
    throw Error(ErrorKind::ShapeMismatch,
                "Tensor::from_vector: " + std::to_string(values.size()) + " values for shape " + shape.to_string());
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.data_, values.data(), values.size() * sizeof(T));
  return t;
}

template <class T>
T* Tensor::data() {
  check_dtype(dtype_of<T>());
  return static_cast<T*>(data_);
}

template <class T>
const T* Tensor::data() const {
  check_dtype(dtype_of<T>());
  return static_cast<const T*>(data_);
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  static_assert(!std::is_same_v<T, bool>, "read booleans with at() or data<bool>()");
  const T* p = data<T>();
  return std::vector<T>(p, p + numel_);
}

}  // namespace trainrt
