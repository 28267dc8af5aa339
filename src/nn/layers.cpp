// nn/layers.cpp — Linear, Conv2d, BatchNorm2d, LayerNorm and Embedding.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/common.h"
#include "trainrt/nn/layers.hpp"

namespace trainrt::nn {

using detail::cat;
using detail::fail;
using detail::require_positive;
using detail::where;

namespace {

/// PyTorch's default for Linear and Conv weights: kaiming_uniform(a = sqrt(5)), which is
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases use the same bound.
Init default_weight() { return init::kaiming_uniform(std::sqrt(5.0)); }
Init default_bias(std::int64_t fan_in) {
  const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return init::uniform(-b, b);
}

/// The fan-in of a convolution's weight (for its default bias bound); at least 1, so that an
/// invalid layer reaches the argument checks rather than a division by zero.
std::int64_t conv_fan_in(std::int64_t in_channels, std::int64_t groups, Pair kernel) {
  const std::int64_t per_group = groups > 0 ? in_channels / groups : in_channels;
  return std::max<std::int64_t>(per_group * kernel[0] * kernel[1], 1);
}

}  // namespace

Linear::Linear(Graph& graph, const std::string& name, std::int64_t in_features, std::int64_t out_features,
               bool with_bias, Loc loc)
    : Linear(graph, name, in_features, out_features, default_weight(),
             default_bias(std::max<std::int64_t>(in_features, 1)), with_bias, loc) {}

Linear::Linear(Graph& graph, const std::string& name, std::int64_t in_features, std::int64_t out_features,
               const Init& weight_init, const Init& bias_init, bool with_bias, Loc loc) {
  require_positive("Linear", name, "in_features", in_features, loc);
  require_positive("Linear", name, "out_features", out_features, loc);
  weight = graph.parameter(name + ".weight", {out_features, in_features}, weight_init, f32, loc);
  if (with_bias) bias = graph.parameter(name + ".bias", {out_features}, bias_init, f32, loc);
}

Value Linear::operator()(const Value& x, Loc loc) const {
  // Inputs of rank > 2 are flattened so that the weight gradient is one matrix product.
  Value v = x;
  if (x.valid() && x.rank() > 2) v = flatten(x, 0, -2, loc);
  Value y = matmul(v, weight, {.transpose_a = false, .transpose_b = true}, loc);
  if (bias.valid()) y = add(y, bias, loc);
  if (x.valid() && x.rank() > 2) {
    std::vector<std::int64_t> dims = x.shape().dims();
    dims.back() = weight.shape()[0];
    y = reshape(y, dims, loc);
  }
  return y;
}

Conv2d::Conv2d(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t out_channels, Pair kernel,
               const Conv2dOptions& opts, bool with_bias, Loc loc)
    : Conv2d(graph, name, in_channels, out_channels, kernel, opts, with_bias, default_weight(),
             default_bias(conv_fan_in(in_channels, opts.groups, kernel)), loc) {}

Conv2d::Conv2d(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t out_channels, Pair kernel,
               const Conv2dOptions& opts, bool with_bias, const Init& weight_init, const Init& bias_init, Loc loc)
    : options(opts) {
  require_positive("Conv2d", name, "in_channels", in_channels, loc);
  require_positive("Conv2d", name, "out_channels", out_channels, loc);
  require_positive("Conv2d", name, "groups", opts.groups, loc);
  if (in_channels % opts.groups != 0 || out_channels % opts.groups != 0)
    fail(ErrorKind::InvalidArgument,
         cat("Conv2d '", name, "' at ", where(loc), ": groups = ", opts.groups,
             " must divide in_channels = ", in_channels, " and out_channels = ", out_channels));
  const std::int64_t per_group = in_channels / opts.groups;
  weight = graph.parameter(name + ".weight", {out_channels, per_group, kernel[0], kernel[1]}, weight_init, f32, loc);
  if (with_bias) bias = graph.parameter(name + ".bias", {out_channels}, bias_init, f32, loc);
}

Value Conv2d::operator()(const Value& x, Loc loc) const { return conv2d(x, weight, bias, options, loc); }

BatchNorm2d::BatchNorm2d(Graph& graph, const std::string& name, std::int64_t channels, const BatchNormOptions& opts,
                         Loc loc)
    : BatchNorm2d(graph, name, channels, opts, init::ones(), loc) {}

BatchNorm2d::BatchNorm2d(Graph& graph, const std::string& name, std::int64_t channels, const BatchNormOptions& opts,
                         const Init& weight_init, Loc loc)
    : options(opts) {
  require_positive("BatchNorm2d", name, "channels", channels, loc);
  weight = graph.parameter(name + ".weight", {channels}, weight_init, f32, loc);
  bias = graph.parameter(name + ".bias", {channels}, init::zeros(), f32, loc);
  running_mean = graph.state(name + ".running_mean", {channels}, init::zeros(), f32, loc);
  running_var = graph.state(name + ".running_var", {channels}, init::ones(), f32, loc);
}

Value BatchNorm2d::operator()(const Value& x, Loc loc) const {
  return batch_norm(x, weight, bias, running_mean, running_var, options, loc);
}

LayerNorm::LayerNorm(Graph& graph, const std::string& name, const Shape& normalized_shape, double eps, Loc loc)
    : options{normalized_shape.rank(), eps} {
  if (normalized_shape.rank() == 0)
    fail(ErrorKind::InvalidArgument, cat("LayerNorm '", name, "' at ", where(loc), ": normalized_shape is empty"));
  weight = graph.parameter(name + ".weight", normalized_shape, init::ones(), f32, loc);
  bias = graph.parameter(name + ".bias", normalized_shape, init::zeros(), f32, loc);
}

Value LayerNorm::operator()(const Value& x, Loc loc) const { return layer_norm(x, weight, bias, options, loc); }

Embedding::Embedding(Graph& graph, const std::string& name, std::int64_t count, std::int64_t dim, Loc loc)
    : Embedding(graph, name, count, dim, init::normal(0.0, 1.0), loc) {}

Embedding::Embedding(Graph& graph, const std::string& name, std::int64_t count, std::int64_t dim, const Init& init,
                     Loc loc) {
  require_positive("Embedding", name, "count", count, loc);
  require_positive("Embedding", name, "dim", dim, loc);
  weight = graph.parameter(name + ".weight", {count, dim}, init, f32, loc);
}

Value Embedding::operator()(const Value& indices, Loc loc) const { return embedding(weight, indices, loc); }

}  // namespace trainrt::nn
