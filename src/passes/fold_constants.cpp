// passes/fold_constants.cpp — see fold_constants.h.
//
// Contents:
//   element access     loading a stored element in a kernel's compute type, storing back
//   op formulas        the scalar math of runtime/cpu/elementwise_ops.h and of the cast kernel
//   evaluation         one loop over the output with numpy broadcasting
//   the pass           which nodes fold, and what replaces them
#include "passes/fold_constants.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/element.h"
#include "core/half.h"
#include "ir/builder.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

using Bool = std::uint8_t;  // the CPU kernels' bool: one byte holding 0 or 1

// ---- element access -----------------------------------------------------------------------

/// Element i of storage dtype `d`, in compute type C. f16/bf16 widen to f32 exactly as the
/// casts that dtype legalization puts in front of their kernels do.
template <class C>
C load(const void* p, DType d, std::int64_t i) {
  switch (d) {
    case DType::f32: return static_cast<C>(static_cast<const float*>(p)[i]);
    case DType::f64: return static_cast<C>(static_cast<const double*>(p)[i]);
    case DType::f16: return static_cast<C>(half_to_float(static_cast<const std::uint16_t*>(p)[i]));
    case DType::bf16: return static_cast<C>(bf16_to_float(static_cast<const std::uint16_t*>(p)[i]));
    case DType::i32: return static_cast<C>(static_cast<const std::int32_t*>(p)[i]);
    case DType::i64: return static_cast<C>(static_cast<const std::int64_t*>(p)[i]);
    case DType::boolean: return static_cast<C>(static_cast<const Bool*>(p)[i]);
  }
  return C{};
}

/// Stores a result of compute type R as element i of dtype `d` (R is d's compute type; f16
/// and bf16 narrow from f32 as legalization's cast back does).
template <class R>
void store(void* p, DType d, std::int64_t i, R v) {
  switch (d) {
    case DType::f32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::f64: static_cast<double*>(p)[i] = static_cast<double>(v); break;
    case DType::f16: static_cast<std::uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); break;
    case DType::bf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case DType::i32: static_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v); break;
    case DType::i64: static_cast<std::int64_t*>(p)[i] = static_cast<std::int64_t>(v); break;
    case DType::boolean: static_cast<Bool*>(p)[i] = static_cast<Bool>(v != R(0)); break;
  }
}

// ---- op formulas ----------------------------------------------------------------------------
// Copies of runtime/cpu/elementwise_ops.h (namespace ew), term for term: the same operations
// in the same order and type give the same bits (the build has no FMA contraction and
// computes f32 in SSE registers, without excess precision). Keep the two in step; the
// simplify_passes_test folding cases fail when they drift.

// sqrt(2/pi), the tanh-GELU cubic coefficient, 1/sqrt(2), 1/sqrt(2*pi) (as in ew::).
constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

// Integer kernels compute in int32_t/int64_t, whose overflow wraps in the compiled loops;
// here the wrap is made explicit through the unsigned type (C++ signed overflow is undefined).
template <class T>
T add(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) + static_cast<std::make_unsigned_t<T>>(b));
  else return a + b;
}
template <class T>
T sub(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) - static_cast<std::make_unsigned_t<T>>(b));
  else return a - b;
}
template <class T>
T mul(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) * static_cast<std::make_unsigned_t<T>>(b));
  else return a * b;
}
template <class T>
T neg(T x) {
  if constexpr (std::is_integral_v<T>) return sub(T(0), x);
  else return -x;
}

template <class T>
T gelu_exact(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
}
template <class T>
T gelu_tanh(T x) {
  return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x)));
}
template <class T>
T gelu_backward_exact(T g, T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
  const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  return g * (cdf + x * pdf);
}
template <class T>
T gelu_backward_tanh(T g, T x) {
  const T t = std::tanh(T(kSqrt2OverPi) * (x + T(kGeluCubic) * x * x * x));
  const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x * x);
  return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
}

