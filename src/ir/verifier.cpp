#include "ir/verifier.h"

#include <set>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/printer.h"

namespace trainrt::detail {

namespace {
[[noreturn]] void broken(const GraphImpl& g, std::int32_t i, std::string_view pass, const std::string& rule) {
  fail(ErrorKind::Internal, cat("internal error (a libtrainrt bug, please report): the IR is invalid after pass '",
                                pass, "': ", rule, "\n  at node: ", print_node(g, i)));
}
}  // namespace

void verify(const GraphImpl& g, std::string_view pass) {
  std::set<std::int32_t> assigned;
  for (std::int32_t i = 0; i < g.size(); ++i) {
    const Node& n = g.node(i);
    if (n.dead) continue;
    for (const ValueId& in : n.inputs) {
      if (!in.valid()) continue;
      if (in.node >= i) broken(g, i, pass, "uses a value of a later node");
      if (g.node(in.node).dead) broken(g, i, pass, "uses a value of a dead node");
      if (in.output < 0 || in.output >= static_cast<std::int32_t>(g.node(in.node).outputs.size()))
        broken(g, i, pass, "uses an output that does not exist");
    }
    std::vector<TensorType> types;
    try {
      types = infer_types(g, n);
    } catch (const Error& e) {
      broken(g, i, pass, cat("inference fails: ", e.what()));
    }
    if (types != n.outputs) broken(g, i, pass, "stored output types differ from inferred ones");
    if (n.kind == OpKind::Assign && !assigned.insert(n.inputs[0].node).second)
      broken(g, i, pass, "a variable is assigned twice");
  }
}

}  // namespace trainrt::detail
