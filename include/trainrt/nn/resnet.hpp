// trainrt/nn/resnet.hpp — ResNet blocks and the ResNet-18/34/50 builders, with torchvision's
// parameter names and initialization, so that torchvision weights load one to one.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "trainrt/nn/layers.hpp"

namespace trainrt::nn {

/// The shortcut of a block whose shape changes: a 1x1 convolution with the block's stride and
/// a batch norm, named "<block>.downsample.0" and "<block>.downsample.1" as in torchvision.
struct Downsample {
  Conv2d conv;     ///< 1x1, stride of the block, no bias
  BatchNorm2d bn;  ///< over the block's output channels
};

/// torchvision's BasicBlock (ResNet-18/34): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
/// two 3x3 convolutions, the first with the block's stride. Names: "<name>.conv1", ".bn1",
/// ".conv2", ".bn2" and, when the stride is not 1 or the channels change, ".downsample.0/1".
class BasicBlock {
 public:
  /// Output channels of a block of `planes` (BasicBlock: planes).
  static constexpr std::int64_t expansion = 1;
  /// Creates the parameters: convolutions Kaiming-normal (fan_out, ReLU), batch norms ones
  /// and zeros, bn2's weight zeros with `zero_init_residual`. Throws trainrt::Error
  /// (InvalidArgument) naming the block for channels or a stride < 1.
  BasicBlock(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t planes,
             std::int64_t stride = 1, bool zero_init_residual = false, Loc loc = Loc::current());
  /// Applies the block to x[N, in_channels, H, W] -> [N, planes, H/stride, W/stride].
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Conv2d conv1;                          ///< 3x3, stride
  BatchNorm2d bn1;                       ///< after conv1
  Conv2d conv2;                          ///< 3x3
  BatchNorm2d bn2;                       ///< after conv2
  std::optional<Downsample> downsample;  ///< the shortcut's projection, when needed
};

/// torchvision's Bottleneck (ResNet-50, "v1.5": the stride is on the 3x3 convolution):
/// 1x1 conv to `planes`, 3x3 conv (stride), 1x1 conv to 4 * planes, each with a batch norm,
/// plus the shortcut, then ReLU. Names: "<name>.conv1/bn1/conv2/bn2/conv3/bn3" and
/// ".downsample.0/1" when the stride is not 1 or the channels change.
class Bottleneck {
 public:
  /// Output channels of a block of `planes` (Bottleneck: 4 * planes).
  static constexpr std::int64_t expansion = 4;
  /// Creates the parameters as BasicBlock does (bn3's weight zeros with `zero_init_residual`).
  /// Throws trainrt::Error (InvalidArgument) naming the block for channels or a stride < 1.
  Bottleneck(Graph& graph, const std::string& name, std::int64_t in_channels, std::int64_t planes,
             std::int64_t stride = 1, bool zero_init_residual = false, Loc loc = Loc::current());
  /// Applies the block to x[N, in_channels, H, W] -> [N, 4 planes, H/stride, W/stride].
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  Conv2d conv1;                          ///< 1x1 reduce
  BatchNorm2d bn1;                       ///< after conv1
  Conv2d conv2;                          ///< 3x3, stride
  BatchNorm2d bn2;                       ///< after conv2
  Conv2d conv3;                          ///< 1x1 expand
  BatchNorm2d bn3;                       ///< after conv3
  std::optional<Downsample> downsample;  ///< the shortcut's projection, when needed
};

/// The shape of a ResNet.
struct ResNetConfig {
  /// The residual block of every stage.
  enum class Block {
    basic,       ///< BasicBlock (ResNet-18/34)
    bottleneck,  ///< Bottleneck (ResNet-50/101/152)
  };
  /// The layers before the first stage.
  enum class Stem {
    imagenet,  ///< 7x7 stride-2 convolution, batch norm, ReLU, 3x3 stride-2 max-pool (torchvision)
    cifar,     ///< 3x3 stride-1 convolution, batch norm, ReLU, no pooling (for 32x32 images)
  };
  Block block = Block::basic;                      ///< the block of every stage
  std::array<std::int64_t, 4> layers{2, 2, 2, 2};  ///< blocks per stage, each >= 1
  Stem stem = Stem::imagenet;                      ///< the stem
  std::int64_t in_channels = 3;                    ///< channels of the input images
  std::int64_t num_classes = 1000;                 ///< outputs of fc
  std::int64_t width = 64;          ///< channels of the stem and first stage (64 in torchvision); stages double it
  bool zero_init_residual = false;  ///< zero the last batch-norm weight of every block, as torchvision's option
};

/// ResNet-18: BasicBlock, layers {2, 2, 2, 2}.
ResNetConfig resnet18(std::int64_t num_classes = 1000, ResNetConfig::Stem stem = ResNetConfig::Stem::imagenet);
/// ResNet-34: BasicBlock, layers {3, 4, 6, 3}.
ResNetConfig resnet34(std::int64_t num_classes = 1000, ResNetConfig::Stem stem = ResNetConfig::Stem::imagenet);
/// ResNet-50: Bottleneck, layers {3, 4, 6, 3}.
ResNetConfig resnet50(std::int64_t num_classes = 1000, ResNetConfig::Stem stem = ResNetConfig::Stem::imagenet);

/// A ResNet as torchvision.models.ResNet builds it, every name under `prefix`:
/// "conv1.weight", "bn1.*", "layerS.B.*" (stage S = 1..4, block B), "fc.weight", "fc.bias" for an empty
/// prefix, "<prefix>.conv1.weight" otherwise. The CIFAR stem matches torchvision's model with
/// conv1 replaced by a 3x3 stride-1 convolution and maxpool by nn.Identity. fc keeps PyTorch's
/// default Linear initialization, as torchvision does.
class ResNet {
 public:
  /// One residual block of either kind.
  using Block = std::variant<BasicBlock, Bottleneck>;
  /// Creates every parameter and running statistic. Throws trainrt::Error (InvalidArgument)
  /// naming the ResNet for a block count, width, channel or class count < 1.
  ResNet(Graph& graph, const ResNetConfig& cfg, const std::string& name_prefix = "", Loc loc = Loc::current());
  /// Logits [N, num_classes] of images x[N, in_channels, H, W] (f32). Throws trainrt::Error
  /// naming the ResNet for another rank or channel count.
  Value operator()(const Value& x, Loc loc = Loc::current()) const;
  ResNetConfig config;                       ///< as constructed
  Conv2d conv1;                              ///< the stem's convolution
  BatchNorm2d bn1;                           ///< the stem's batch norm
  std::array<std::vector<Block>, 4> stages;  ///< "layer1" .. "layer4"
  Linear fc;                                 ///< the classifier
  std::string prefix;                        ///< for messages
};

}  // namespace trainrt::nn
