#include "passes/legalize_dtypes.h"

#include "ir/builder.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

bool low_precision(DType d) { return d == DType::f16 || d == DType::bf16; }

bool works_on_any_dtype(OpKind k) {
  const OpFamily f = op_family(k);
  return f == OpFamily::State || f == OpFamily::Shape || k == OpKind::Cast;
}

}  // namespace

std::shared_ptr<GraphImpl> legalize_dtypes_for_cpu(const GraphImpl& graph, ValueMap& map, bool& changed) {
  changed = false;
  return rewrite_graph(
      graph,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = graph.node(i);
        if (works_on_any_dtype(n.kind)) return false;
        bool needs = false;
        for (const ValueId& in : n.inputs) needs = needs || (in.valid() && low_precision(graph.type(in).dtype));
        for (const TensorType& t : n.outputs) needs = needs || low_precision(t.dtype);
        if (!needs) return false;
        changed = true;
        const Loc l = Loc::current();
        std::vector<Value> inputs;
        for (std::size_t k = 0; k < n.inputs.size(); ++k) {
          Value v = rw.operand(i, k);
          if (v.valid() && low_precision(v.dtype())) v = cast(v, DType::f32, l);
          inputs.push_back(v);
        }
        std::vector<TensorType> requested = n.outputs;
        for (TensorType& t : requested)
          if (low_precision(t.dtype)) t.dtype = DType::f32;
        const std::vector<Value> outs = add_op(n.kind, inputs, n.attrs, l, requested);
        for (std::size_t o = 0; o < outs.size(); ++o) {
          const DType want = n.outputs[o].dtype;
          rw.map_output(i, static_cast<std::int32_t>(o), want == outs[o].dtype() ? outs[o] : cast(outs[o], want, l));
        }
        return true;
      },
      map);
}

}  // namespace trainrt::detail
