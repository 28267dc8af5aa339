// nn/resnet.cpp — torchvision's BasicBlock, Bottleneck and ResNet, and the ResNet-18/34/50
// configurations.
#include <utility>

#include "core/error.h"
#include "nn/common.h"
#include "trainrt/nn/resnet.hpp"

namespace trainrt::nn {

using detail::cat;
using detail::fail;
using detail::join_name;
using detail::require_positive;
using detail::where;

namespace {

/// torchvision's convolution initialization: kaiming_normal_(mode="fan_out", nonlinearity="relu").
Init conv_init() { return init::kaiming_normal(0.0, Init::FanMode::fan_out, Init::Nonlinearity::relu); }

/// A bias-free convolution with torchvision's initialization.
Conv2d conv(Graph& graph, const std::string& name, std::int64_t in, std::int64_t out, std::int64_t kernel,
            std::int64_t stride, std::int64_t padding, const Loc& loc) {
  return {graph,
          name,
          in,
          out,
          {kernel, kernel},
          Conv2dOptions{.stride = {stride, stride}, .padding = {padding, padding}},
          false,
          conv_init(),
          init::zeros(),
          loc};
}

/// The batch norm of a block: weight ones, or zeros for the last one under zero_init_residual.
BatchNorm2d norm(Graph& graph, const std::string& name, std::int64_t channels, bool zero, const Loc& loc) {
  return {graph, name, channels, BatchNormOptions{}, zero ? init::zeros() : init::ones(), loc};
}

/// Checks a block's sizes; returns in_channels for the first member initializer.
std::int64_t checked_block(std::string_view kind, const std::string& name, std::int64_t in, std::int64_t planes,
                           std::int64_t stride, const Loc& loc) {
  require_positive(kind, name, "in_channels", in, loc);
  require_positive(kind, name, "planes", planes, loc);
  require_positive(kind, name, "stride", stride, loc);
  return in;
}

/// The shortcut projection when the block changes the shape, as torchvision's _make_layer.
std::optional<Downsample> make_downsample(Graph& graph, const std::string& name, std::int64_t in, std::int64_t out,
                                          std::int64_t stride, const Loc& loc) {
  if (stride == 1 && in == out) return std::nullopt;
  return Downsample{conv(graph, name + ".downsample.0", in, out, 1, stride, 0, loc),
                    norm(graph, name + ".downsample.1", out, false, loc)};
}

Value shortcut(const std::optional<Downsample>& downsample, const Value& x, const Loc& loc) {
  return downsample ? downsample->bn(downsample->conv(x, loc), loc) : x;
}

}  // namespace

// ---- blocks ----------------------------------------------------------------------------------------

BasicBlock::BasicBlock(Graph& graph, const std::string& name, std::int64_t in, std::int64_t planes, std::int64_t stride,
                       bool zero_init_residual, Loc loc)
    : conv1(conv(graph, name + ".conv1", checked_block("BasicBlock", name, in, planes, stride, loc), planes, 3, stride,
                 1, loc)),
      bn1(norm(graph, name + ".bn1", planes, false, loc)),
      conv2(conv(graph, name + ".conv2", planes, planes, 3, 1, 1, loc)),
      bn2(norm(graph, name + ".bn2", planes, zero_init_residual, loc)),
      downsample(make_downsample(graph, name, in, planes * expansion, stride, loc)) {}

Value BasicBlock::operator()(const Value& x, Loc loc) const {
  const Value h = relu(bn1(conv1(x, loc), loc), loc);
  return relu(add(bn2(conv2(h, loc), loc), shortcut(downsample, x, loc), loc), loc);
}

Bottleneck::Bottleneck(Graph& graph, const std::string& name, std::int64_t in, std::int64_t planes, std::int64_t stride,
                       bool zero_init_residual, Loc loc)
    : conv1(conv(graph, name + ".conv1", checked_block("Bottleneck", name, in, planes, stride, loc), planes, 1, 1, 0,
                 loc)),
      bn1(norm(graph, name + ".bn1", planes, false, loc)),
      conv2(conv(graph, name + ".conv2", planes, planes, 3, stride, 1, loc)),
      bn2(norm(graph, name + ".bn2", planes, false, loc)),
      conv3(conv(graph, name + ".conv3", planes, planes * expansion, 1, 1, 0, loc)),
      bn3(norm(graph, name + ".bn3", planes * expansion, zero_init_residual, loc)),
      downsample(make_downsample(graph, name, in, planes * expansion, stride, loc)) {}

Value Bottleneck::operator()(const Value& x, Loc loc) const {
  Value h = relu(bn1(conv1(x, loc), loc), loc);
  h = relu(bn2(conv2(h, loc), loc), loc);
  return relu(add(bn3(conv3(h, loc), loc), shortcut(downsample, x, loc), loc), loc);
}

// ---- configurations --------------------------------------------------------------------------------

ResNetConfig resnet18(std::int64_t num_classes, ResNetConfig::Stem stem) {
  return {.block = ResNetConfig::Block::basic, .layers = {2, 2, 2, 2}, .stem = stem, .num_classes = num_classes};
}

ResNetConfig resnet34(std::int64_t num_classes, ResNetConfig::Stem stem) {
  return {.block = ResNetConfig::Block::basic, .layers = {3, 4, 6, 3}, .stem = stem, .num_classes = num_classes};
}

ResNetConfig resnet50(std::int64_t num_classes, ResNetConfig::Stem stem) {
  return {.block = ResNetConfig::Block::bottleneck, .layers = {3, 4, 6, 3}, .stem = stem, .num_classes = num_classes};
}

// ---- ResNet ----------------------------------------------------------------------------------------

namespace {

const ResNetConfig& checked_config(const ResNetConfig& c, const std::string& prefix, const Loc& loc) {
  const std::string name = prefix.empty() ? std::string("(no prefix)") : prefix;
  for (std::size_t s = 0; s < c.layers.size(); ++s)
    require_positive("ResNet", name, cat("layers[", s, "] (blocks of layer", s + 1, ")"), c.layers[s], loc);
  require_positive("ResNet", name, "in_channels", c.in_channels, loc);
  require_positive("ResNet", name, "num_classes", c.num_classes, loc);
  require_positive("ResNet", name, "width", c.width, loc);
  return c;
}

std::int64_t expansion_of(const ResNetConfig& c) {
  return c.block == ResNetConfig::Block::basic ? BasicBlock::expansion : Bottleneck::expansion;
}

/// The four stages as torchvision's _make_layer builds them: the first block of stages 2-4 has
/// stride 2; channels width, 2 width, 4 width, 8 width (times the block's expansion).
std::array<std::vector<ResNet::Block>, 4> make_stages(Graph& graph, const ResNetConfig& c, const std::string& prefix,
                                                      const Loc& loc) {
  std::array<std::vector<ResNet::Block>, 4> stages;
  std::int64_t in = c.width;
  for (std::size_t s = 0; s < 4; ++s) {
    const std::int64_t planes = c.width << s;
    for (std::int64_t b = 0; b < c.layers[s]; ++b) {
      const std::string name = join_name(prefix, cat("layer", s + 1, ".", b));
      const std::int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      if (c.block == ResNetConfig::Block::basic)
        stages[s].emplace_back(std::in_place_type<BasicBlock>, graph, name, in, planes, stride, c.zero_init_residual,
                               loc);
      else
        stages[s].emplace_back(std::in_place_type<Bottleneck>, graph, name, in, planes, stride, c.zero_init_residual,
                               loc);
      in = planes * expansion_of(c);
    }
  }
  return stages;
}

}  // namespace

ResNet::ResNet(Graph& graph, const ResNetConfig& cfg, const std::string& name_prefix, Loc loc)
    : config(checked_config(cfg, name_prefix, loc)),
      conv1(cfg.stem == ResNetConfig::Stem::imagenet
                ? conv(graph, join_name(name_prefix, "conv1"), cfg.in_channels, cfg.width, 7, 2, 3, loc)
                : conv(graph, join_name(name_prefix, "conv1"), cfg.in_channels, cfg.width, 3, 1, 1, loc)),
      bn1(norm(graph, join_name(name_prefix, "bn1"), cfg.width, false, loc)),
      stages(make_stages(graph, cfg, name_prefix, loc)),
      fc(graph, join_name(name_prefix, "fc"), cfg.width * 8 * expansion_of(cfg), cfg.num_classes, true, loc),
      prefix(name_prefix) {}

Value ResNet::operator()(const Value& x, Loc loc) const {
  if (!x.valid() || x.rank() != 4 || x.shape()[1] != config.in_channels)
    fail(ErrorKind::ShapeMismatch,
         cat("ResNet '", prefix, "' at ", where(loc), ": the input must be images [N, ", config.in_channels,
             ", H, W], got ", x.valid() ? x.shape().to_string() : std::string("an absent value")));
  Value h = relu(bn1(conv1(x, loc), loc), loc);
  if (config.stem == ResNetConfig::Stem::imagenet)
    h = max_pool2d(h, Pool2dOptions{.kernel = {3, 3}, .stride = Pair{2, 2}, .padding = {1, 1}}, loc);
  for (const auto& stage : stages)
    for (const auto& block : stage) h = std::visit([&](const auto& blk) { return blk(h, loc); }, block);
  return fc(global_avg_pool2d(h, loc), loc);
}

}  // namespace trainrt::nn
