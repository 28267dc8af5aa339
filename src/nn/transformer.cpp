// nn/transformer.cpp — Dropout, MLP, MultiHeadAttention and TransformerEncoderLayer.
#include <cmath>
#include <utility>

#include "core/error.h"
#include "nn/common.h"
#include "trainrt/nn/transformer.hpp"

namespace trainrt::nn {

using detail::cat;
using detail::fail;
using detail::require_positive;
using detail::require_probability;
using detail::where;

Value activation(const Value& x, Activation act, Loc loc) {
  return act == Activation::gelu ? gelu(x, GeluApproximation::none, loc) : relu(x, loc);
}

// ---- Dropout -------------------------------------------------------------------------------------

Dropout::Dropout(double probability, Loc loc) : p(probability) {
  require_probability("Dropout", "", "p", probability, loc);
}

Value Dropout::operator()(const Value& x, Loc loc) const { return p == 0.0 ? x : dropout(x, p, loc); }

// ---- MLP -------------------------------------------------------------------------------------------

namespace {

/// Checks the MLP's arguments; returns `sizes` for the member initializer.
std::vector<std::int64_t> checked_sizes(const std::string& name, std::vector<std::int64_t> sizes, double dropout,
                                        const Loc& loc) {
  if (sizes.size() < 2)
    fail(ErrorKind::InvalidArgument,
         cat("MLP '", name, "' at ", where(loc), ": needs at least two sizes (input and output), got ", sizes.size()));
  for (std::size_t i = 0; i < sizes.size(); ++i) require_positive("MLP", name, cat("sizes[", i, "]"), sizes[i], loc);
  require_probability("MLP", name, "dropout", dropout, loc);
  return sizes;
}

}  // namespace

MLP::MLP(Graph& graph, const std::string& name, std::vector<std::int64_t> sizes, Activation activation_kind,
         double dropout_p, Loc loc)
    : act(activation_kind), dropout(0.0) {
  sizes = checked_sizes(name, std::move(sizes), dropout_p, loc);
  dropout = Dropout(dropout_p, loc);
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i)
    layers.emplace_back(graph, cat(name, ".", 3 * i), sizes[i], sizes[i + 1], true, loc);
}

Value MLP::operator()(const Value& x, Loc loc) const {
  Value h = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    h = layers[i](h, loc);
    if (i + 1 < layers.size()) h = dropout(activation(h, act, loc), loc);
  }
  return h;
}

// ---- MultiHeadAttention ----------------------------------------------------------------------------

