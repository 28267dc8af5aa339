// trainrt/graph.hpp — the static graph an application builds: Graph and Value.
//
// Building records nodes and never computes. Every op checks shapes and dtypes as it is
// added and throws trainrt::Error naming the op, its operands and the caller's file:line.
// See examples/fashion_mnist/main.cpp for a complete model.
#pragma once

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "trainrt/dtype.hpp"
#include "trainrt/init.hpp"
#include "trainrt/shape.hpp"
#include "trainrt/tensor.hpp"

namespace trainrt {

namespace detail {
class GraphImpl;
}

class Graph;

/// Kinds of persistent tensors: trained parameters, other state the graph keeps (batch-norm
/// running statistics), and the optimizer's state (moments, step counter, learning rate).
enum class VariableKind { parameter, state, optimizer };

/// A place in the caller's source; ops take one as a defaulted last argument so that errors
/// name the caller's file:line.
using SourceLocation = std::source_location;

/// One output of one node of a Graph. A Value is a cheap handle that keeps its graph alive;
/// a default-constructed Value is "absent" (valid() is false) and stands for an omitted
/// optional operand.
class Value {
 public:
  /// An absent value (valid() is false).
  Value() = default;
  /// False for an absent value.
  bool valid() const noexcept { return graph_ != nullptr; }
  /// Static shape, fixed when the node was added; throws trainrt::Error for an absent value.
  const Shape& shape() const;
  /// Static dtype, fixed when the node was added; throws trainrt::Error for an absent value.
  DType dtype() const;
  /// shape().rank().
  std::int64_t rank() const { return shape().rank(); }
  /// "f32[128,10] = matmul(...) at main.cpp:42", for messages.
  std::string to_string() const;
  /// The graph this value belongs to.
  Graph graph() const;

  // For libtrainrt's own code: the node index and output index inside the graph.
  /// (libtrainrt internal) The graph's implementation; nullptr for an absent value.
  detail::GraphImpl* impl() const noexcept { return graph_.get(); }
  /// (libtrainrt internal) The owning handle of the graph's implementation.
  const std::shared_ptr<detail::GraphImpl>& impl_ptr() const noexcept { return graph_; }
  /// (libtrainrt internal) The index of the node in its graph (-1 when absent).
  std::int32_t node() const noexcept { return node_; }
  /// (libtrainrt internal) Which output of the node this value is.
  std::int32_t output() const noexcept { return output_; }
  /// (libtrainrt internal) The value of output `output` of node `node` of `graph`.
  Value(std::shared_ptr<detail::GraphImpl> graph, std::int32_t node, std::int32_t output)
      : graph_(std::move(graph)), node_(node), output_(output) {}

 private:
  std::shared_ptr<detail::GraphImpl> graph_;
  std::int32_t node_ = -1;
  std::int32_t output_ = 0;
};

/// A static autograd graph. Graph is a shared handle: copies refer to the same graph.
/// Names of inputs, parameters and state tensors are unique within a graph.
class Graph {
 public:
  /// A new, empty graph.
  Graph();

  /// A tensor fed at every step under `name` (see Program::step).
  Value input(std::string name, const Shape& shape, DType dtype = f32, SourceLocation loc = SourceLocation::current());
  /// A trainable tensor owned by the compiled Program, initialized by `init`.
  Value parameter(std::string name, const Shape& shape, const Init& init = init::zeros(), DType dtype = f32,
                  SourceLocation loc = SourceLocation::current());
  /// A persistent tensor that is not trained (batch-norm running statistics, counters).
  Value state(std::string name, const Shape& shape, const Init& init = init::zeros(), DType dtype = f32,
              SourceLocation loc = SourceLocation::current());
  /// A constant holding a copy of `value`.
  Value constant(const Tensor& value, SourceLocation loc = SourceLocation::current());
  /// A constant tensor of `shape` filled with `value`.
  Value full(const Shape& shape, double value, DType dtype = f32, SourceLocation loc = SourceLocation::current());
  /// A rank-0 constant.
  Value scalar(double value, DType dtype = f32, SourceLocation loc = SourceLocation::current());

  /// The input, parameter or state tensor called `name`; throws NotFound otherwise.
  Value find(std::string_view name) const;
  /// Parameters in creation order.
  std::vector<Value> parameters() const;
  /// Inputs in creation order.
  std::vector<Value> inputs() const;
  /// Number of nodes recorded so far.
  std::size_t size() const;
  /// The graph in text form, one node per line.
  std::string to_string() const;

  // For libtrainrt's own code.
  /// (libtrainrt internal) A handle to an existing implementation.
  explicit Graph(std::shared_ptr<detail::GraphImpl> impl) : impl_(std::move(impl)) {}
  /// (libtrainrt internal) The owning handle of the implementation.
  const std::shared_ptr<detail::GraphImpl>& impl_ptr() const noexcept { return impl_; }
  /// (libtrainrt internal) The implementation.
  detail::GraphImpl& impl() const noexcept { return *impl_; }

 private:
  std::shared_ptr<detail::GraphImpl> impl_;
};

/// A Value together with the place in the caller's source where it is used. Operators take
/// their first operand as a Located so that errors name the line of the expression: the
/// default argument is evaluated where the conversion happens, in the caller's code.
struct Located {
  Value value;         ///< the operand
  SourceLocation loc;  ///< where the caller's expression is
  /// Wraps `v`; the default `l` is the caller's location (implicit on purpose).
  // NOLINTNEXTLINE(google-explicit-constructor,modernize-pass-by-value): implicit by design
  Located(const Value& v, SourceLocation l = SourceLocation::current()) : value(v), loc(l) {}
};

}  // namespace trainrt
