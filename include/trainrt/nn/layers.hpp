// trainrt/nn/layers.hpp — the basic layers: Linear, Conv2d, BatchNorm2d, LayerNorm, Embedding.
//
// Parameter names follow PyTorch ("<name>.weight", "<name>.bias", "<name>.running_mean"),
// and so do the default initializations, so weights map one to one.
#pragma once

#include <string>

#include "trainrt/ops.hpp"

/// Layers that create their parameters in a Graph and apply ops to their input.
namespace trainrt::nn {

/// y = x W^T + b for x[..., in]; W is [out, in], b is [out].
class Linear {
 public:
  /// Creates the f32 parameters "<name>.weight" and (with `bias`) "<name>.bias" in `graph`,
  /// initialized as PyTorch does (Kaiming-uniform weight, uniform bias). Throws
  /// trainrt::Error for a feature count < 1 or a name already taken.
  Linear(Graph& graph, const std::string& name, std::int64_t in_features, std::int64_t out_features, bool bias = true,
         Loc loc = Loc::current());
  /// As above with explicit initializations of the weight and (with `bias`) the bias, for
  /// models whose reference initializes otherwise (Hugging Face BERT: N(0, 0.02) and zeros).
  Linear(Graph& graph, const std::string& name, std::int64_t in_features, std::int64_t out_features,
         const Init& weight_init, const Init& bias_init, bool bias = true, Loc loc = Loc::current());
  /// Applies the layer to x[..., in_features]; throws ShapeMismatch for another last axis.
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;  ///< [out_features, in_features]
  Value bias;    ///< absent when built without bias
};

/// 2-D convolution over x[N, in, H, W]; weight [out, in/groups, KH, KW], bias [out].
class Conv2d {
 public:
  /// Creates "<name>.weight" and (with `with_bias`) "<name>.bias" (f32) in `graph`, initialized
  /// as PyTorch does. Throws trainrt::Error for a channel or group count < 1, channel counts
  /// that `opts.groups` does not divide, or a name already taken.
  Conv2d(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t out_channels, Pair kernel,
         const Conv2dOptions& opts = {}, bool with_bias = true, Loc loc = Loc::current());
  /// As above with explicit initializations of the weight and (with `with_bias`) the bias,
  /// for models whose reference initializes otherwise (torchvision's ResNet: Kaiming-normal,
  /// fan_out, ReLU gain).
  Conv2d(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t out_channels, Pair kernel,
         const Conv2dOptions& opts, bool with_bias, const Init& weight_init, const Init& bias_init,
         Loc loc = Loc::current());
  /// conv2d() of x[N, in_channels, H, W] with the layer's parameters and options.
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;           ///< [out, in/groups, KH, KW]
  Value bias;             ///< [out]; absent when built without bias
  Conv2dOptions options;  ///< stride, padding, dilation and groups
};

/// Batch normalization of x[N, C, H, W] with affine weight/bias and running statistics.
class BatchNorm2d {
 public:
  /// Creates the parameters "<name>.weight" (ones) and "<name>.bias" (zeros) and the state
  /// tensors "<name>.running_mean" (zeros) and "<name>.running_var" (ones), each [channels].
  BatchNorm2d(Graph& graph, const std::string& name, std::int64_t channels, const BatchNormOptions& opts = {},
              Loc loc = Loc::current());
  /// As above with the weight initialized by `weight_init` (zeros for the last norm of a
  /// residual branch under torchvision's zero_init_residual).
  BatchNorm2d(Graph& graph, const std::string& name, std::int64_t channels, const BatchNormOptions& opts,
              const Init& weight_init, Loc loc = Loc::current());
  /// batch_norm() of x[N, channels, H, W]: batch statistics in step(), running ones in
  /// Program::evaluate().
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;              ///< scale gamma, [channels]
  Value bias;                ///< shift beta, [channels]
  Value running_mean;        ///< state, [channels]
  Value running_var;         ///< state (unbiased variance), [channels]
  BatchNormOptions options;  ///< momentum and eps
};

/// Layer normalization over the trailing `normalized_shape`.
class LayerNorm {
 public:
  /// Creates "<name>.weight" (ones) and "<name>.bias" (zeros) of `normalized_shape`.
  LayerNorm(Graph& graph, const std::string& name, const Shape& normalized_shape, double eps = 1e-5,
            Loc loc = Loc::current());
  /// layer_norm() of x, whose trailing axes must equal normalized_shape.
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;              ///< scale gamma, of normalized_shape
  Value bias;                ///< shift beta, of normalized_shape
  LayerNormOptions options;  ///< how many trailing axes, and eps
};

/// A lookup table of `count` vectors of size `dim`, initialized N(0, 1) as in PyTorch.
class Embedding {
 public:
  /// Creates the parameter "<name>.weight" [count, dim].
  Embedding(Graph& graph, const std::string& name, std::int64_t count, std::int64_t dim, Loc loc = Loc::current());
  /// As above with the table initialized by `init` (Hugging Face BERT: N(0, 0.02)).
  Embedding(Graph& graph, const std::string& name, std::int64_t count, std::int64_t dim, const Init& init,
            Loc loc = Loc::current());
  /// embedding() of integer `indices`[...] -> [..., dim].
  Value operator()(const Value& indices, Loc loc = Loc::current()) const;
  Value weight;  ///< [count, dim]
};

}  // namespace trainrt::nn
