// passes/simplify_algebra.cpp — see simplify_algebra.h for the rules and their exactness.
//
// Rules look at the operands in the new graph, so a rule sees what earlier rules and copies
// made of them (neg(neg(neg(x))) becomes neg(x) in one walk). A rule returns the replacement
// value or an absent Value; it checks the replacement's type before building anything, so
// a rule that does not apply leaves no node behind.
#include "passes/simplify_algebra.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/element.h"
#include "core/error.h"
#include "ir/builder.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

const Node& producer(const Value& v) { return v.impl()->node(v.node()); }

/// The value every element of a full node holds, as stored in its dtype (a full f32 0.1
/// holds float(0.1)); nothing for other producers.
std::optional<double> full_value(const Value& v) {
  const Node& n = producer(v);
  if (n.kind != OpKind::Full) return std::nullopt;
  std::uint64_t buf = 0;
  store_from_double(&buf, n.outputs[0].dtype, 0, std::get<ScalarAttrs>(n.attrs).value);
  return load_as_double(&buf, n.outputs[0].dtype, 0);
}

bool is_full(const Value& v, double want) {
  const std::optional<double> f = full_value(v);
  return f && *f == want && std::signbit(*f) == std::signbit(want);
}
/// The additive identity of x + c: -0 for floating dtypes, 0 for integers.
bool is_add_identity(const Value& c) { return is_floating(c.dtype()) ? is_full(c, -0.0) : is_full(c, 0.0); }
/// The identity of x - c: +0 (floating) or 0.
bool is_sub_identity(const Value& c) { return is_full(c, 0.0); }
bool is_one(const Value& c) { return is_full(c, 1.0); }

bool same_value(const Value& a, const Value& b) { return a.impl() == b.impl() && id_of(a) == id_of(b); }
bool fits(const Value& v, const TensorType& t) { return v.dtype() == t.dtype && v.shape() == t.shape; }
bool fits_shape(const Shape& a, const Shape& b, const TensorType& t) {
  try {
    return broadcast_shapes(a, b) == t.shape;
  } catch (const Error&) {
    return false;
  }
}

/// `x` itself as the replacement, when it has the node's type.
Value keep(const Value& x, const Node& n) {
  if (!x.valid() || !fits(x, n.outputs[0])) return {};
  return x;
}

/// Whether `v` is an input's or a variable's storage, or a reshape of one (reshapes alias).
bool aliases_leaf(const GraphImpl& g, ValueId v) {
  while (g.node(v.node).kind == OpKind::Reshape) v = g.node(v.node).inputs[0];
  const OpKind k = g.node(v.node).kind;
  return k == OpKind::Input || k == OpKind::Variable;
}

/// Values of `g` that must keep storage of their own (see the header): the roots and the
/// assigned values, and the operands of reshapes among them.
std::vector<bool> escaping_nodes(const GraphImpl& g, const std::vector<ValueId>& roots) {
  std::vector<bool> escapes(static_cast<std::size_t>(g.size()), false);
  for (const ValueId& r : roots) escapes[static_cast<std::size_t>(r.node)] = true;
  for (std::int32_t i = g.size() - 1; i >= 0; --i) {
    const Node& n = g.node(i);
    if (n.dead) continue;
    if (n.kind == OpKind::Assign) escapes[static_cast<std::size_t>(n.inputs[1].node)] = true;
    if (n.kind == OpKind::Reshape && escapes[static_cast<std::size_t>(i)])
      escapes[static_cast<std::size_t>(n.inputs[0].node)] = true;
  }
  return escapes;
}

/// 1/c when c is +-2^k and 1/c is stored exactly in `dtype`.
std::optional<double> exact_inverse(double c, DType dtype) {
  if (!is_floating(dtype) || c == 0.0 || !std::isfinite(c)) return std::nullopt;
  int e = 0;
  if (std::fabs(std::frexp(c, &e)) != 0.5) return std::nullopt;
  const double inv = 1.0 / c;  // a power of two: exact in double for every f32/f16/bf16 c
  std::uint64_t buf = 0;
  store_from_double(&buf, dtype, 0, inv);
  if (load_as_double(&buf, dtype, 0) != inv) return std::nullopt;
  return inv;
}

