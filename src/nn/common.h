// nn/common.h — what the nn modules share: argument checks with messages naming the layer, and
// the multi-head attention core of nn::MultiHeadAttention and the BERT layers (splitting heads,
// masks, softmax attention fused or explicit with dropout on the weights, merging heads).
#pragma once

#include <string>
#include <string_view>

#include "trainrt/ops.hpp"

namespace trainrt::detail {

/// Throws InvalidArgument "<layer> '<name>' at <loc>: <what> must be > 0, got v" unless v > 0.
void require_positive(std::string_view layer, const std::string& name, std::string_view what, std::int64_t v,
                      const Loc& loc);
/// Throws InvalidArgument naming the layer unless 0 <= p < 1.
void require_probability(std::string_view layer, const std::string& name, std::string_view what, double p,
                         const Loc& loc);
/// Throws InvalidArgument naming the layer unless `heads` divides `hidden` (both already > 0).
void require_divisible(std::string_view layer, const std::string& name, std::int64_t hidden, std::int64_t heads,
                       const Loc& loc);
/// `prefix` + "." + `name`, or `name` alone for an empty prefix.
std::string join_name(const std::string& prefix, const std::string& name);

/// Checks that x is a floating [B, L, E] tensor (E = `embed` when > 0); throws ShapeMismatch
/// or DTypeMismatch naming the layer and `what`.
void check_sequence(std::string_view layer, const std::string& name, std::string_view what, const Value& x,
                    std::int64_t embed, const Loc& loc);

/// Checks an optional key mask (bool [B, Lk], true = attend) and returns it as [B, 1, 1, Lk]
/// for broadcasting over heads and queries; absent in, absent out. Throws ShapeMismatch or
/// DTypeMismatch naming the layer.
Value key_mask(std::string_view layer, const std::string& name, const Value& mask, std::int64_t batch,
               std::int64_t keys, const Loc& loc);

/// Multi-head attention of projected q[B, Lq, E], k[B, Lk, E], v[B, Lk, E] with `heads`
/// heads -> [B, Lq, E] (heads merged). `mask4` is absent or bool [B, 1, 1, Lk] (key_mask()).
/// With dropout p > 0 the weights softmax(q k^T / sqrt(D) + mask) are formed explicitly so
/// that dropout applies to them (masked scores are set to the dtype's lowest value, as Hugging
/// Face does); otherwise the fused scaled_dot_product_attention() op runs. Causal: query i
/// attends to keys j <= i.
Value multi_head_attention(const Value& q, const Value& k, const Value& v, std::int64_t heads, const Value& mask4,
                           bool causal, double dropout, const Loc& loc);

}  // namespace trainrt::detail
