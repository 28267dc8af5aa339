// ir/attrs.h — per-family attributes of IR nodes.
//
// Axes are stored normalized (non-negative). Output shapes and dtypes live in the node's
// output types, so attributes hold only what inference cannot recover.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "trainrt/graph.hpp"
#include "trainrt/init.hpp"
#include "trainrt/tensor.hpp"

namespace trainrt::detail {

using Pair2 = std::array<std::int64_t, 2>;

struct NoAttrs {};
struct VariableAttrs {
  Init init;
  VariableKind kind = VariableKind::parameter;
};
struct ConstantAttrs {
  std::shared_ptr<const Tensor> value;  // immutable once the node exists
};
struct ScalarAttrs {
  double value = 0.0;
};
struct GeluAttrs {
  bool tanh_approximation = false;
};
struct PermAttrs {
  std::vector<std::int64_t> perm;
};
struct SliceAttrs {
  std::int64_t axis = 0, start = 0, step = 1;  // output extent along axis is in the type
};
struct AxisAttrs {
  std::int64_t axis = 0;
};
struct ReduceAttrs {
  std::vector<std::int64_t> axes;  // sorted, unique
  bool keepdims = false;
};
struct MatmulAttrs {
  bool transpose_a = false, transpose_b = false;
};
struct Conv2dAttrs {
  Pair2 stride{1, 1}, padding{0, 0}, dilation{1, 1};
  std::int64_t groups = 1;
};
struct Pool2dAttrs {
  Pair2 kernel{2, 2}, stride{2, 2}, padding{0, 0};
  bool ceil_mode = false, count_include_pad = true;
};
struct CrossEntropyAttrs {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};
struct NormAttrs {
  double momentum = 0.1, eps = 1e-5;
  std::int64_t normalized_axes = 1;  // layer norm: trailing axes normalized together
};
struct DropoutAttrs {
  double p = 0.0;
  std::uint64_t key = 0;  // stream key: hash of (seed, node); set when lowered for training
};
struct FusedBody;  // ir/fused.h
struct FusedAttrs {
  std::shared_ptr<const FusedBody> body;  // immutable once the node exists
};
struct AttentionAttrs {
  bool causal = false;
  double scale = 1.0;
};

/// A collective over the ranks of a data-parallel job. `bucket` orders the collectives of a
/// step (every rank issues them in this order); `scale` multiplies the combined result (1/world
/// averages a sum); `world` is the number of ranks the graph was built for.
struct CollectiveAttrs {
  std::int64_t bucket = 0;
  std::int64_t world = 1;
  double scale = 1.0;
};

using Attrs = std::variant<NoAttrs, VariableAttrs, ConstantAttrs, ScalarAttrs, GeluAttrs, PermAttrs, SliceAttrs,
                           AxisAttrs, ReduceAttrs, MatmulAttrs, Conv2dAttrs, Pool2dAttrs, CrossEntropyAttrs, NormAttrs,
                           DropoutAttrs, AttentionAttrs, CollectiveAttrs, FusedAttrs>;

// Equality and hashing (ir/attrs.cpp), for common-subexpression elimination and
// fingerprints. Both are written as a std::visit over one overload per alternative, with a
// catch-all that fails to compile: adding an alternative to Attrs without a case in each is
// a build error, not a silent "unequal".

/// True when `a` and `b` hold the same alternative with equal fields. Floating fields compare
/// by their bits (so -0.0 != +0.0, and a NaN equals the same NaN); constants compare by
/// dtype, shape and bytes. Throws nothing.
bool attrs_equal(const Attrs& a, const Attrs& b) noexcept;  // NOLINT(bugprone-exception-escape): see attrs.cpp
/// A hash consistent with attrs_equal (equal attributes hash equally); a constant's hash
/// reads every byte of its tensor. Throws nothing.
std::uint64_t attrs_hash(const Attrs& a) noexcept;  // NOLINT(bugprone-exception-escape): see attrs.cpp
/// True when two tensors have the same dtype, shape and bytes (both undefined counts as
/// equal). Throws nothing.
bool tensor_bytes_equal(const Tensor& a, const Tensor& b) noexcept;
/// A hash of a tensor's dtype, shape and bytes, consistent with tensor_bytes_equal.
std::uint64_t tensor_hash(const Tensor& t) noexcept;

}  // namespace trainrt::detail