/// Whether dtype `wide` holds every value of dtype `from` exactly (and the cast kernels
/// convert such values exactly both ways).
bool holds_every_value(DType from, DType wide) {
  if (from == wide) return true;
  switch (from) {
    case DType::boolean: return true;
    case DType::f16:
    case DType::bf16: return wide == DType::f32 || wide == DType::f64;
    case DType::f32: return wide == DType::f64;
    case DType::i32: return wide == DType::i64 || wide == DType::f64;
    default: return false;
  }
}

/// True when permutation `p` of `shape` keeps the axes longer than 1 in their order: the
/// elements stay in the same row-major order, so the permute is a reshape.
bool moves_only_unit_axes(const std::vector<std::int64_t>& p, const Shape& shape) {
  std::int64_t last = -1;
  for (std::int64_t a : p) {
    if (shape[a] == 1) continue;
    if (a < last) return false;
    last = a;
  }
  return true;
}

Value simplify_arithmetic(const Node& n, const std::vector<Value>& in) {
  const TensorType& out = n.outputs[0];
  switch (n.kind) {
    case OpKind::Add:
      if (is_add_identity(in[1])) return keep(in[0], n);
      if (is_add_identity(in[0])) return keep(in[1], n);
      return {};
    case OpKind::Sub: return is_sub_identity(in[1]) ? keep(in[0], n) : Value{};
    case OpKind::Mul:
      if (is_one(in[1])) return keep(in[0], n);
      if (is_one(in[0])) return keep(in[1], n);
      return {};
    case OpKind::Div: {
      if (is_one(in[1])) return keep(in[0], n);
      const std::optional<double> c = full_value(in[1]);
      if (!c) return {};
      const std::optional<double> inv = exact_inverse(*c, in[1].dtype());
      if (!inv) return {};
      return mul(in[0], in[1].graph().full(in[1].shape(), *inv, in[1].dtype()));
    }
    case OpKind::Pow:  // not pow(x, 2) -> x * x: see the header
      return is_one(in[1]) ? keep(in[0], n) : Value{};
    case OpKind::Fma: {
      const Value &a = in[0], &b = in[1], &c = in[2];
      if (is_add_identity(c) && fits_shape(a.shape(), b.shape(), out)) return mul(a, b);
      if (is_one(b) && fits_shape(a.shape(), c.shape(), out)) return add(a, c);
      if (is_one(a) && fits_shape(b.shape(), c.shape(), out)) return add(b, c);
      return {};
    }
    default: return {};
  }
}

Value simplify_select(const Node& n, const std::vector<Value>& in) {
  switch (n.kind) {
    case OpKind::Maximum:
    case OpKind::Minimum: return same_value(in[0], in[1]) ? keep(in[0], n) : Value{};
    case OpKind::LogicalAnd:
      if (same_value(in[0], in[1]) || is_full(in[1], 1.0)) return keep(in[0], n);
      return is_full(in[0], 1.0) ? keep(in[1], n) : Value{};
    case OpKind::LogicalOr:
      if (same_value(in[0], in[1]) || is_full(in[1], 0.0)) return keep(in[0], n);
      return is_full(in[0], 0.0) ? keep(in[1], n) : Value{};
    case OpKind::Where:
      if (same_value(in[1], in[2]) || is_full(in[0], 1.0)) return keep(in[1], n);
      return is_full(in[0], 0.0) ? keep(in[2], n) : Value{};
    default: return {};
  }
}

Value simplify_unary(const Node& n, const std::vector<Value>& in) {
  const Node& p = producer(in[0]);
  switch (n.kind) {
    case OpKind::Neg:
    case OpKind::LogicalNot: return p.kind == n.kind ? keep(make_value(in[0].impl_ptr(), p.inputs[0]), n) : Value{};
    case OpKind::Abs:
    case OpKind::Relu:
    case OpKind::Floor:
    case OpKind::Sign: return p.kind == n.kind ? keep(in[0], n) : Value{};
    case OpKind::Cast: {
      const DType to = n.outputs[0].dtype;
      if (in[0].dtype() == to) return keep(in[0], n);
      if (p.kind != OpKind::Cast) return {};
      const Value x = make_value(in[0].impl_ptr(), p.inputs[0]);
      if (!holds_every_value(x.dtype(), in[0].dtype())) return {};
      return x.dtype() == to ? keep(x, n) : cast(x, to);
    }
    default: return {};
  }
}

