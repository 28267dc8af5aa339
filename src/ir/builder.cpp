#include "ir/builder.h"

#include "core/error.h"

namespace trainrt::detail {

SourceLoc to_loc(const std::source_location& loc) { return {loc.file_name(), loc.line()}; }

void InferContext::fail(ErrorKind kind, const std::string& message) const {
  std::string operands;
  for (std::size_t i = 0; i < node_.inputs.size(); ++i) {
    if (i) operands += ", ";
    operands += has(i) ? graph_.type(node_.inputs[i]).to_string() : "(absent)";
  }
  detail::fail(kind, cat(op_name(node_.kind), " at ", where(node_.loc.file, node_.loc.line), ": ", message,
                         operands.empty() ? "" : " (operands: " + operands + ")"));
}

std::vector<TensorType> infer_types(const GraphImpl& graph, const Node& node) {
  const InferContext ctx(graph, node);
  switch (op_family(node.kind)) {
    case OpFamily::State: return infer_state(ctx);
    case OpFamily::Unary:
    case OpFamily::Binary:
    case OpFamily::Ternary: return infer_elementwise(ctx);
    case OpFamily::Shape: return infer_shape_op(ctx);
    case OpFamily::Reduce: return infer_reduce(ctx);
    case OpFamily::Matmul: return infer_matmul(ctx);
    case OpFamily::Conv:
    case OpFamily::Pool: return infer_conv_pool(ctx);
    case OpFamily::Softmax:
    case OpFamily::Loss: return infer_softmax_loss(ctx);
    case OpFamily::Norm: return infer_norm(ctx);
    case OpFamily::Random:
    case OpFamily::Embedding: return infer_random_embedding(ctx);
    case OpFamily::Attention: return infer_attention(ctx);
    case OpFamily::Collective: return infer_collective(ctx);
    case OpFamily::MultiTensor: return infer_multi_tensor(ctx);
    case OpFamily::Fused: return node.outputs;  // made by the fusion passes with their types
  }
  check_internal(false, "unknown op family");
  return {};
}

Value make_value(const std::shared_ptr<GraphImpl>& graph, ValueId id) { return {graph, id.node, id.output}; }

std::vector<Value> add_op(OpKind kind, const std::vector<Value>& inputs, Attrs attrs, const std::source_location& loc,
                          std::vector<TensorType> requested, const std::shared_ptr<GraphImpl>& graph,
                          std::string name) {
  Node node;
  node.kind = kind;
  node.attrs = std::move(attrs);
  node.loc = to_loc(loc);
  node.name = std::move(name);
  std::shared_ptr<GraphImpl> g = graph;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (!v.valid()) {
      node.inputs.push_back(ValueId{});
      continue;
    }
    if (!g) {
      g = v.impl_ptr();
    } else if (g.get() != v.impl()) {
      fail(ErrorKind::InvalidArgument,
           cat(op_name(kind), " at ", where(loc), ": operand ", i, " (", v.to_string(),
               ") belongs to a different graph than the other operands; values of two graphs cannot be combined"));
    }
    node.inputs.push_back(id_of(v));
  }
  if (!g)
    fail(ErrorKind::InvalidArgument,
         cat(op_name(kind), " at ", where(loc), ": no operand given (an operand is absent)"));
  if (g->location_override().file != nullptr) node.loc = g->location_override();
  node.outputs = std::move(requested);
  node.outputs = infer_types(*g, node);
  const std::int32_t index = g->append(std::move(node));
  std::vector<Value> out;
  const auto count = static_cast<std::int32_t>(g->node(index).outputs.size());
  out.reserve(static_cast<std::size_t>(count));
  for (std::int32_t i = 0; i < count; ++i) out.emplace_back(g, index, i);
  return out;
}

Value add_op1(OpKind kind, const std::vector<Value>& inputs, Attrs attrs, const std::source_location& loc,
              std::vector<TensorType> requested) {
  return add_op(kind, inputs, std::move(attrs), loc, std::move(requested)).front();
}

}  // namespace trainrt::detail