/// The cast kernel's conversion (runtime/cpu/elementwise_unary.cpp CastKernel::convert):
/// float to integer truncates, saturates and maps NaN to 0; i64 to i32 wraps; other pairs
/// go through double, f16/bf16 through f32.
template <class I>
I to_integer(double v) {
  if (!(v == v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v >= static_cast<double>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

void cast_element(const void* src, DType from, std::int64_t i, void* dst, DType to, std::int64_t j) {
  const auto* s16 = static_cast<const std::uint16_t*>(src);
  if (from == DType::i64 && to == DType::i32) {
    static_cast<std::int32_t*>(dst)[j] = static_cast<std::int32_t>(static_cast<const std::int64_t*>(src)[i]);
  } else if ((from == DType::i64 || from == DType::i32) && to == DType::i64) {
    static_cast<std::int64_t*>(dst)[j] = from == DType::i64
                                             ? static_cast<const std::int64_t*>(src)[i]
                                             : static_cast<std::int64_t>(static_cast<const std::int32_t*>(src)[i]);
  } else if (from == DType::f32 && to == DType::bf16) {
    static_cast<std::uint16_t*>(dst)[j] = float_to_bf16(static_cast<const float*>(src)[i]);
  } else if (from == DType::f32 && to == DType::f16) {
    static_cast<std::uint16_t*>(dst)[j] = float_to_half(static_cast<const float*>(src)[i]);
  } else if (from == DType::bf16 && to == DType::f32) {
    static_cast<float*>(dst)[j] = bf16_to_float(s16[i]);
  } else if (from == DType::f16 && to == DType::f32) {
    static_cast<float*>(dst)[j] = half_to_float(s16[i]);
  } else {
    const double v = load_as_double(src, from, i);  // the kernel's load<From>
    switch (to) {
      case DType::f32: static_cast<float*>(dst)[j] = static_cast<float>(v); break;
      case DType::f64: static_cast<double*>(dst)[j] = v; break;
      case DType::f16: static_cast<std::uint16_t*>(dst)[j] = float_to_half(static_cast<float>(v)); break;
      case DType::bf16: static_cast<std::uint16_t*>(dst)[j] = float_to_bf16(static_cast<float>(v)); break;
      case DType::i32: static_cast<std::int32_t*>(dst)[j] = to_integer<std::int32_t>(v); break;
      case DType::i64: static_cast<std::int64_t*>(dst)[j] = to_integer<std::int64_t>(v); break;
      case DType::boolean: static_cast<Bool*>(dst)[j] = v != 0.0; break;
    }
  }
}

// ---- evaluation -----------------------------------------------------------------------------

/// One operand, read with numpy broadcasting against the output.
struct Operand {
  const void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<std::int64_t> stride;  // per output axis; 0 where broadcast
  Tensor storage;                    // a full node's single element
};

/// The output's shape and element count; numel 1 over a rank-0 shape when every operand is
/// uniform (one evaluation stands for all).
struct OutputSpace {
  std::vector<std::int64_t> dims;
  std::int64_t numel = 1;
};

/// Calls fn(i, offsets) for every output element i, offsets being each operand's element.
template <class Fn>
void for_each_element(const OutputSpace& space, const std::vector<Operand>& ops, const Fn& fn) {
  const std::size_t rank = space.dims.size();
  std::vector<std::int64_t> idx(rank, 0);
  std::int64_t off[3] = {0, 0, 0};
  for (std::int64_t i = 0; i < space.numel; ++i) {
    fn(i, off);
    for (std::size_t d = rank; d-- > 0;) {  // odometer step
      for (std::size_t k = 0; k < ops.size(); ++k) off[k] += ops[k].stride[d];
      if (++idx[d] < space.dims[d]) break;
      for (std::size_t k = 0; k < ops.size(); ++k) off[k] -= idx[d] * ops[k].stride[d];
      idx[d] = 0;
    }
  }
}

/// out[i] = f(operands at i), operands loaded as C, results of type R stored as `out_dtype`.
template <class C, class R, class F>
bool map_elements(const OutputSpace& space, const std::vector<Operand>& ops, void* out, DType out_dtype, F f) {
  for_each_element(space, ops, [&](std::int64_t i, const std::int64_t* off) {
    C a[3] = {};
    for (std::size_t k = 0; k < ops.size(); ++k) a[k] = load<C>(ops[k].data, ops[k].dtype, off[k]);
    store<R>(out, out_dtype, i, static_cast<R>(f(a[0], a[1], a[2])));
  });
  return true;
}

/// Evaluates elementwise op `n` in compute type C (the kernel's element type for the
/// operands' dtype). Returns false for ops this type does not fold.
template <class C>
bool eval_elementwise(const Node& n, const OutputSpace& space, const std::vector<Operand>& ops, void* out) {
  const DType od = n.outputs[0].dtype;
  auto same = [&](auto f) { return map_elements<C, C>(space, ops, out, od, f); };
  auto predicate = [&](auto f) { return map_elements<C, Bool>(space, ops, out, od, f); };
  using K = OpKind;
  // Every dtype: equality, selection.
  switch (n.kind) {
    case K::Eq: return predicate([](C a, C b, C) { return Bool(a == b); });
    case K::Ne: return predicate([](C a, C b, C) { return Bool(a != b); });
    case K::Where: return same([](C c, C a, C b) { return c != C(0) ? a : b; });
    default: break;
  }
  if constexpr (std::is_same_v<C, Bool>) {
    switch (n.kind) {
      case K::LogicalNot: return same([](C x, C, C) { return C(!x); });
      case K::LogicalAnd: return predicate([](C a, C b, C) { return Bool(a && b); });
      case K::LogicalOr: return predicate([](C a, C b, C) { return Bool(a || b); });
      default: return false;
    }
  } else {
    // Numeric dtypes.
    switch (n.kind) {
      case K::Neg: return same([](C x, C, C) { return neg(x); });
      case K::Abs: return same([](C x, C, C) { return x < C(0) ? neg(x) : x; });
      case K::Sign: return same([](C x, C, C) { return C((x > C(0)) - (x < C(0))); });
      case K::Relu: return same([](C x, C, C) { return x > C(0) ? x : C(0); });
      case K::Add: return same([](C a, C b, C) { return add(a, b); });
      case K::Sub: return same([](C a, C b, C) { return sub(a, b); });
      case K::Mul: return same([](C a, C b, C) { return mul(a, b); });
      // NOLINTNEXTLINE(misc-redundant-expression): x != x is the NaN test
      case K::Maximum: return same([](C a, C b, C) { return (a > b || a != a) ? a : b; });
      // NOLINTNEXTLINE(misc-redundant-expression): x != x is the NaN test
      case K::Minimum: return same([](C a, C b, C) { return (a < b || a != a) ? a : b; });
      case K::Lt: return predicate([](C a, C b, C) { return Bool(a < b); });
      case K::Le: return predicate([](C a, C b, C) { return Bool(a <= b); });
      case K::Gt: return predicate([](C a, C b, C) { return Bool(a > b); });
      case K::Ge: return predicate([](C a, C b, C) { return Bool(a >= b); });
      case K::Fma: return same([](C a, C b, C c) { return add(mul(a, b), c); });
      default: break;
    }
    if constexpr (std::is_floating_point_v<C>) {
      // f32 kernels of these four run runtime/cpu/vec_math.h's own exp/erf, not the C
      // library's: fold them in f64 only.
      constexpr bool kLibm = std::is_same_v<C, double>;
      const bool tanh_form =
          std::holds_alternative<GeluAttrs>(n.attrs) && std::get<GeluAttrs>(n.attrs).tanh_approximation;
      switch (n.kind) {
        case K::Exp: return kLibm && same([](C x, C, C) { return std::exp(x); });
        case K::Sigmoid: return kLibm && same([](C x, C, C) { return C(1) / (C(1) + std::exp(-x)); });
        case K::Gelu:
          if (tanh_form) return same([](C x, C, C) { return gelu_tanh(x); });
          return kLibm && same([](C x, C, C) { return gelu_exact(x); });
        case K::GeluBackward:
          if (tanh_form) return same([](C g, C x, C) { return gelu_backward_tanh(g, x); });
          return kLibm && same([](C g, C x, C) { return gelu_backward_exact(g, x); });
        case K::Log: return same([](C x, C, C) { return std::log(x); });
        case K::Sqrt: return same([](C x, C, C) { return std::sqrt(x); });
        case K::Rsqrt: return same([](C x, C, C) { return C(1) / std::sqrt(x); });
        case K::Sin: return same([](C x, C, C) { return std::sin(x); });
        case K::Cos: return same([](C x, C, C) { return std::cos(x); });
        case K::Floor: return same([](C x, C, C) { return std::floor(x); });
        case K::Tanh: return same([](C x, C, C) { return std::tanh(x); });
        case K::Div: return same([](C a, C b, C) { return a / b; });
        case K::Pow: return same([](C a, C b, C) { return std::pow(a, b); });
        case K::ReluBackward: return same([](C g, C y, C) { return y > C(0) ? g : C(0); });
        case K::SigmoidBackward: return same([](C g, C y, C) { return g * y * (C(1) - y); });
        case K::TanhBackward: return same([](C g, C y, C) { return g * (C(1) - y * y); });
        default: return false;
      }
    } else {
      return false;
    }
  }
}

/// The compute type's evaluation for operands of dtype `d`.
bool eval_elementwise(const Node& n, DType d, const OutputSpace& space, const std::vector<Operand>& ops, void* out) {
  switch (d) {
    case DType::f32:
    case DType::f16:
    case DType::bf16: return eval_elementwise<float>(n, space, ops, out);
    case DType::f64: return eval_elementwise<double>(n, space, ops, out);
    case DType::i32: return eval_elementwise<std::int32_t>(n, space, ops, out);
    case DType::i64: return eval_elementwise<std::int64_t>(n, space, ops, out);
    case DType::boolean: return eval_elementwise<Bool>(n, space, ops, out);
  }
  return false;
}

// ---- the pass -------------------------------------------------------------------------------

bool foldable_kind(OpKind k) {
  if (k == OpKind::Reshape || k == OpKind::BroadcastTo) return true;
  return is_elementwise(k) && op_family(k) != OpFamily::Random;  // includes cast
}

std::size_t bytes_of(const TensorType& t) { return static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype); }

/// The double that a full node must hold to store exactly the bits of element 0 of `t`, or
/// nothing when no double does (i64 beyond 2^53, some NaN payloads of f16/bf16).
std::optional<double> full_value_for(const Tensor& t) {
  const double v = load_as_double(t.raw_data(), t.dtype(), 0);
  std::uint64_t back = 0;  // large enough for any one element
  store_from_double(&back, t.dtype(), 0, v);
  if (std::memcmp(&back, t.raw_data(), size_of(t.dtype())) != 0) return std::nullopt;
  return v;
}

/// True when every element of `t` has the bits of element 0.
bool uniform(const Tensor& t) {
  const std::size_t e = size_of(t.dtype());
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  for (std::size_t i = e; i < t.nbytes(); i += e)
    if (std::memcmp(p, p + i, e) != 0) return false;
  return true;
}

/// The node replacing a folded value of type `type` whose elements are `value` (every
/// element when `value` has one element, else element for element).
Value emit(Rewriter& rw, const TensorType& type, const Tensor& value, std::size_t max_bytes) {
  const Loc l = Loc::current();
  if (value.numel() >= 1 && uniform(value)) {
    if (const std::optional<double> v = full_value_for(value))
      return add_op(OpKind::Full, {}, ScalarAttrs{*v}, l, {type}, rw.target()).front();
  }
  Tensor t = value;
  if (value.numel() != type.shape.numel()) {  // one element standing for all: spell it out
    if (bytes_of(type) > max_bytes) return {};
    t = Tensor::empty(type.shape, type.dtype);
    const std::size_t e = size_of(type.dtype);
    for (std::size_t i = 0; i < t.nbytes(); i += e)
      std::memcpy(static_cast<unsigned char*>(t.raw_data()) + i, value.raw_data(), e);
  } else if (!(t.shape() == type.shape)) {
    t = t.reshape(type.shape);
  }
  return add_op(OpKind::Constant, {}, ConstantAttrs{std::make_shared<const Tensor>(std::move(t))}, l, {type},
                rw.target())
      .front();
}

/// Element strides of `s` seen from an output of rank `rank` (numpy alignment, 0 where broadcast).
std::vector<std::int64_t> broadcast_strides(const Shape& s, std::size_t rank) {
  std::vector<std::int64_t> stride(rank, 0);
  std::int64_t running = 1;
  for (std::int64_t d = s.rank() - 1; d >= 0; --d) {
    const std::size_t od = rank - static_cast<std::size_t>(s.rank() - d);
    stride[od] = s[d] == 1 ? 0 : running;
    running *= s[d];
  }
  return stride;
}

/// Folds node i of the source graph when it can; returns whether it did.
bool fold_node(std::int32_t i, Rewriter& rw, std::size_t max_bytes) {
  const Node& n = rw.source().node(i);
  const GraphImpl& target = *rw.target();

  if (n.kind == OpKind::Constant) {  // a leaf constant that is one value is a full node
    const auto& c = std::get<ConstantAttrs>(n.attrs).value;
    if (!c || c->numel() < 1 || !uniform(*c)) return false;
    const std::optional<double> v = full_value_for(*c);
    if (!v) return false;
    rw.map_output(i, 0, add_op(OpKind::Full, {}, ScalarAttrs{*v}, Loc::current(), {n.outputs[0]}, rw.target()).front());
    return true;
  }
  if (!foldable_kind(n.kind) || n.outputs.size() != 1) return false;

  const TensorType& type = n.outputs[0];
  std::vector<Operand> ops;
  bool all_full = true;
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const Value v = rw.operand(i, k);
    if (!v.valid()) return false;
    const Node& m = target.node(v.node());
    Operand op;
    op.dtype = m.outputs[0].dtype;
    if (m.kind == OpKind::Full) {
      op.storage = Tensor::full(Shape{}, std::get<ScalarAttrs>(m.attrs).value, op.dtype);  // as the executor fills it
      op.data = op.storage.raw_data();
    } else if (m.kind == OpKind::Constant && std::get<ConstantAttrs>(m.attrs).value) {
      op.storage = *std::get<ConstantAttrs>(m.attrs).value;
      op.data = op.storage.raw_data();
      all_full = false;
    } else {
      return false;  // an input, a variable or a computed value
    }
    ops.push_back(std::move(op));
  }
  if (ops.empty()) return false;
  if (!all_full && bytes_of(type) > max_bytes) return false;

  // Data movement: the operand's elements as they are.
  if (n.kind == OpKind::Reshape || n.kind == OpKind::BroadcastTo) {
    const Node& m = target.node(rw.operand(i, 0).node());
    if (all_full) {
      rw.map_output(i, 0, add_op(OpKind::Full, {}, m.attrs, Loc::current(), {type}, rw.target()).front());
      return true;
    }
    Tensor src = ops[0].storage;
    Tensor value = src;
    if (n.kind == OpKind::BroadcastTo) {
      value = Tensor::empty(type.shape, type.dtype);
      ops[0].stride = broadcast_strides(src.shape(), static_cast<std::size_t>(type.shape.rank()));
      const std::size_t e = size_of(type.dtype);
      for_each_element(
          OutputSpace{type.shape.dims(), type.shape.numel()}, ops, [&](std::int64_t j, const std::int64_t* off) {
            std::memcpy(static_cast<unsigned char*>(value.raw_data()) + static_cast<std::size_t>(j) * e,
                        static_cast<const unsigned char*>(src.raw_data()) + static_cast<std::size_t>(off[0]) * e, e);
          });
    }
    const Value r = emit(rw, type, value, max_bytes);
    if (!r.valid()) return false;
    rw.map_output(i, 0, r);
    return true;
  }

  // Elementwise ops and casts: one element when every operand is uniform, else each.
  OutputSpace space;
  if (!all_full) {
    space.dims = type.shape.dims();
    space.numel = type.shape.numel();
  }
  for (Operand& op : ops)
    op.stride = all_full ? std::vector<std::int64_t>{} : broadcast_strides(op.storage.shape(), space.dims.size());
  Tensor value = Tensor::empty(all_full ? Shape{} : type.shape, type.dtype);
  if (n.kind == OpKind::Cast) {
    for_each_element(space, ops, [&](std::int64_t j, const std::int64_t* off) {
      cast_element(ops[0].data, ops[0].dtype, off[0], value.raw_data(), type.dtype, j);
    });
  } else {
    const DType operand_dtype = ops[n.kind == OpKind::Where ? 1 : 0].dtype;
    if (!eval_elementwise(n, operand_dtype, space, ops, value.raw_data())) return false;
  }
  const Value r = emit(rw, type, value, max_bytes);
  if (!r.valid()) return false;
  rw.map_output(i, 0, r);
  return true;
}

}  // namespace

bool fold_constants(std::shared_ptr<GraphImpl>& graph, ValueMap& map, std::size_t max_bytes) {
  bool changed = false;
  std::shared_ptr<GraphImpl> out = rewrite_graph(
      *graph,
      [&](std::int32_t i, Rewriter& rw) {
        const bool folded = fold_node(i, rw, max_bytes);
        changed = changed || folded;
        return folded;
      },
      map);
  graph = std::move(out);
  return changed;
}

}  // namespace trainrt::detail
