// compile/serialize_graph.cpp — the byte format of compiled graphs (see the header).
//
// Layout (every integer little-endian, doubles as their IEEE-754 bits, counts u32):
//   graph:     "TRTGRAPH" u32 version, u8 phase, count, nodes
//   node:      u16 kind, count x (i32 node, i32 output), count x type, attrs, str name,
//              u8 has_file [str file], u32 line, u8 phase, u8 dead
//   type:      u8 dtype, shape          shape: count x i64
//   attrs:     u8 variant index, then the alternative's fields in declaration order
//   scheduled: "TRTSCHED" u32 version, graph, count x (value, value), count x i32, u64, u64
// Reading checks every enum, count, reference and length; the result must then pass the
// IR verifier, so a graph that reads back is one the backends can run.
#include "compile/serialize_graph.h"

#include <bit>
#include <cstring>
#include <mutex>
#include <set>
#include <type_traits>
#include <variant>

#include "compile/byte_io.h"
#include "core/error.h"
#include "ir/fused.h"
#include "ir/verifier.h"

namespace trainrt::detail {

namespace {

using Writer = ByteWriter;
using Reader = ByteReader;

constexpr std::string_view kGraphMagic = "TRTGRAPH";
constexpr std::string_view kScheduledMagic = "TRTSCHED";
constexpr std::uint32_t kGraphFormatVersion = 2;  // 2: collective ops
constexpr std::uint32_t kOpCount = 0
#define TRAINRT_OP_COUNT(name, str, family) +1  // NOLINT(bugprone-macro-parentheses): one term of a sum
    TRAINRT_OP_LIST(TRAINRT_OP_COUNT);
#undef TRAINRT_OP_COUNT
// Largest element count a shape may claim: far above any real tensor, low enough that
// byte sizes computed from it cannot overflow.
constexpr std::int64_t kMaxNumel = std::int64_t{1} << 48;
// Constant tensors are stored as their bytes lie in memory; the library assumes a
// little-endian host throughout, and this makes the assumption loud.
static_assert(std::endian::native == std::endian::little, "the graph format stores little-endian tensor bytes");

/// A process-wide copy of `file` that lives as long as the process (SourceLoc::file needs a
/// stable C string). A node-based set keeps c_str() valid as the set grows.
const char* intern_file(std::string_view file) {
  static std::mutex mutex;
  static std::set<std::string, std::less<>> files;
  const std::lock_guard lock(mutex);
  auto it = files.find(file);
  if (it == files.end()) it = files.emplace(file).first;
  return it->c_str();
}

// ---- shapes, types, lists, tensors ------------------------------------------------------

void put_shape(Writer& w, const Shape& s) {
  w.count(static_cast<std::size_t>(s.rank()));
  for (std::int64_t d : s) w.i64(d);
}
void put_type(Writer& w, const TensorType& t) {
  w.u8(static_cast<std::uint8_t>(t.dtype));
  put_shape(w, t.shape);
}
void put_ints(Writer& w, const std::vector<std::int64_t>& v) {
  w.count(v.size());
  for (std::int64_t x : v) w.i64(x);
}
void put_tensor(Writer& w, const Tensor& t) {
  check_internal(t.defined(), "serialize_graph: a constant without data");
  put_type(w, {t.dtype(), t.shape()});
  w.u64(t.nbytes());
  w.raw(std::string_view(static_cast<const char*>(t.raw_data()), t.nbytes()));
}

Shape get_shape(Reader& r) {
  const std::size_t at = r.pos();
  std::vector<std::int64_t> dims(r.count(8, "dimensions"));
  std::int64_t numel = 1;
  for (std::int64_t& d : dims) {
    d = r.i64();
    if (d < 0 || (d > 0 && numel > kMaxNumel / d)) r.fail_at(at, cat("invalid shape (dimension ", d, ")"));
    numel *= d;
  }
  return Shape(std::move(dims));
}
TensorType get_type(Reader& r) {
  TensorType t;
  t.dtype = static_cast<DType>(r.enumerator(1, static_cast<std::uint64_t>(DType::boolean) + 1, "dtype"));
  t.shape = get_shape(r);
  return t;
}
std::vector<std::int64_t> get_ints(Reader& r, const char* what) {
  std::vector<std::int64_t> v(r.count(8, what));
  for (std::int64_t& x : v) x = r.i64();
  return v;
}
Pair2 get_pair(Reader& r) {
  const std::int64_t a = r.i64();
  return {a, r.i64()};
}

std::shared_ptr<const Tensor> get_tensor(Reader& r) {
  const TensorType type = get_type(r);
  const std::size_t at = r.pos();
  const std::uint64_t nbytes = r.u64();
  if (nbytes != static_cast<std::uint64_t>(type.shape.numel()) * size_of(type.dtype))
    r.fail_at(at, cat("constant data of ", nbytes, " bytes for ", type.to_string()));
  const std::string_view data = r.raw(static_cast<std::size_t>(nbytes));  // checked before allocating
  Tensor t = Tensor::empty(type.shape, type.dtype);
  if (!data.empty()) std::memcpy(t.raw_data(), data.data(), data.size());
  return std::make_shared<const Tensor>(std::move(t));
}

// ---- attributes: one field list per struct, shared by writing and reading ----------------

constexpr std::uint64_t enum_count(Init::Kind) { return 8; }
constexpr std::uint64_t enum_count(Init::FanMode) { return 2; }
constexpr std::uint64_t enum_count(Init::Nonlinearity) { return 5; }
constexpr std::uint64_t enum_count(VariableKind) { return 3; }

void put_body(Writer& w, const FusedBody& body);
std::shared_ptr<const FusedBody> get_body(Reader& r);

/// Writes the fields it is given, in order.
struct FieldWriter {
  Writer& w;
  void put(bool v) { w.u8(v); }
  void put(std::int64_t v) { w.i64(v); }
  void put(std::uint64_t v) { w.u64(v); }
  void put(double v) { w.f64(v); }
  void put(const Pair2& p) {
    w.i64(p[0]);
    w.i64(p[1]);
  }
  void put(const std::vector<std::int64_t>& v) { put_ints(w, v); }
  template <class E>
    requires std::is_enum_v<E>
  void put(E e) { w.u8(static_cast<std::uint8_t>(e)); }
  void put(const std::shared_ptr<const Tensor>& t) {
    w.u8(t != nullptr);
    if (t) put_tensor(w, *t);
  }
  void put(const std::shared_ptr<const FusedBody>& body) {
    check_internal(body != nullptr, "serialize_graph: a fused node without a body");
    put_body(w, *body);
  }
  template <class... F>
  void operator()(const F&... f) {
    (put(f), ...);
  }
};

/// Reads the fields it is given, in order, checking enums and flags.
struct FieldReader {
  Reader& r;
  bool allow_fused;  // false inside a fused body: bodies do not nest
  void get(bool& v) { v = r.flag("flag"); }
  void get(std::int64_t& v) { v = r.i64(); }
  void get(std::uint64_t& v) { v = r.u64(); }
  void get(double& v) { v = r.f64(); }
  void get(Pair2& p) { p = get_pair(r); }
  void get(std::vector<std::int64_t>& v) { v = get_ints(r, "attribute entries"); }
  template <class E>
    requires std::is_enum_v<E>
  void get(E& e) { e = static_cast<E>(r.enumerator(1, enum_count(e), "enumerator")); }
  void get(std::shared_ptr<const Tensor>& t) { t = r.flag("constant flag") ? get_tensor(r) : nullptr; }
  void get(std::shared_ptr<const FusedBody>& body) {
    if (!allow_fused) r.fail_at(r.pos(), "a fused body inside a fused body");
    body = get_body(r);
  }
  template <class... F>
  void operator()(F&... f) {
    (get(f), ...);
  }
};

/// The fields of each Attrs alternative, in declaration order; `a` is const when writing.
template <class F, class A>
void fields(F& f, A& a) {
  using T = std::remove_const_t<A>;
  if constexpr (std::is_same_v<T, VariableAttrs>)
    f(a.init.kind, a.init.a, a.init.b, a.init.mode, a.init.nonlinearity, a.kind);
  else if constexpr (std::is_same_v<T, ConstantAttrs> || std::is_same_v<T, ScalarAttrs>) f(a.value);
  else if constexpr (std::is_same_v<T, GeluAttrs>) f(a.tanh_approximation);
  else if constexpr (std::is_same_v<T, PermAttrs>) f(a.perm);
  else if constexpr (std::is_same_v<T, SliceAttrs>) f(a.axis, a.start, a.step);
  else if constexpr (std::is_same_v<T, AxisAttrs>) f(a.axis);
  else if constexpr (std::is_same_v<T, ReduceAttrs>) f(a.axes, a.keepdims);
  else if constexpr (std::is_same_v<T, MatmulAttrs>) f(a.transpose_a, a.transpose_b);
  else if constexpr (std::is_same_v<T, Conv2dAttrs>) f(a.stride, a.padding, a.dilation, a.groups);
  else if constexpr (std::is_same_v<T, Pool2dAttrs>) f(a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
  else if constexpr (std::is_same_v<T, CrossEntropyAttrs>) f(a.ignore_index, a.label_smoothing);
  else if constexpr (std::is_same_v<T, NormAttrs>) f(a.momentum, a.eps, a.normalized_axes);
  else if constexpr (std::is_same_v<T, DropoutAttrs>) f(a.p, a.key);
  else if constexpr (std::is_same_v<T, AttentionAttrs>) f(a.causal, a.scale);
  else if constexpr (std::is_same_v<T, CollectiveAttrs>) f(a.bucket, a.world, a.scale);
  else if constexpr (std::is_same_v<T, FusedAttrs>) f(a.body);
  else static_assert(std::is_same_v<T, NoAttrs>, "a new Attrs alternative needs its field list here");
}

// ---- encoding -------------------------------------------------------------------------------

void put_attrs(Writer& w, const Attrs& attrs) {
  w.u8(attrs.index());
  std::visit(
      [&](const auto& a) {
        FieldWriter f{w};
        fields(f, a);
      },
      attrs);
}

void put_body(Writer& w, const FusedBody& body) {
  w.count(body.groups.size());
  for (const FusedGroup& g : body.groups) {
    put_shape(w, g.loop);
    w.count(g.ops.size());
    for (const FusedOp& op : g.ops) {
      w.u16(static_cast<std::uint16_t>(op.kind));
      w.count(op.args.size());
      for (std::int32_t a : op.args) w.i32(a);
      put_type(w, op.type);
      put_attrs(w, op.attrs);
    }
    put_ints(w, g.reduce_axes);
  }
  w.count(body.outputs.size());
  for (const FusedOutput& o : body.outputs) {
    w.i32(o.group);
    w.i32(o.op);
  }
}

void put_graph(Writer& w, const GraphImpl& graph) {
  w.raw(kGraphMagic);
  w.u32(kGraphFormatVersion);
  w.u8(static_cast<std::uint8_t>(graph.phase()));
  w.count(static_cast<std::size_t>(graph.size()));
  for (const Node& n : graph.nodes()) {
    w.u16(static_cast<std::uint16_t>(n.kind));
    w.count(n.inputs.size());
    for (const ValueId& v : n.inputs) {
      w.i32(v.node);
      w.i32(v.output);
    }
    w.count(n.outputs.size());
    for (const TensorType& t : n.outputs) put_type(w, t);
    put_attrs(w, n.attrs);
    w.str(n.name);
    w.u8(n.loc.file != nullptr);
    if (n.loc.file != nullptr) w.str(n.loc.file);
    w.u32(n.loc.line);
    w.u8(static_cast<std::uint8_t>(n.phase));
    w.u8(n.dead);
  }
}

// ---- decoding -------------------------------------------------------------------------------

template <std::size_t I = 0>
Attrs get_alternative(FieldReader& f, std::uint64_t index) {
  if constexpr (I < std::variant_size_v<Attrs>) {
    if (index != I) return get_alternative<I + 1>(f, index);
    std::variant_alternative_t<I, Attrs> a;
    fields(f, a);
    return a;
  } else {
    return NoAttrs{};  // not reached: the index was checked
  }
}

Attrs get_attrs(Reader& r, bool allow_fused) {
  FieldReader f{r, allow_fused};
  return get_alternative(f, r.enumerator(1, std::variant_size_v<Attrs>, "attribute kind"));
}

std::shared_ptr<const FusedBody> get_body(Reader& r) {
  auto body = std::make_shared<FusedBody>();
  body->groups.resize(r.count(12, "fused groups"));
  for (FusedGroup& g : body->groups) {
    g.loop = get_shape(r);
    g.ops.resize(r.count(8, "fused ops"));
    for (FusedOp& op : g.ops) {
      op.kind = static_cast<OpKind>(r.enumerator(2, kOpCount, "op kind"));
      op.args.resize(r.count(4, "fused op arguments"));
      for (std::int32_t& a : op.args) a = r.i32();
      op.type = get_type(r);
      op.attrs = get_attrs(r, /*allow_fused=*/false);
    }
    g.reduce_axes = get_ints(r, "reduce axes");
  }
  body->outputs.resize(r.count(8, "fused outputs"));
  for (FusedOutput& o : body->outputs) {
    o.group = r.i32();
    o.op = r.i32();
  }
  return body;
}

/// How many arguments a fused op takes (the code generator reads exactly these); -1 for an
/// op that cannot be part of a fused body.
std::int64_t fused_arity(OpKind kind) {
  if (kind == OpKind::Full) return 0;
  if (kind == OpKind::ReduceSum || kind == OpKind::ReduceMean || kind == OpKind::ReduceMax) return 1;
  switch (op_family(kind)) {
    case OpFamily::Unary: return 1;
    case OpFamily::Binary: return 2;
    case OpFamily::Ternary: return 3;
    default: return -1;
  }
}

/// The checks the verifier leaves to the fusion pass: every argument and output of a fused
/// body refers to something that exists, and the outputs have the node's types.
void check_body(const Reader& r, std::size_t at, const Node& n, const FusedBody& body) {
  const auto operands = static_cast<std::int64_t>(n.inputs.size());
  for (const FusedGroup& g : body.groups) {
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
      const FusedOp& op = g.ops[i];
      if (static_cast<std::int64_t>(op.args.size()) != fused_arity(op.kind))
        r.fail_at(at, cat("fused op ", i, " (", op_name(op.kind), ") with ", op.args.size(), " arguments"));
      if ((op.kind == OpKind::Full && !std::holds_alternative<ScalarAttrs>(op.attrs)) ||
          (op.kind == OpKind::Gelu && !std::holds_alternative<GeluAttrs>(op.attrs)))
        r.fail_at(at, cat("fused op ", i, " (", op_name(op.kind), ") without its attributes"));
      for (std::int32_t a : op.args)
        if (a >= static_cast<std::int64_t>(i) || a < -operands)
          r.fail_at(at, cat("fused op ", i, " reads ", a, ", which is neither an earlier op nor an operand"));
    }
    for (std::int64_t axis : g.reduce_axes)
      if (axis < 0 || axis >= g.loop.rank()) r.fail_at(at, cat("fused reduce axis ", axis, " out of range"));
  }
  if (body.outputs.size() != n.outputs.size()) r.fail_at(at, "fused outputs do not match the node's outputs");
  for (std::size_t k = 0; k < body.outputs.size(); ++k) {
    const FusedOutput& o = body.outputs[k];
    if (o.group < 0 || static_cast<std::size_t>(o.group) >= body.groups.size() || o.op < 0 ||
        static_cast<std::size_t>(o.op) >= body.groups[static_cast<std::size_t>(o.group)].ops.size() ||
        !(body.groups[static_cast<std::size_t>(o.group)].ops[static_cast<std::size_t>(o.op)].type == n.outputs[k]))
      r.fail_at(at, cat("fused output ", k, " does not name an op of the node's output type"));
  }
}

Node get_node(Reader& r, const GraphImpl& g) {
  Node n;
  n.kind = static_cast<OpKind>(r.enumerator(2, kOpCount, "op kind"));
  n.inputs.resize(r.count(8, "operands"));
  for (ValueId& v : n.inputs) {
    const std::size_t at = r.pos();
    v.node = r.i32();
    v.output = r.i32();
    const bool absent = v.node == -1 && v.output == 0;
    if (!absent && (v.node < 0 || v.node >= g.size() || v.output < 0 ||
                    static_cast<std::size_t>(v.output) >= g.node(v.node).outputs.size()))
      r.fail_at(at, cat("operand %", v.node, ".", v.output, " of node ", g.size(), " is not an earlier value"));
  }
  n.outputs.resize(r.count(5, "outputs"));
  for (TensorType& t : n.outputs) t = get_type(r);
  const std::size_t attrs_at = r.pos();
  n.attrs = get_attrs(r, /*allow_fused=*/true);
  const auto* fused = std::get_if<FusedAttrs>(&n.attrs);
  if ((n.kind == OpKind::Fused) != (fused != nullptr))
    r.fail_at(attrs_at, cat(op_name(n.kind), " node with ", fused ? "" : "no ", "fused body"));
  if (fused) check_body(r, attrs_at, n, *fused->body);
  const auto* constant = std::get_if<ConstantAttrs>(&n.attrs);
  if (n.kind == OpKind::Constant && (constant == nullptr || constant->value == nullptr))
    r.fail_at(attrs_at, "constant node without data");
  const std::size_t name_at = r.pos();
  n.name = std::string(r.str("name bytes"));
  if (!n.name.empty() && g.find(n.name) >= 0) r.fail_at(name_at, cat("the name '", n.name, "' is used twice"));
  if (r.flag("source file flag")) {
    const std::size_t file_at = r.pos();
    const std::string_view file = r.str("file name bytes");
    // SourceLoc::file is a C string: a NUL inside would cut the name short.
    if (file.find('\0') != std::string_view::npos) r.fail_at(file_at, "a source file name with a NUL byte");
    n.loc.file = intern_file(file);
  }
  n.loc.line = r.u32();
  n.phase = static_cast<Phase>(r.enumerator(1, 3, "phase"));
  n.dead = r.flag("dead flag");
  return n;
}

void get_magic(Reader& r, std::string_view magic) {
  if (r.raw(std::min(magic.size(), r.remaining())) != magic)
    r.fail_at(0, cat("not a serialized ", magic == kGraphMagic ? "graph" : "scheduled graph", " (wrong magic)"));
  const std::size_t at = r.pos();
  const std::uint32_t version = r.u32();
  if (version != kGraphFormatVersion)
    r.fail_at(at, cat("format version ", version, ", but this build reads version ", kGraphFormatVersion));
}

std::shared_ptr<GraphImpl> get_graph(Reader& r) {
  get_magic(r, kGraphMagic);
  const auto graph_phase = static_cast<Phase>(r.enumerator(1, 3, "phase"));
  auto g = std::make_shared<GraphImpl>();
  const std::size_t nodes_at = r.pos();
  const std::size_t count = r.count(22, "nodes");
  for (std::size_t i = 0; i < count; ++i) {
    Node n = get_node(r, *g);
    const bool dead = n.dead;
    g->set_phase(n.phase);  // append() stamps the graph's phase on the node
    const std::int32_t index = g->append(std::move(n));
    g->node(index).dead = dead;
  }
  g->set_phase(graph_phase);
  // Types, attributes and operand kinds must agree as inference demands; a mismatch in
  // bytes that decoded cleanly means damage (or a foreign build), not a bug of ours.
  try {
    verify(*g, "deserialize_graph");
  } catch (const Error& e) {
    r.fail_at(nodes_at, cat("the nodes do not form a valid graph: ", e.what()));
  } catch (const std::bad_variant_access&) {
    r.fail_at(nodes_at, "the nodes do not form a valid graph: an op has attributes of another op");
  }
  return g;
}

void expect_end(const Reader& r) {
  if (r.remaining() != 0) r.fail_at(r.pos(), cat(r.remaining(), " bytes after the end of the data"));
}

}  // namespace

std::string serialize_graph(const GraphImpl& graph) {
  Writer w;
  put_graph(w, graph);
  return w.take();
}

std::shared_ptr<GraphImpl> deserialize_graph(std::string_view bytes) {
  Reader r(bytes, "deserialize_graph");
  auto g = get_graph(r);
  expect_end(r);
  return g;
}

std::string serialize_scheduled_graph(const ScheduledGraph& s) {
  check_internal(s.graph != nullptr, "serialize_scheduled_graph: no graph");
  Writer w;
  w.raw(kScheduledMagic);
  w.u32(kGraphFormatVersion);
  put_graph(w, *s.graph);
  w.count(s.from_source.entries().size());
  for (const auto& [from, to] : s.from_source.entries()) {
    w.i32(from.node);
    w.i32(from.output);
    w.i32(to.node);
    w.i32(to.output);
  }
  w.count(s.schedule.size());
  for (std::int32_t n : s.schedule) w.i32(n);
  w.u64(s.recomputed);
  w.u64(s.fused);
  return w.take();
}

ScheduledGraph deserialize_scheduled_graph(std::string_view bytes) {
  Reader r(bytes, "deserialize_scheduled_graph");
  get_magic(r, kScheduledMagic);
  ScheduledGraph s;
  s.graph = get_graph(r);
  const GraphImpl& g = *s.graph;
  auto live = [&](std::int32_t n) { return n >= 0 && n < g.size() && !g.node(n).dead; };
  const std::size_t entries = r.count(16, "value map entries");
  ValueId previous;
  for (std::size_t i = 0; i < entries; ++i) {
    const std::size_t at = r.pos();
    ValueId from, to;
    from.node = r.i32();
    from.output = r.i32();
    to.node = r.i32();
    to.output = r.i32();
    if (from.node < 0 || from.output < 0 || (i > 0 && !(previous < from)))
      r.fail_at(at, cat("damaged value map entry for %", from.node, ".", from.output));
    if (!live(to.node) || to.output < 0 || static_cast<std::size_t>(to.output) >= g.node(to.node).outputs.size())
      r.fail_at(at, cat("value map entry names %", to.node, ".", to.output, ", not a live value"));
    s.from_source.set(from, to);
    previous = from;
  }
  std::vector<bool> scheduled(static_cast<std::size_t>(g.size()), false);
  s.schedule.resize(r.count(4, "schedule entries"));
  for (std::int32_t& n : s.schedule) {
    const std::size_t at = r.pos();
    n = r.i32();
    if (!live(n) || scheduled[static_cast<std::size_t>(n)])
      r.fail_at(at, cat("schedule entry %", n, " is not a live node scheduled once"));
    scheduled[static_cast<std::size_t>(n)] = true;
  }
  s.recomputed = static_cast<std::size_t>(r.u64());
  s.fused = static_cast<std::size_t>(r.u64());
  expect_end(r);
  return s;
}

Digest fingerprint_graph(const GraphImpl& graph) { return sha256(serialize_graph(graph)); }

}  // namespace trainrt::detail
