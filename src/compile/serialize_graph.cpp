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
#include <variant>

#include "core/error.h"
#include "ir/fused.h"
#include "ir/verifier.h"

namespace trainrt::detail {

namespace {

constexpr std::string_view kGraphMagic = "TRTGRAPH";
constexpr std::string_view kScheduledMagic = "TRTSCHED";
constexpr std::uint32_t kGraphFormatVersion = 1;
constexpr std::uint32_t kOpCount = 0
#define TRAINRT_OP_COUNT(name, str, family) +1
    TRAINRT_OP_LIST(TRAINRT_OP_COUNT);
#undef TRAINRT_OP_COUNT
// Largest element count a shape may claim: far above any real tensor, low enough that
// byte sizes computed from it cannot overflow.
constexpr std::int64_t kMaxNumel = std::int64_t{1} << 48;

// ---- Writer / Reader ----------------------------------------------------------------------

class Writer {
 public:
  void uint(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void u8(std::uint64_t v) { uint(v, 1); }
  void u16(std::uint64_t v) { uint(v, 2); }
  void u32(std::uint64_t v) { uint(v, 4); }
  void u64(std::uint64_t v) { uint(v, 8); }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void count(std::size_t n) {
    check_internal(n <= 0xffffffffu, "serialize_graph: a list longer than 2^32 entries");
    u32(n);
  }
  void raw(std::string_view s) { out_.append(s); }
  void str(std::string_view s) {
    count(s.size());
    raw(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(std::string_view bytes, const char* what) : bytes_(bytes), what_(what) {}
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

  /// Throws Io naming the reader, the problem and the byte offset `at`.
  [[noreturn]] void fail_at(std::size_t at, const std::string& message) const {
    fail(ErrorKind::Io, cat(what_, ": ", message, " at byte ", at, " of ", bytes_.size()));
  }
  std::string_view raw(std::size_t n) {
    if (remaining() < n) fail_at(pos_, cat("truncated input: ", n, " bytes needed, ", remaining(), " left"));
    const std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint64_t uint(int bytes) {
    const std::string_view s = raw(static_cast<std::size_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= std::uint64_t{static_cast<unsigned char>(s[static_cast<std::size_t>(i)])} << (8 * i);
    return v;
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
  std::uint64_t u64() { return uint(8); }
  std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  double f64() { return std::bit_cast<double>(u64()); }
  /// An enum stored in `bytes` bytes whose values are 0..count-1.
  std::uint64_t enumerator(int bytes, std::uint64_t count, const char* what) {
    const std::size_t at = pos_;
    const std::uint64_t v = uint(bytes);
    if (v >= count) fail_at(at, cat("invalid ", what, " ", v));
    return v;
  }
  bool flag(const char* what) { return enumerator(1, 2, what) != 0; }
  /// A list length whose entries take at least `min_bytes` each: checked against the bytes
  /// left, so a damaged length fails here instead of allocating.
  std::size_t count(std::size_t min_bytes, const char* what) {
    const std::size_t at = pos_;
    const std::size_t n = u32();
    if (n * min_bytes > remaining()) fail_at(at, cat("damaged length: ", n, " ", what, " cannot fit in ", remaining(), " bytes"));
    return n;
  }
  std::string_view str(const char* what) { return raw(count(1, what)); }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
  const char* what_;
};

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

// ---- encoding -------------------------------------------------------------------------------

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
void put_pair(Writer& w, const Pair2& p) {
  w.i64(p[0]);
  w.i64(p[1]);
}

void put_tensor(Writer& w, const Tensor& t) {
  check_internal(t.defined(), "serialize_graph: a constant without data");
  put_type(w, {t.dtype(), t.shape()});
  w.u64(t.nbytes());
  const auto* p = static_cast<const char*>(t.raw_data());
  if constexpr (std::endian::native == std::endian::little) {
    w.raw(std::string_view(p, t.nbytes()));
  } else {  // elements little-endian, whatever the host
    const std::size_t size = size_of(t.dtype());
    for (std::size_t e = 0; e < t.nbytes(); e += size)
      for (std::size_t b = size; b-- > 0;) w.raw(std::string_view(p + e + b, 1));
  }
}

void put_attrs(Writer& w, const Attrs& attrs);

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

struct AttrWriter {
  Writer& w;
  void operator()(const NoAttrs&) const {}
  void operator()(const VariableAttrs& a) const {
    w.u8(static_cast<std::uint8_t>(a.init.kind));
    w.f64(a.init.a);
    w.f64(a.init.b);
    w.u8(static_cast<std::uint8_t>(a.init.mode));
    w.u8(static_cast<std::uint8_t>(a.init.nonlinearity));
    w.u8(static_cast<std::uint8_t>(a.kind));
  }
  void operator()(const ConstantAttrs& a) const {
    w.u8(a.value ? 1 : 0);
    if (a.value) put_tensor(w, *a.value);
  }
  void operator()(const ScalarAttrs& a) const { w.f64(a.value); }
  void operator()(const GeluAttrs& a) const { w.u8(a.tanh_approximation); }
  void operator()(const PermAttrs& a) const { put_ints(w, a.perm); }
  void operator()(const SliceAttrs& a) const {
    w.i64(a.axis);
    w.i64(a.start);
    w.i64(a.step);
  }
  void operator()(const AxisAttrs& a) const { w.i64(a.axis); }
  void operator()(const ReduceAttrs& a) const {
    put_ints(w, a.axes);
    w.u8(a.keepdims);
  }
  void operator()(const MatmulAttrs& a) const {
    w.u8(a.transpose_a);
    w.u8(a.transpose_b);
  }
  void operator()(const Conv2dAttrs& a) const {
    put_pair(w, a.stride);
    put_pair(w, a.padding);
    put_pair(w, a.dilation);
    w.i64(a.groups);
  }
  void operator()(const Pool2dAttrs& a) const {
    put_pair(w, a.kernel);
    put_pair(w, a.stride);
    put_pair(w, a.padding);
    w.u8(a.ceil_mode);
    w.u8(a.count_include_pad);
  }
  void operator()(const CrossEntropyAttrs& a) const {
    w.i64(a.ignore_index);
    w.f64(a.label_smoothing);
  }
  void operator()(const NormAttrs& a) const {
    w.f64(a.momentum);
    w.f64(a.eps);
    w.i64(a.normalized_axes);
  }
  void operator()(const DropoutAttrs& a) const {
    w.f64(a.p);
    w.u64(a.key);
  }
  void operator()(const AttentionAttrs& a) const {
    w.u8(a.causal);
    w.f64(a.scale);
  }
  void operator()(const FusedAttrs& a) const {
    check_internal(a.body != nullptr, "serialize_graph: a fused node without a body");
    put_body(w, *a.body);
  }
};

void put_attrs(Writer& w, const Attrs& attrs) {
  w.u8(attrs.index());
  std::visit(AttrWriter{w}, attrs);
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
  const std::size_t size = size_of(type.dtype);
  if (nbytes != static_cast<std::uint64_t>(type.shape.numel()) * size)
    r.fail_at(at, cat("constant data of ", nbytes, " bytes for ", type.to_string()));
  const std::string_view data = r.raw(static_cast<std::size_t>(nbytes));  // checked before allocating
  Tensor t = Tensor::empty(type.shape, type.dtype);
  auto* p = static_cast<char*>(t.raw_data());
  if constexpr (std::endian::native == std::endian::little) {
    if (!data.empty()) std::memcpy(p, data.data(), data.size());
  } else {
    for (std::size_t e = 0; e < data.size(); e += size)
      for (std::size_t b = 0; b < size; ++b) p[e + b] = data[e + size - 1 - b];
  }
  return std::make_shared<const Tensor>(std::move(t));
}

Attrs get_attrs(Reader& r, bool allow_fused);

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

Attrs get_attrs(Reader& r, bool allow_fused) {
  const std::size_t at = r.pos();
  switch (r.enumerator(1, std::variant_size_v<Attrs>, "attribute kind")) {
    case 0: return NoAttrs{};
    case 1: {
      VariableAttrs a;
      a.init.kind = static_cast<Init::Kind>(r.enumerator(1, 8, "init kind"));
      a.init.a = r.f64();
      a.init.b = r.f64();
      a.init.mode = static_cast<Init::FanMode>(r.enumerator(1, 2, "fan mode"));
      a.init.nonlinearity = static_cast<Init::Nonlinearity>(r.enumerator(1, 5, "nonlinearity"));
      a.kind = static_cast<VariableKind>(r.enumerator(1, 3, "variable kind"));
      return a;
    }
    case 2: return ConstantAttrs{r.flag("constant flag") ? get_tensor(r) : nullptr};
    case 3: return ScalarAttrs{r.f64()};
    case 4: return GeluAttrs{r.flag("gelu flag")};
    case 5: return PermAttrs{get_ints(r, "permutation entries")};
    case 6: {
      SliceAttrs a;
      a.axis = r.i64();
      a.start = r.i64();
      a.step = r.i64();
      return a;
    }
    case 7: return AxisAttrs{r.i64()};
    case 8: {
      ReduceAttrs a;
      a.axes = get_ints(r, "reduce axes");
      a.keepdims = r.flag("keepdims flag");
      return a;
    }
    case 9: {
      MatmulAttrs a;
      a.transpose_a = r.flag("transpose flag");
      a.transpose_b = r.flag("transpose flag");
      return a;
    }
    case 10: {
      Conv2dAttrs a;
      a.stride = get_pair(r);
      a.padding = get_pair(r);
      a.dilation = get_pair(r);
      a.groups = r.i64();
      return a;
    }
    case 11: {
      Pool2dAttrs a;
      a.kernel = get_pair(r);
      a.stride = get_pair(r);
      a.padding = get_pair(r);
      a.ceil_mode = r.flag("ceil_mode flag");
      a.count_include_pad = r.flag("count_include_pad flag");
      return a;
    }
    case 12: {
      CrossEntropyAttrs a;
      a.ignore_index = r.i64();
      a.label_smoothing = r.f64();
      return a;
    }
    case 13: {
      NormAttrs a;
      a.momentum = r.f64();
      a.eps = r.f64();
      a.normalized_axes = r.i64();
      return a;
    }
    case 14: {
      DropoutAttrs a;
      a.p = r.f64();
      a.key = r.u64();
      return a;
    }
    case 15: {
      AttentionAttrs a;
      a.causal = r.flag("causal flag");
      a.scale = r.f64();
      return a;
    }
    default:
      static_assert(std::variant_size_v<Attrs> == 17, "a new Attrs alternative needs its encoding here");
      if (!allow_fused) r.fail_at(at, "a fused body inside a fused body");
      return FusedAttrs{get_body(r)};
  }
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
  if (r.flag("source file flag")) n.loc.file = intern_file(r.str("file name bytes"));
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
