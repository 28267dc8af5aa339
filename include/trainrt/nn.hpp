// trainrt/nn.hpp — layers that create their parameters in a Graph.
//
// Parameter names follow PyTorch ("<name>.weight", "<name>.bias", "<name>.running_mean"),
// and so do the default initializations, so weights map one to one.
#pragma once

#include <string>

#include "trainrt/ops.hpp"

namespace trainrt::nn {

/// y = x W^T + b for x[..., in]; W is [out, in], b is [out].
class Linear {
 public:
  Linear(Graph& graph, const std::string& name, std::int64_t in_features, std::int64_t out_features,
         bool bias = true, Loc loc = Loc::current());
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;
  Value bias;  ///< absent when built without bias
};

/// 2-D convolution over x[N, in, H, W]; weight [out, in/groups, KH, KW], bias [out].
class Conv2d {
 public:
  Conv2d(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t out_channels,
         Pair kernel, const Conv2dOptions& opts = {}, bool with_bias = true, Loc loc = Loc::current());
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight;
  Value bias;
  Conv2dOptions options;
};

/// Batch normalization of x[N, C, H, W] with affine weight/bias and running statistics.
class BatchNorm2d {
 public:
  BatchNorm2d(Graph& graph, const std::string& name, std::int64_t channels, const BatchNormOptions& opts = {},
              Loc loc = Loc::current());
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight, bias, running_mean, running_var;
  BatchNormOptions options;
};

/// Layer normalization over the trailing `normalized_shape`.
class LayerNorm {
 public:
  LayerNorm(Graph& graph, const std::string& name, const Shape& normalized_shape, double eps = 1e-5,
            Loc loc = Loc::current());
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Value weight, bias;
  LayerNormOptions options;
};

/// A lookup table of `count` vectors of size `dim`, initialized N(0, 1) as in PyTorch.
class Embedding {
 public:
  Embedding(Graph& graph, const std::string& name, std::int64_t count, std::int64_t dim, Loc loc = Loc::current());
  Value operator()(const Value& indices, Loc loc = Loc::current()) const;
  Value weight;
};

}  // namespace trainrt::nn
