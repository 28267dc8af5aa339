#include "passes/autocast.h"

#include <optional>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

enum class Policy { low, f32, follow, keep };

Policy policy_of(OpKind k) {
  switch (k) {
    case OpKind::Matmul:
    case OpKind::Conv2d:
    case OpKind::Attention: return Policy::low;
    case OpKind::ReduceSum:
    case OpKind::ReduceMean:
    case OpKind::ReduceMax:
    case OpKind::Softmax:
    case OpKind::LogSoftmax:
    case OpKind::CrossEntropy:
    case OpKind::BatchNorm:
    case OpKind::BatchNormTrain:
    case OpKind::BatchNormEval:
    case OpKind::LayerNorm:
    case OpKind::Exp:
    case OpKind::Log:
    case OpKind::Pow:
    case OpKind::Rsqrt: return Policy::f32;
    case OpKind::Cast:
    case OpKind::GradientStats: return Policy::keep;  // reads every gradient as it is
    default: break;
  }
  const OpFamily f = op_family(k);
  // Data movement works on any dtype; Concat alone mixes operands and must agree on one.
  if (f == OpFamily::State || (f == OpFamily::Shape && k != OpKind::Concat)) return Policy::keep;
  return Policy::follow;
}

bool autocastable(DType d) { return d == DType::f32 || d == DType::f16 || d == DType::bf16; }

/// The one dtype the autocastable operands of `in` share (tensors only when `tensors`), f32
/// when they mix, nothing when there is none.
std::optional<DType> common_dtype(const std::vector<Value>& in, bool tensors) {
  std::optional<DType> common;
  for (const Value& v : in) {
    if (!v.valid() || !autocastable(v.dtype()) || (tensors && v.shape().rank() == 0)) continue;
    if (!common) common = v.dtype();
    else if (*common != v.dtype()) return DType::f32;
  }
  return common;
}

/// The dtype a `follow` op computes in: its tensor operands' common dtype (f32 when they
/// mix); scalars follow the tensors, and decide only when there are no tensors.
DType follow_dtype(const std::vector<Value>& in) {
  if (const auto d = common_dtype(in, true)) return *d;
  return common_dtype(in, false).value_or(DType::f32);
}

}  // namespace

std::shared_ptr<GraphImpl> autocast(const GraphImpl& graph, DType low, const std::vector<ValueId>& keep_dtype,
                                    ValueMap& map) {
  check_internal(low == DType::f16 || low == DType::bf16, "autocast: the 16-bit dtype must be f16 or bf16");
  std::shared_ptr<GraphImpl> out = rewrite_graph(
      graph,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = graph.node(i);
        std::vector<Value> inputs;
        inputs.reserve(n.inputs.size());
        bool moved = false;  // an operand's dtype differs from the old graph's
        for (std::size_t k = 0; k < n.inputs.size(); ++k) {
          inputs.push_back(rw.operand(i, k));
          moved = moved || (inputs.back().valid() && inputs.back().dtype() != graph.type(n.inputs[k]).dtype);
        }
        const Loc l = Loc::current();
        if (n.kind == OpKind::Assign) {
          if (!moved) return false;
          const Value value =
              inputs[1].dtype() == inputs[0].dtype() ? inputs[1] : cast(inputs[1], inputs[0].dtype(), l);
          assign(inputs[0], value, l);
          return true;
        }
        const Policy policy = policy_of(n.kind);
        if (policy == Policy::keep) {
          if (!moved) return false;
          // A shape op or a cast over an operand that changed dtype: outputs of the old
          // operand's dtype take the new one (casts keep their requested dtype).
          std::vector<TensorType> requested = n.outputs;
          if (n.kind != OpKind::Cast && !inputs.empty() && inputs[0].valid())
            for (TensorType& t : requested)
              if (t.dtype == graph.type(n.inputs[0]).dtype) t.dtype = inputs[0].dtype();
          const std::vector<Value> outs = add_op(n.kind, inputs, n.attrs, l, requested);
          for (std::size_t o = 0; o < outs.size(); ++o) rw.map_output(i, static_cast<std::int32_t>(o), outs[o]);
          return true;
        }
        const DType compute = policy == Policy::low ? low : policy == Policy::f32 ? DType::f32 : follow_dtype(inputs);
        // The old op's floating dtype (of its first floating operand): outputs of that dtype
        // take the compute dtype, others (indices, masks, f64) keep theirs.
        DType old = DType::f32;
        for (const ValueId& v : n.inputs)
          if (v.valid() && autocastable(graph.type(v).dtype)) {
            old = graph.type(v).dtype;
            break;
          }
        bool changed = moved;
        for (Value& v : inputs) {
          if (!v.valid() || !autocastable(v.dtype()) || v.dtype() == compute) continue;
          v = cast(v, compute, l);
          changed = true;
        }
        if (!changed) return false;
        std::vector<TensorType> requested = n.outputs;
        for (TensorType& t : requested)
          if (t.dtype == old && autocastable(t.dtype)) t.dtype = compute;
        const std::vector<Value> outs = add_op(n.kind, inputs, n.attrs, l, requested);
        for (std::size_t o = 0; o < outs.size(); ++o) rw.map_output(i, static_cast<std::int32_t>(o), outs[o]);
        return true;
      },
      map);
  for (const ValueId& v : keep_dtype) {
    if (!map.contains(v)) continue;
    const DType want = graph.type(v).dtype;
    const Value now = make_value(out, map(v));
    if (now.dtype() != want) map.set(v, id_of(cast(now, want, Loc::current())));
  }
  return out;
}

}  // namespace trainrt::detail
