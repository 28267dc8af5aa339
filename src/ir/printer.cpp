#include "ir/printer.h"

#include <sstream>

#include "core/error.h"
#include "ir/fused.h"

namespace trainrt::detail {

namespace {

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::forward: return "forward";
    case Phase::backward: return "backward";
    case Phase::update: return "update";
  }
  return "?";
}

std::string list(const std::vector<std::int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  os << "]";
  return os.str();
}
std::string pair(const Pair2& p) { return cat("[", p[0], ",", p[1], "]"); }

const char* kind_name(VariableKind k) {
  switch (k) {
    case VariableKind::parameter: return "parameter";
    case VariableKind::state: return "state";
    case VariableKind::optimizer: return "optimizer";
  }
  return "?";
}

struct AttrPrinter {
  std::ostringstream& os;
  void operator()(const NoAttrs&) const {}
  void operator()(const VariableAttrs& a) const { os << "kind=" << kind_name(a.kind) << " init=" << int(a.init.kind); }
  void operator()(const ConstantAttrs& a) const {
    os << "data=" << (a.value ? std::to_string(a.value->numel()) + " elements" : "none");
  }
  void operator()(const ScalarAttrs& a) const { os << "value=" << a.value; }
  void operator()(const GeluAttrs& a) const {
    os << (a.tanh_approximation ? "approximation=tanh" : "approximation=none");
  }
  void operator()(const PermAttrs& a) const { os << "perm=" << list(a.perm); }
  void operator()(const SliceAttrs& a) const { os << "axis=" << a.axis << " start=" << a.start << " step=" << a.step; }
  void operator()(const AxisAttrs& a) const { os << "axis=" << a.axis; }
  void operator()(const ReduceAttrs& a) const { os << "axes=" << list(a.axes) << (a.keepdims ? " keepdims" : ""); }
  void operator()(const MatmulAttrs& a) const {
    os << (a.transpose_a ? "transpose_a" : "") << (a.transpose_a && a.transpose_b ? " " : "")
       << (a.transpose_b ? "transpose_b" : "");
  }
  void operator()(const Conv2dAttrs& a) const {
    os << "stride=" << pair(a.stride) << " padding=" << pair(a.padding) << " dilation=" << pair(a.dilation)
       << " groups=" << a.groups;
  }
  void operator()(const Pool2dAttrs& a) const {
    os << "kernel=" << pair(a.kernel) << " stride=" << pair(a.stride) << " padding=" << pair(a.padding)
       << (a.ceil_mode ? " ceil_mode" : "") << (a.count_include_pad ? "" : " exclude_pad");
  }
  void operator()(const CrossEntropyAttrs& a) const {
    os << "ignore_index=" << a.ignore_index << " label_smoothing=" << a.label_smoothing;
  }
  void operator()(const NormAttrs& a) const {
    os << "eps=" << a.eps << " momentum=" << a.momentum << " normalized_axes=" << a.normalized_axes;
  }
  void operator()(const DropoutAttrs& a) const { os << "p=" << a.p << " key=" << a.key; }
  void operator()(const AttentionAttrs& a) const { os << "scale=" << a.scale << (a.causal ? " causal" : ""); }
  void operator()(const CollectiveAttrs& a) const {
    os << "bucket=" << a.bucket << " world=" << a.world << " scale=" << a.scale;
  }
  // A fused node's groups, one line each: "{loop [64,10]: %0=add(in0,in1) %1=relu(%0) -> out0=%1}".
  void operator()(const FusedAttrs& a) const {
    if (!a.body) return;
    for (std::size_t gi = 0; gi < a.body->groups.size(); ++gi) {
      const FusedGroup& g = a.body->groups[gi];
      os << (gi ? "\n        " : "") << "{loop " << g.loop.to_string() << ":";
      for (std::size_t i = 0; i < g.ops.size(); ++i) {
        const FusedOp& op = g.ops[i];
        os << " %" << i << "=" << op_name(op.kind) << "(";
        for (std::size_t k = 0; k < op.args.size(); ++k)
          os << (k ? "," : "") << (op.args[k] >= 0 ? cat("%", op.args[k]) : cat("in", fused_arg_operand(op.args[k])));
        if (op.kind == OpKind::Full) os << std::get<ScalarAttrs>(op.attrs).value;
        os << ")";
      }
      os << " ->";
      for (std::size_t o = 0; o < a.body->outputs.size(); ++o)
        if (a.body->outputs[o].group == static_cast<std::int32_t>(gi))
          os << " out" << o << "=%" << a.body->outputs[o].op;
      os << "}";
    }
  }
};

}  // namespace

std::string print_attrs(const Node& node) {
  std::ostringstream os;
  std::visit(AttrPrinter{os}, node.attrs);
  const std::string s = os.str();
  return s.empty() ? std::string() : "{" + s + "}";
}

std::string value_name(const GraphImpl& graph, ValueId v) {
  if (!v.valid()) return "_";
  if (graph.node(v.node).outputs.size() == 1) return cat("%", v.node);
  return cat("%", v.node, ".", v.output);
}

std::string print_node(const GraphImpl& graph, std::int32_t index) {
  const Node& n = graph.node(index);
  std::ostringstream os;
  for (std::size_t i = 0; i < n.outputs.size(); ++i)
    os << (i ? ", " : "") << value_name(graph, {index, static_cast<std::int32_t>(i)});
  if (!n.outputs.empty()) os << " = ";
  os << op_name(n.kind);
  if (!n.name.empty()) os << " '" << n.name << "'";
  os << "(";
  for (std::size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << value_name(graph, n.inputs[i]);
  os << ")";
  const std::string attrs = print_attrs(n);
  if (!attrs.empty()) os << " " << attrs;
  if (!n.outputs.empty()) {
    os << " : ";
    for (std::size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << n.outputs[i].to_string();
  }
  os << "    # " << where(n.loc.file, n.loc.line) << " [" << phase_name(n.phase) << "]";
  return os.str();
}

std::string print_graph(const GraphImpl& graph) {
  std::string out;
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    if (graph.node(i).dead) continue;
    out += print_node(graph, i);
    out += '\n';
  }
  return out;
}

std::string describe_value(const GraphImpl& graph, ValueId v) {
  const Node& n = graph.node(v.node);
  const std::string type = graph.type(v).to_string();
  if (n.kind == OpKind::Input) return cat("input '", n.name, "' ", type);
  if (n.kind == OpKind::Variable)
    return cat(kind_name(std::get<VariableAttrs>(n.attrs).kind), " '", n.name, "' ", type);
  std::string s = cat(type, " = ", op_name(n.kind));
  if (n.outputs.size() > 1) s += cat(" (output ", v.output, ")");
  return cat(s, " at ", where(n.loc.file, n.loc.line));
}

}  // namespace trainrt::detail
