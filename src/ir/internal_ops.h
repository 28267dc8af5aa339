// ir/internal_ops.h — builders for ops that only libtrainrt creates: the backward ops used
// by gradient rules, the training/evaluation forms that lowering chooses, and assignment.
// Each mirrors a public op; the public header documents the math.
#pragma once

#include <vector>

#include "ir/attrs.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

/// Reduces g (a broadcast of `shape`) back to `shape` by summing the broadcast axes.
Value sum_to(const Value& g, const Shape& shape, const Loc& loc);

Value relu_backward(const Value& g, const Value& x, const Loc& loc);
Value gelu_backward(const Value& g, const Value& x, bool tanh_approximation, const Loc& loc);
Value sigmoid_backward(const Value& g, const Value& y, const Loc& loc);
Value tanh_backward(const Value& g, const Value& y, const Loc& loc);

Value slice_backward(const Value& g, const Shape& input_shape, const SliceAttrs& attrs, const Loc& loc);

Value softmax_backward(const Value& g, const Value& y, std::int64_t axis, const Loc& loc);
Value log_softmax_backward(const Value& g, const Value& y, std::int64_t axis, const Loc& loc);
/// d loss / d logits for cross_entropy: (softmax - smoothed one-hot) * g / count.
Value cross_entropy_backward(const Value& g, const Value& logits, const Value& labels, const Value& lse,
                             const CrossEntropyAttrs& attrs, const Loc& loc);

Value embedding_backward(const Value& g, const Value& indices, std::int64_t rows, const Loc& loc);

Value conv2d_backward_data(const Value& g, const Value& weight, const Shape& x_shape, const Conv2dAttrs& attrs,
                           const Loc& loc);
Value conv2d_backward_weight(const Value& g, const Value& x, const Shape& w_shape, const Conv2dAttrs& attrs,
                             const Loc& loc);
Value max_pool2d_backward(const Value& g, const Value& x, const Value& y, const Pool2dAttrs& attrs, const Loc& loc);
Value avg_pool2d_backward(const Value& g, const Shape& x_shape, const Pool2dAttrs& attrs, const Loc& loc);

/// Training-mode batch norm: {y, batch mean, biased batch variance}, each statistic [C].
std::vector<Value> batch_norm_train(const Value& x, const Value& gamma, const Value& beta, const NormAttrs& attrs,
                                    const Loc& loc);
Value batch_norm_eval(const Value& x, const Value& gamma, const Value& beta, const Value& mean, const Value& var,
                      const NormAttrs& attrs, const Loc& loc);
/// {dx, dgamma, dbeta}; dgamma/dbeta are computed even when gamma/beta are absent.
std::vector<Value> batch_norm_backward(const Value& g, const Value& x, const Value& gamma, const Value& mean,
                                       const Value& var, const NormAttrs& attrs, const Loc& loc);
/// {dx, dgamma, dbeta} of layer_norm, from its saved mean and 1/std.
std::vector<Value> layer_norm_backward(const Value& g, const Value& x, const Value& gamma, const Value& mean,
                                       const Value& rstd, const NormAttrs& attrs, const Loc& loc);

/// x * mask / (1 - p), mask drawn from Philox(key, element, step); step is an i64 scalar.
Value dropout_apply(const Value& x, const Value& step, const DropoutAttrs& attrs, const Loc& loc);

/// {dq, dk, dv} of attention, from its output and saved log-sum-exp.
std::vector<Value> attention_backward(const Value& g, const Value& q, const Value& k, const Value& v, const Value& mask,
                                      const Value& out, const Value& lse, const AttentionAttrs& attrs, const Loc& loc);

/// Collectives of data-parallel training (ir/op_collective.cpp has their semantics).
std::vector<Value> all_reduce(const std::vector<Value>& tensors, const CollectiveAttrs& attrs, const Loc& loc);
Value reduce_scatter(const std::vector<Value>& tensors, const CollectiveAttrs& attrs, const Loc& loc);
Value all_gather(const Value& shard, const CollectiveAttrs& attrs, const Loc& loc);
/// Elements per rank of a reduce_scatter over `total` elements: ceil(total / world).
std::int64_t collective_block(std::int64_t total, std::int64_t world);

/// One pass over every gradient (ir/op_multi_tensor.cpp): {found, sum_of_squares}, where
/// found (bool scalar) is set when any element of any gradient is infinite or NaN, and
/// sum_of_squares (f32 scalar) is the sum of every element's square (accumulated in f64 on
/// the CPU; in a fixed order, so it does not depend on threads).
std::vector<Value> gradient_stats(const std::vector<Value>& grads, const Loc& loc);

/// Makes `value` the new content of variable `target` at the end of the step.
void assign(const Value& target, const Value& value, const Loc& loc);

}  // namespace trainrt::detail
