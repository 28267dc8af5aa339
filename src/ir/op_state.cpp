// ir/op_state.cpp — inputs, persistent variables, constants and assignment; the Graph and
// Value handles of the public API.
#include <cmath>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "ir/printer.h"
#include "trainrt/graph.hpp"

namespace trainrt {

using namespace detail;

namespace {

Value add_leaf(const std::shared_ptr<GraphImpl>& g, OpKind kind, std::string name, TensorType type, Attrs attrs,
               const SourceLocation& loc) {
  return add_op(kind, {}, std::move(attrs), loc, {std::move(type)}, g, std::move(name)).front();
}

void check_name(std::string_view what, const std::string& name, const SourceLocation& loc) {
  if (name.empty()) fail(ErrorKind::InvalidArgument, cat(what, " at ", where(loc), ": the name must not be empty"));
}

}  // namespace

// ---- Value -------------------------------------------------------------------------------

const Shape& Value::shape() const {
  if (!valid()) fail(ErrorKind::InvalidArgument, "Value::shape: the value is absent (default-constructed)");
  return graph_->type({node_, output_}).shape;
}

DType Value::dtype() const {
  if (!valid()) fail(ErrorKind::InvalidArgument, "Value::dtype: the value is absent (default-constructed)");
  return graph_->type({node_, output_}).dtype;
}

std::string Value::to_string() const {
  if (!valid()) return "(absent value)";
  return describe_value(*graph_, {node_, output_});
}

Graph Value::graph() const {
  if (!valid()) fail(ErrorKind::InvalidArgument, "Value::graph: the value is absent (default-constructed)");
  return Graph(graph_);
}

// ---- Graph -------------------------------------------------------------------------------

Graph::Graph() : impl_(std::make_shared<GraphImpl>()) {}

Value Graph::input(std::string name, const Shape& shape, DType dtype, SourceLocation loc) {
  check_name("input", name, loc);
  return add_leaf(impl_, OpKind::Input, std::move(name), {dtype, shape}, NoAttrs{}, loc);
}

Value Graph::parameter(std::string name, const Shape& shape, const Init& init, DType dtype, SourceLocation loc) {
  check_name("parameter", name, loc);
  if (!is_floating(dtype))
    fail(ErrorKind::DTypeMismatch, cat("parameter '", name, "' at ", where(loc),
                                       ": parameters must have a floating dtype, not ", trainrt::name(dtype)));
  return add_leaf(impl_, OpKind::Variable, std::move(name), {dtype, shape},
                  VariableAttrs{init, VariableKind::parameter}, loc);
}

Value Graph::state(std::string name, const Shape& shape, const Init& init, DType dtype, SourceLocation loc) {
  check_name("state", name, loc);
  return add_leaf(impl_, OpKind::Variable, std::move(name), {dtype, shape}, VariableAttrs{init, VariableKind::state},
                  loc);
}

Value Graph::constant(const Tensor& value, SourceLocation loc) {
  if (!value.defined()) fail(ErrorKind::InvalidArgument, cat("constant at ", where(loc), ": the tensor is undefined"));
  return add_leaf(impl_, OpKind::Constant, {}, {value.dtype(), value.shape()},
                  ConstantAttrs{std::make_shared<const Tensor>(value.clone())}, loc);
}

Value Graph::full(const Shape& shape, double value, DType dtype, SourceLocation loc) {
  return add_leaf(impl_, OpKind::Full, {}, {dtype, shape}, ScalarAttrs{value}, loc);
}

Value Graph::scalar(double value, DType dtype, SourceLocation loc) { return full(Shape{}, value, dtype, loc); }

Value Graph::find(std::string_view name) const {
  const std::int32_t i = impl_->find(name);
  if (i < 0) {
    std::string known;
    for (const Node& n : impl_->nodes())
      if (!n.name.empty()) known += (known.empty() ? "" : ", ") + n.name;
    fail(ErrorKind::NotFound, cat("Graph::find: no input, parameter or state named '", name,
                                  "' (known: ", known.empty() ? "none" : known, ")"));
  }
  return {impl_, i, 0};
}

std::vector<Value> Graph::parameters() const {
  std::vector<Value> out;
  for (std::int32_t i = 0; i < impl_->size(); ++i) {
    const Node& n = impl_->node(i);
    if (n.kind == OpKind::Variable && std::get<VariableAttrs>(n.attrs).kind == VariableKind::parameter)
      out.emplace_back(impl_, i, 0);
  }
  return out;
}

std::vector<Value> Graph::inputs() const {
  std::vector<Value> out;
  for (std::int32_t i = 0; i < impl_->size(); ++i)
    if (impl_->node(i).kind == OpKind::Input) out.emplace_back(impl_, i, 0);
  return out;
}

std::size_t Graph::size() const { return static_cast<std::size_t>(impl_->size()); }

std::string Graph::to_string() const { return print_graph(*impl_); }

namespace detail {

std::vector<TensorType> infer_state(const InferContext& ctx) {
  switch (ctx.kind()) {
    case OpKind::Input:
    case OpKind::Variable:
    case OpKind::Constant:
    case OpKind::Full: {
      if (ctx.requested().size() != 1) ctx.fail(ErrorKind::InvalidArgument, "a leaf op needs exactly one output type");
      if (ctx.kind() == OpKind::Full && !std::isfinite(ctx.attrs<ScalarAttrs>().value) &&
          !is_floating(ctx.requested()[0].dtype))
        ctx.fail(ErrorKind::InvalidArgument, "a non-finite value cannot fill an integer or bool tensor");
      return ctx.requested();
    }
    case OpKind::Assign: {
      if (!ctx.has(0) || !ctx.has(1) || ctx.node().inputs.size() != 2)
        ctx.fail(ErrorKind::InvalidArgument, "an assignment takes a target variable and a value");
      const Node& target = ctx.graph().node(ctx.node().inputs[0].node);
      if (target.kind != OpKind::Variable) ctx.fail(ErrorKind::InvalidArgument, "the target is not a variable");
      if (!(ctx.in(0) == ctx.in(1)))
        ctx.fail(ErrorKind::ShapeMismatch,
                 cat("the new value of '", target.name, "' must have type ", ctx.in(0).to_string()));
      return {};
    }
    default: break;
  }
  check_internal(false, "infer_state: not a state op");
  return {};
}

}  // namespace detail
}  // namespace trainrt

namespace trainrt::detail {

void assign(const Value& target, const Value& value, const Loc& loc) {
  add_op(OpKind::Assign, {target, value}, NoAttrs{}, loc);
}

}  // namespace trainrt::detail
