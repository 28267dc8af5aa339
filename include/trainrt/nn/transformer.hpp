// trainrt/nn/transformer.hpp — Dropout, MLP, multi-head attention and the Transformer encoder
// layer, with PyTorch's parameter names and initializations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainrt/nn/layers.hpp"

namespace trainrt::nn {

/// The activation between the layers of MLP and TransformerEncoderLayer.
enum class Activation {
  relu,  ///< max(x, 0)
  gelu,  ///< x * Phi(x), the exact (erf) form, as torch.nn.GELU() and BERT
};

/// Applies `act` to x.
Value activation(const Value& x, Activation act, Loc loc = Loc::current());

/// dropout() with a fixed probability, as torch.nn.Dropout: the identity in
/// Program::evaluate() and when p is 0.
class Dropout {
 public:
  /// Throws trainrt::Error (InvalidArgument) unless 0 <= p < 1.
  explicit Dropout(double p, Loc loc = Loc::current());
  /// Zeroes elements of x with probability p while training, scaling the rest by 1/(1-p).
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  double p;  ///< the probability of zeroing an element
};

/// Linear layers sizes[0] -> sizes[1] -> ... -> sizes.back(), with the activation (and
/// dropout, when p > 0) after every layer but the last.
///
/// Names: layer i is "<name>.{3 i}.weight" / ".bias", as in torchvision.ops.MLP(sizes[0],
/// sizes[1:], activation_layer=..., dropout=p) and in torch.nn.Sequential(Linear, act,
/// Dropout, Linear, act, Dropout, ..., Linear), whose activation and Dropout entries take the
/// indices in between. (torchvision's MLP also applies dropout to its output; this one does not.)
class MLP {
 public:
  /// Creates the layers (PyTorch's default initialization). Throws trainrt::Error
  /// (InvalidArgument) naming the MLP for fewer than two sizes, a size < 1 or dropout
  /// outside [0, 1).
  MLP(Graph& graph, const std::string& name, std::vector<std::int64_t> sizes, Activation act = Activation::relu,
      double dropout = 0.0, Loc loc = Loc::current());
  /// Applies the layers to x[..., sizes[0]] -> [..., sizes.back()].
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  std::vector<Linear> layers;  ///< the Linear layers, in order
  Activation act;              ///< between layers
  Dropout dropout;             ///< after each activation
};

/// Multi-head attention with torch.nn.MultiheadAttention's parameters and batch_first
/// layout: "<name>.in_proj_weight" [3E, E] (query, key and value projections stacked),
/// "<name>.in_proj_bias" [3E], "<name>.out_proj.weight" [E, E] and "<name>.out_proj.bias" [E].
/// Initialization as PyTorch: Xavier-uniform in_proj_weight, zero biases, Kaiming-uniform
/// out_proj.weight.
class MultiHeadAttention {
 public:
  /// Creates the parameters. `dropout` is applied to the attention weights while training.
  /// Throws trainrt::Error (InvalidArgument) naming the layer for embed_dim or num_heads < 1,
  /// embed_dim not divisible by num_heads, or dropout outside [0, 1).
  MultiHeadAttention(Graph& graph, const std::string& name, std::int64_t embed_dim, std::int64_t num_heads,
                     double dropout = 0.0, bool bias = true, Loc loc = Loc::current());
  /// Attention of query[B, Lq, E] over key[B, Lk, E] / value[B, Lk, E] -> [B, Lq, E].
  /// `attend_mask` (optional) is bool [B, Lk], true where a key may be attended to (the
  /// opposite of PyTorch's key_padding_mask); `causal` lets query i see keys j <= i. A query
  /// that may attend to no key yields zeros before out_proj (PyTorch yields NaN). Passing
  /// the same Value as query, key and value projects it with one matrix product. Throws
  /// trainrt::Error naming the layer for other shapes or dtypes.
  Value operator()(const Value& query, const Value& key, const Value& value, const Value& attend_mask = {},
                   bool causal = false, Loc loc = Loc::current()) const;
  Value in_proj_weight;    ///< [3E, E]
  Value in_proj_bias;      ///< [3E]; absent without bias
  Linear out_proj;         ///< E -> E
  std::int64_t num_heads;  ///< heads; E / num_heads is the head size
  double dropout;          ///< on the attention weights
  std::string name;        ///< for messages
};

/// Options of TransformerEncoderLayer (torch.nn.TransformerEncoderLayer's arguments).
/// Designated initializers must follow this member order.
struct TransformerEncoderLayerOptions {
  std::int64_t dim_feedforward = 2048;       ///< width of linear1
  double dropout = 0.1;                      ///< attention weights, residual branches, feed-forward
  Activation activation = Activation::relu;  ///< inside the feed-forward block
  double layer_norm_eps = 1e-5;              ///< of norm1 and norm2
  bool norm_first = false;                   ///< pre-norm (true) or post-norm (false, the original)
};

/// torch.nn.TransformerEncoderLayer(batch_first=True) with its names: "<name>.self_attn.*"
/// (MultiHeadAttention), "<name>.linear1", "<name>.linear2", "<name>.norm1", "<name>.norm2".
/// Post-norm: x = norm1(x + sa(x)); x = norm2(x + ff(x)). Pre-norm: x = x + sa(norm1(x));
/// x = x + ff(norm2(x)). ff(x) = linear2(dropout(act(linear1(x)))); each branch ends in dropout.
class TransformerEncoderLayer {
 public:
  /// Creates the parameters. Throws trainrt::Error (InvalidArgument) naming the layer for
  /// sizes < 1, d_model not divisible by nhead, or dropout outside [0, 1).
  TransformerEncoderLayer(Graph& graph, const std::string& name, std::int64_t d_model, std::int64_t nhead,
                          const TransformerEncoderLayerOptions& opts = {}, Loc loc = Loc::current());
  /// Applies the layer to x[B, L, d_model]; attend_mask and causal as in MultiHeadAttention.
  Value operator()(const Value& x, const Value& attend_mask = {}, bool causal = false, Loc loc = Loc::current()) const;
  MultiHeadAttention self_attn;            ///< "<name>.self_attn"
  Linear linear1;                          ///< d_model -> dim_feedforward
  Linear linear2;                          ///< dim_feedforward -> d_model
  LayerNorm norm1;                         ///< around the attention block
  LayerNorm norm2;                         ///< around the feed-forward block
  TransformerEncoderLayerOptions options;  ///< as constructed
};

}  // namespace trainrt::nn
