// ir/builder.h — adding ops to a graph: operand checks, shape/dtype inference, errors.
//
// Every public op function packs its attributes and calls add_op(), which checks that the
// operands are present and come from one graph, runs the family's inference function and
// appends the node. Inference functions throw through InferContext::fail, so every build
// error reads "<op> at <file:line>: <what> (operands: <types>)".
#pragma once

#include <source_location>
#include <string>
#include <vector>

#include "ir/graph_impl.h"
#include "trainrt/errors.hpp"
#include "trainrt/graph.hpp"

namespace trainrt::detail {

/// What an inference function sees of the node being built.
class InferContext {
 public:
  InferContext(const GraphImpl& graph, const Node& node) : graph_(graph), node_(node) {}
  OpKind kind() const noexcept { return node_.kind; }
  std::size_t num_inputs() const noexcept { return node_.inputs.size(); }
  /// True when optional operand i is present.
  bool has(std::size_t i) const noexcept { return i < node_.inputs.size() && node_.inputs[i].valid(); }
  /// Type of operand i; throws InvalidArgument when it is absent (required operands).
  const TensorType& in(std::size_t i) const {
    if (!has(i)) fail(ErrorKind::InvalidArgument, "operand " + std::to_string(i) + " is required but absent");
    return graph_.type(node_.inputs[i]);
  }
  /// Output types given by the builder for ops whose result type is requested rather than
  /// derived (reshape target, cast dtype, inputs, ...).
  const std::vector<TensorType>& requested() const noexcept { return node_.outputs; }
  /// The first requested output type (ops whose type the builder gives: casts, backward ops
  /// that restore a shape); throws InvalidArgument when the node carries none (a damaged
  /// serialized graph).
  const TensorType& requested_type() const {
    if (node_.outputs.empty()) fail(ErrorKind::InvalidArgument, "the node carries no output type");
    return node_.outputs.front();
  }
  template <class A>
  const A& attrs() const {
    return std::get<A>(node_.attrs);
  }
  const GraphImpl& graph() const noexcept { return graph_; }
  const Node& node() const noexcept { return node_; }
  /// Throws trainrt::Error(kind) as "<op> at <file:line>: <message> (operands: ...)".
  [[noreturn]] void fail(ErrorKind kind, const std::string& message) const;

 private:
  const GraphImpl& graph_;
  const Node& node_;
};

using InferFn = std::vector<TensorType> (*)(const InferContext&);

/// Output types of `node` from its inputs and attributes (throws on invalid combinations).
std::vector<TensorType> infer_types(const GraphImpl& graph, const Node& node);

/// Adds an op with operands `inputs` (absent Values allowed where the op has optional
/// operands) to their graph, or to `graph` when given (ops without operands). `requested`
/// output types are passed to inference for ops whose type is not derived from operands.
/// Returns every output.
std::vector<Value> add_op(OpKind kind, const std::vector<Value>& inputs, Attrs attrs, const std::source_location& loc,
                          std::vector<TensorType> requested = {}, const std::shared_ptr<GraphImpl>& graph = nullptr,
                          std::string name = {});
/// add_op() returning output 0.
Value add_op1(OpKind kind, const std::vector<Value>& inputs, Attrs attrs, const std::source_location& loc,
              std::vector<TensorType> requested = {});

/// Makes a Value for `id` of `graph`.
Value make_value(const std::shared_ptr<GraphImpl>& graph, ValueId id);
inline ValueId id_of(const Value& v) { return {v.node(), v.output()}; }
SourceLoc to_loc(const std::source_location& loc);

// Inference functions, one per family (ir/op_*.cpp).
std::vector<TensorType> infer_state(const InferContext&);
std::vector<TensorType> infer_elementwise(const InferContext&);
std::vector<TensorType> infer_shape_op(const InferContext&);
std::vector<TensorType> infer_reduce(const InferContext&);
std::vector<TensorType> infer_matmul(const InferContext&);
std::vector<TensorType> infer_conv_pool(const InferContext&);
std::vector<TensorType> infer_softmax_loss(const InferContext&);
std::vector<TensorType> infer_norm(const InferContext&);
std::vector<TensorType> infer_random_embedding(const InferContext&);
std::vector<TensorType> infer_attention(const InferContext&);
std::vector<TensorType> infer_collective(const InferContext&);
std::vector<TensorType> infer_multi_tensor(const InferContext&);

}  // namespace trainrt::detail