namespace {

/// Checks the attention's sizes and returns embed_dim (for the first member initializer).
std::int64_t checked_embed(const std::string& name, std::int64_t embed_dim, std::int64_t num_heads, double dropout,
                           const Loc& loc) {
  require_positive("MultiHeadAttention", name, "embed_dim", embed_dim, loc);
  require_positive("MultiHeadAttention", name, "num_heads", num_heads, loc);
  detail::require_divisible("MultiHeadAttention", name, embed_dim, num_heads, loc);
  require_probability("MultiHeadAttention", name, "dropout", dropout, loc);
  return embed_dim;
}

/// x[B, L, E] @ w[rows of in_proj_weight]^T + b -> [B, L, E].
Value project(const Value& x, const Value& w, const Value& b, const Loc& loc) {
  const Shape& s = x.shape();
  Value y = matmul(flatten(x, 0, 1, loc), w, {.transpose_a = false, .transpose_b = true}, loc);
  if (b.valid()) y = add(y, b, loc);
  return reshape(y, {s[0], s[1], w.shape()[0]}, loc);
}

bool same_value(const Value& a, const Value& b) {
  return a.impl() == b.impl() && a.node() == b.node() && a.output() == b.output();
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(Graph& graph, const std::string& layer_name, std::int64_t embed_dim,
                                       std::int64_t heads, double dropout_p, bool bias, Loc loc)
    : in_proj_weight(graph.parameter(layer_name + ".in_proj_weight",
                                     {3 * checked_embed(layer_name, embed_dim, heads, dropout_p, loc), embed_dim},
                                     init::xavier_uniform(), f32, loc)),
      in_proj_bias(bias ? graph.parameter(layer_name + ".in_proj_bias", {3 * embed_dim}, init::zeros(), f32, loc)
                        : Value{}),
      out_proj(graph, layer_name + ".out_proj", embed_dim, embed_dim, init::kaiming_uniform(std::sqrt(5.0)),
               init::zeros(), bias, loc),
      num_heads(heads),
      dropout(dropout_p),
      name(layer_name) {}

Value MultiHeadAttention::operator()(const Value& query, const Value& key, const Value& value, const Value& attend_mask,
                                     bool causal, Loc loc) const {
  const std::int64_t e = in_proj_weight.shape()[1];
  detail::check_sequence("MultiHeadAttention", name, "query", query, e, loc);
  detail::check_sequence("MultiHeadAttention", name, "key", key, e, loc);
  detail::check_sequence("MultiHeadAttention", name, "value", value, e, loc);
  const std::int64_t batch = query.shape()[0], keys = key.shape()[1];
  if (key.shape()[0] != batch || value.shape()[0] != batch || value.shape()[1] != keys)
    fail(ErrorKind::ShapeMismatch,
         cat("MultiHeadAttention '", name, "' at ", where(loc), ": query ", query.shape().to_string(), ", key ",
             key.shape().to_string(), " and value ", value.shape().to_string(),
             " must share the batch size, and key and value the length"));
  const Value mask4 = detail::key_mask("MultiHeadAttention", name, attend_mask, batch, keys, loc);

  auto rows = [&](std::int64_t i) { return slice(in_proj_weight, 0, i * e, (i + 1) * e, 1, loc); };
  auto bias_rows = [&](std::int64_t i) {
    return in_proj_bias.valid() ? slice(in_proj_bias, 0, i * e, (i + 1) * e, 1, loc) : Value{};
  };
  Value q, k, v;
  if (same_value(query, key) && same_value(key, value)) {
    // Self-attention: one product with the stacked [3E, E] weight, then split.
    const Value qkv = project(query, in_proj_weight, in_proj_bias, loc);
    q = slice(qkv, 2, 0, e, 1, loc);
    k = slice(qkv, 2, e, 2 * e, 1, loc);
    v = slice(qkv, 2, 2 * e, 3 * e, 1, loc);
  } else {
    q = project(query, rows(0), bias_rows(0), loc);
    k = project(key, rows(1), bias_rows(1), loc);
    v = project(value, rows(2), bias_rows(2), loc);
  }
  return out_proj(detail::multi_head_attention(q, k, v, num_heads, mask4, causal, dropout, loc), loc);
}

// ---- TransformerEncoderLayer -----------------------------------------------------------------------

namespace {

const TransformerEncoderLayerOptions& checked_options(const std::string& name, std::int64_t d_model,
                                                      const TransformerEncoderLayerOptions& o, const Loc& loc) {
  require_positive("TransformerEncoderLayer", name, "d_model", d_model, loc);
  require_positive("TransformerEncoderLayer", name, "dim_feedforward", o.dim_feedforward, loc);
  require_probability("TransformerEncoderLayer", name, "dropout", o.dropout, loc);
  if (!(o.layer_norm_eps > 0.0))
    fail(ErrorKind::InvalidArgument, cat("TransformerEncoderLayer '", name, "' at ", where(loc),
                                         ": layer_norm_eps must be > 0, got ", o.layer_norm_eps));
  return o;
}

}  // namespace

TransformerEncoderLayer::TransformerEncoderLayer(Graph& graph, const std::string& name, std::int64_t d_model,
                                                 std::int64_t nhead, const TransformerEncoderLayerOptions& opts,
                                                 Loc loc)
    : self_attn(graph, name + ".self_attn", d_model, nhead, checked_options(name, d_model, opts, loc).dropout, true,
                loc),
      linear1(graph, name + ".linear1", d_model, opts.dim_feedforward, true, loc),
      linear2(graph, name + ".linear2", opts.dim_feedforward, d_model, true, loc),
      norm1(graph, name + ".norm1", Shape{d_model}, opts.layer_norm_eps, loc),
      norm2(graph, name + ".norm2", Shape{d_model}, opts.layer_norm_eps, loc),
      options(opts) {}

Value TransformerEncoderLayer::operator()(const Value& x, const Value& attend_mask, bool causal, Loc loc) const {
  const Dropout drop(options.dropout, loc);
  auto attention = [&](const Value& h) { return drop(self_attn(h, h, h, attend_mask, causal, loc), loc); };
  auto feed_forward = [&](const Value& h) {
    return drop(linear2(drop(activation(linear1(h, loc), options.activation, loc), loc), loc), loc);
  };
  Value h = x;
  if (options.norm_first) {
    h = add(h, attention(norm1(h, loc)), loc);
    h = add(h, feed_forward(norm2(h, loc)), loc);
  } else {
    h = norm1(add(h, attention(h), loc), loc);
    h = norm2(add(h, feed_forward(h), loc), loc);
  }
  return h;
}

}  // namespace trainrt::nn
