// ir/op_kind.h — the list of every op in the IR, with its family.
//
// One X-macro list keeps the enum, the names and the families from drifting apart. A family
// groups ops that share shape inference, a gradient file and a kernel file:
//   State       inputs, persistent variables, constants, assignment
//   Unary       elementwise, one operand          Binary   elementwise, two operands
//   Ternary     elementwise, three operands       Shape    data movement without arithmetic
//   Reduce      sum/mean/max over axes            Matmul   batched matrix product (library call)
//   Conv        2-D convolution (library call)    Pool     2-D pooling
//   Softmax     softmax, log-softmax              Loss     cross-entropy
//   Norm        batch and layer normalization     Random   dropout
//   Embedding   table lookup                      Attention scaled dot-product attention
//   Collective  data-parallel communication across ranks (passes/build_gradient_sync.h)
//   Fused       a kernel made by the fusion passes from elementwise ops (ir/fused.h)
//   MultiTensor one pass over many tensors at once (the optimizer's gradient guard)
// "...Backward" ops are produced by gradient rules only.
#pragma once

#include <cstdint>
#include <string_view>

namespace trainrt::detail {

#define TRAINRT_OP_LIST(X)                                \
  X(Input, "input", State)                                \
  X(Variable, "variable", State)                          \
  X(Constant, "constant", State)                          \
  X(Full, "full", State)                                  \
  X(Assign, "assign", State)                              \
  X(Neg, "neg", Unary)                                    \
  X(Abs, "abs", Unary)                                    \
  X(Sign, "sign", Unary)                                  \
  X(Exp, "exp", Unary)                                    \
  X(Log, "log", Unary)                                    \
  X(Sqrt, "sqrt", Unary)                                  \
  X(Rsqrt, "rsqrt", Unary)                                \
  X(Sin, "sin", Unary)                                    \
  X(Cos, "cos", Unary)                                    \
  X(Floor, "floor", Unary)                                \
  X(Tanh, "tanh", Unary)                                  \
  X(Sigmoid, "sigmoid", Unary)                            \
  X(Relu, "relu", Unary)                                  \
  X(Gelu, "gelu", Unary)                                  \
  X(LogicalNot, "logical_not", Unary)                     \
  X(Cast, "cast", Unary)                                  \
  X(Add, "add", Binary)                                   \
  X(Sub, "sub", Binary)                                   \
  X(Mul, "mul", Binary)                                   \
  X(Div, "div", Binary)                                   \
  X(Pow, "pow", Binary)                                   \
  X(Maximum, "maximum", Binary)                           \
  X(Minimum, "minimum", Binary)                           \
  X(Eq, "eq", Binary)                                     \
  X(Ne, "ne", Binary)                                     \
  X(Lt, "lt", Binary)                                     \
  X(Le, "le", Binary)                                     \
  X(Gt, "gt", Binary)                                     \
  X(Ge, "ge", Binary)                                     \
  X(LogicalAnd, "logical_and", Binary)                    \
  X(LogicalOr, "logical_or", Binary)                      \
  X(ReluBackward, "relu_backward", Binary)                \
  X(GeluBackward, "gelu_backward", Binary)                \
  X(SigmoidBackward, "sigmoid_backward", Binary)          \
  X(TanhBackward, "tanh_backward", Binary)                \
  X(Fma, "fma", Ternary)                                  \
  X(Where, "where", Ternary)                              \
  X(Reshape, "reshape", Shape)                            \
  X(Permute, "permute", Shape)                            \
  X(Slice, "slice", Shape)                                \
  X(SliceBackward, "slice_backward", Shape)               \
  X(Concat, "concat", Shape)                              \
  X(BroadcastTo, "broadcast_to", Shape)                   \
  X(ReduceSum, "sum", Reduce)                             \
  X(ReduceMean, "mean", Reduce)                           \
  X(ReduceMax, "max", Reduce)                             \
  X(Matmul, "matmul", Matmul)                             \
  X(Conv2d, "conv2d", Conv)                               \
  X(Conv2dBackwardData, "conv2d_backward_data", Conv)     \
  X(Conv2dBackwardWeight, "conv2d_backward_weight", Conv) \
  X(MaxPool2d, "max_pool2d", Pool)                        \
  X(AvgPool2d, "avg_pool2d", Pool)                        \
  X(MaxPool2dBackward, "max_pool2d_backward", Pool)       \
  X(AvgPool2dBackward, "avg_pool2d_backward", Pool)       \
  X(Softmax, "softmax", Softmax)                          \
  X(LogSoftmax, "log_softmax", Softmax)                   \
  X(SoftmaxBackward, "softmax_backward", Softmax)         \
  X(LogSoftmaxBackward, "log_softmax_backward", Softmax)  \
  X(CrossEntropy, "cross_entropy", Loss)                  \
  X(CrossEntropyBackward, "cross_entropy_backward", Loss) \
  X(BatchNorm, "batch_norm", Norm)                        \
  X(BatchNormTrain, "batch_norm_train", Norm)             \
  X(BatchNormEval, "batch_norm_eval", Norm)               \
  X(BatchNormBackward, "batch_norm_backward", Norm)       \
  X(LayerNorm, "layer_norm", Norm)                        \
  X(LayerNormBackward, "layer_norm_backward", Norm)       \
  X(Dropout, "dropout", Random)                           \
  X(DropoutApply, "dropout_apply", Random)                \
  X(Embedding, "embedding", Embedding)                    \
  X(EmbeddingBackward, "embedding_backward", Embedding)   \
  X(Attention, "attention", Attention)                    \
  X(AttentionBackward, "attention_backward", Attention)   \
  X(AllReduce, "all_reduce", Collective)                  \
  X(ReduceScatter, "reduce_scatter", Collective)          \
  X(AllGather, "all_gather", Collective)                  \
  X(Fused, "fused", Fused)                                \
  X(GradientStats, "gradient_stats", MultiTensor)

enum class OpFamily : std::uint8_t {
  State,
  Unary,
  Binary,
  Ternary,
  Shape,
  Reduce,
  Matmul,
  Conv,
  Pool,
  Softmax,
  Loss,
  Norm,
  Random,
  Embedding,
  Attention,
  Collective,
  Fused,
  MultiTensor
};

enum class OpKind : std::uint16_t {
#define TRAINRT_OP_ENUM(name, str, family) name,
  TRAINRT_OP_LIST(TRAINRT_OP_ENUM)
#undef TRAINRT_OP_ENUM
};

/// The op's name as printed and in error messages ("matmul").
std::string_view op_name(OpKind kind) noexcept;
OpFamily op_family(OpKind kind) noexcept;
/// Elementwise ops (Unary, Binary, Ternary families and DropoutApply): output element i
/// depends only on element i of each (broadcast) operand. Fusion and in-place reuse rely on it.
bool is_elementwise(OpKind kind) noexcept;
/// Comparisons and logical ops: their result is bool and carries no gradient.
bool is_predicate(OpKind kind) noexcept;
/// Ops whose kernel checks the data it reads and may throw (labels and indices in range):
/// a step writes no variable before they have all run.
bool checks_data(OpKind kind) noexcept;

}  // namespace trainrt::detail