Value simplify_shape(const Node& n, const std::vector<Value>& in) {
  const TensorType& out = n.outputs[0];
  const Node& p = producer(in[0]);
  switch (n.kind) {
    case OpKind::Reshape: {
      if (in[0].shape() == out.shape) return keep(in[0], n);
      if (p.kind != OpKind::Reshape) return {};
      const Value x = make_value(in[0].impl_ptr(), p.inputs[0]);
      return x.shape() == out.shape ? keep(x, n) : reshape(x, out.shape.dims());
    }
    case OpKind::BroadcastTo:
      if (in[0].shape() == out.shape) return keep(in[0], n);
      if (p.kind == OpKind::BroadcastTo) return broadcast_to(make_value(in[0].impl_ptr(), p.inputs[0]), out.shape);
      return {};
    case OpKind::Permute: {
      // Output axis i of permute(y, q) is axis q[i] of y; with y = permute(x, r), that is
      // axis r[q[i]] of x.
      std::vector<std::int64_t> perm = std::get<PermAttrs>(n.attrs).perm;
      Value x = in[0];
      const bool composed = p.kind == OpKind::Permute;
      if (composed) {
        const std::vector<std::int64_t>& r = std::get<PermAttrs>(p.attrs).perm;
        for (std::int64_t& a : perm) a = r[static_cast<std::size_t>(a)];
        x = make_value(in[0].impl_ptr(), p.inputs[0]);
      }
      if (moves_only_unit_axes(perm, x.shape())) {
        if (x.shape() == out.shape) return keep(x, n);
        return reshape(x, out.shape.dims());
      }
      return composed ? permute(x, perm) : Value{};
    }
    case OpKind::Slice: {
      const auto& a = std::get<SliceAttrs>(n.attrs);
      return a.start == 0 && a.step == 1 && in[0].shape() == out.shape ? keep(in[0], n) : Value{};
    }
    case OpKind::Concat: return in.size() == 1 ? keep(in[0], n) : Value{};
    default: return {};
  }
}

/// The replacement of node `n` (operands `in`, in the new graph), or an absent Value.
Value simplify(const Node& n, const std::vector<Value>& in) {
  if (n.outputs.size() != 1 || in.empty()) return {};
  for (const Value& v : in)
    if (!v.valid()) return {};
  switch (op_family(n.kind)) {
    case OpFamily::Unary: return simplify_unary(n, in);
    case OpFamily::Binary:
    case OpFamily::Ternary: {
      const Value r = simplify_arithmetic(n, in);
      return r.valid() ? r : simplify_select(n, in);
    }
    case OpFamily::Shape: return simplify_shape(n, in);
    default: return {};
  }
}

}  // namespace

bool simplify_algebra(std::shared_ptr<GraphImpl>& graph, ValueMap& map, const std::vector<ValueId>& roots) {
  const GraphImpl& source = *graph;
  const std::vector<bool> escapes = escaping_nodes(source, roots);
  bool changed = false;
  std::vector<Value> in;
  std::shared_ptr<GraphImpl> out = rewrite_graph(
      source,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = source.node(i);
        in.clear();
        for (std::size_t k = 0; k < n.inputs.size(); ++k) in.push_back(rw.operand(i, k));
        const Value r = simplify(n, in);
        if (!r.valid()) return false;
        if (escapes[static_cast<std::size_t>(i)] && aliases_leaf(*rw.target(), id_of(r))) return false;
        check_internal(fits(r, n.outputs[0]), "simplify_algebra: a rule changed a value's type");
        rw.map_output(i, 0, r);
        changed = true;
        return true;
      },
      map);
  graph = std::move(out);
  return changed;
}

}  // namespace trainrt::detail
