#include "codegen/emit_kernel.h"

#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "ir/graph_impl.h"

namespace trainrt::detail {

namespace {

// ---- types and values -----------------------------------------------------------------------

/// The C type a value of `dtype` is computed in (16-bit floats compute in f32).
const char* compute_type(DType d) {
  switch (d) {
    case DType::f32:
    case DType::f16:
    case DType::bf16: return "float";
    case DType::f64: return "double";
    case DType::i32: return "trk_i32";
    case DType::i64: return "trk_i64";
    case DType::boolean: return "trk_u8";
  }
  return "?";
}

/// The C type a buffer of `dtype` holds.
const char* storage_type(DType d) {
  switch (d) {
    case DType::f16: return "trk_f16";
    case DType::bf16: return "trk_bf16";
    default: return compute_type(d);
  }
}

std::string load(DType d, std::size_t buffer, const std::string& index) {
  std::string p = cat("((const ", storage_type(d), "*)b[", buffer, "])[", index, "]");
  if (d == DType::f16) return cat("trk_f16_to_f32(", p, ")");
  if (d == DType::bf16) return cat("trk_bf16_to_f32(", p, ")");
  return p;
}

std::string store(DType d, std::size_t buffer, const std::string& value) {
  const std::string p = cat("((", storage_type(d), "*)b[", buffer, "])[o]");
  if (d == DType::f16) return cat(p, " = trk_f32_to_f16(", value, ");");
  if (d == DType::bf16) return cat(p, " = trk_f32_to_bf16(", value, ");");
  return cat(p, " = ", value, ";");
}

bool is_float(DType d) { return d == DType::f32 || d == DType::f64 || d == DType::f16 || d == DType::bf16; }

/// An exact literal of `v` in the compute type of `d`.
std::string literal(double v, DType d) {
  if (is_float(d)) {
    char buf[64];
    if (v != v) return cat("(", compute_type(d), ")(0.0/0.0)");
    if (v == 1.0 / 0.0) return cat("(", compute_type(d), ")(1.0/0.0)");
    if (v == -1.0 / 0.0) return cat("(", compute_type(d), ")(-1.0/0.0)");
    std::snprintf(buf, sizeof buf, "%a", v);
    return cat("(", compute_type(d), ")(", buf, ")");
  }
  if (d == DType::boolean) return v != 0 ? "(trk_u8)1" : "(trk_u8)0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%" PRId64 "LL", static_cast<std::int64_t>(v));
  return cat("(", compute_type(d), ")(", buf, ")");
}

/// A math function by name for the compute type (expf for float, exp for double).
std::string fn(const char* name, DType d, const std::string& x) {
  return cat(name, compute_type(d) == std::string("float") ? "f" : "", "(", x, ")");
}

// ---- op expressions ---------------------------------------------------------------------------

std::string cast_expr(DType from, DType to, const std::string& x) {
  const std::string t = compute_type(to);
  if (to == DType::boolean) return cat("(trk_u8)((", x, ") != 0)");
  if (to == DType::i32 && from == DType::i64) return cat("(trk_i32)(", x, ")");
  if ((to == DType::i64 || to == DType::i32) && !is_float(from)) return cat("(", t, ")(", x, ")");
  if (to == DType::i32) return cat("trk_to_i32((double)(", x, "))");
  if (to == DType::i64) return cat("trk_to_i64((double)(", x, "))");
  return cat("(", t, ")(double)(", x, ")");
}

std::string op_expr(const FusedOp& op, const std::vector<std::string>& a, const std::vector<DType>& at) {
  const DType d = op.type.dtype;
  const std::string T = compute_type(d);
  auto c = [&](double v) { return literal(v, d); };
  switch (op.kind) {
    case OpKind::Full: return literal(std::get<ScalarAttrs>(op.attrs).value, d);
    case OpKind::Neg: return cat("-", a[0]);
    case OpKind::Abs: return cat("(", a[0], " < ", c(0), " ? -", a[0], " : ", a[0], ")");
    case OpKind::Sign: return cat("(", T, ")((", a[0], " > ", c(0), ") - (", a[0], " < ", c(0), "))");
    case OpKind::Relu: return cat("(", a[0], " > ", c(0), " ? ", a[0], " : ", c(0), ")");
    case OpKind::Exp: return fn("exp", d, a[0]);
    case OpKind::Log: return fn("log", d, a[0]);
    case OpKind::Sqrt: return fn("sqrt", d, a[0]);
    case OpKind::Rsqrt: return cat(c(1), " / ", fn("sqrt", d, a[0]));
    case OpKind::Sin: return fn("sin", d, a[0]);
    case OpKind::Cos: return fn("cos", d, a[0]);
    case OpKind::Floor: return fn("floor", d, a[0]);
    case OpKind::Tanh: return fn("tanh", d, a[0]);
    case OpKind::Sigmoid: return cat(c(1), " / (", c(1), " + ", fn("exp", d, cat("-", a[0])), ")");
    case OpKind::Gelu:
      if (std::get<GeluAttrs>(op.attrs).tanh_approximation)
        return cat(c(0.5), " * ", a[0], " * (", c(1), " + ",
                   fn("tanh", d,
                      cat(c(0.7978845608028654), " * (", a[0], " + ", c(0.044715), " * ", a[0], " * ", a[0], " * ",
                          a[0], ")")),
                   ")");
      return cat(c(0.5), " * ", a[0], " * (", c(1), " + ", fn("erf", d, cat(a[0], " * ", c(0.7071067811865476))), ")");
    case OpKind::LogicalNot: return cat("(trk_u8)!", a[0]);
    case OpKind::Cast: return cast_expr(at[0], d, a[0]);
    case OpKind::Add: return cat(a[0], " + ", a[1]);
    case OpKind::Sub: return cat(a[0], " - ", a[1]);
    case OpKind::Mul: return cat(a[0], " * ", a[1]);
    case OpKind::Div: return cat(a[0], " / ", a[1]);
    case OpKind::Pow: return cat(compute_type(d) == std::string("float") ? "powf(" : "pow(", a[0], ", ", a[1], ")");
    case OpKind::Maximum:
      return cat("((", a[0], " > ", a[1], " || ", a[0], " != ", a[0], ") ? ", a[0], " : ", a[1], ")");
    case OpKind::Minimum:
      return cat("((", a[0], " < ", a[1], " || ", a[0], " != ", a[0], ") ? ", a[0], " : ", a[1], ")");
    case OpKind::Eq: return cat("(trk_u8)(", a[0], " == ", a[1], ")");
    case OpKind::Ne: return cat("(trk_u8)(", a[0], " != ", a[1], ")");
    case OpKind::Lt: return cat("(trk_u8)(", a[0], " < ", a[1], ")");
    case OpKind::Le: return cat("(trk_u8)(", a[0], " <= ", a[1], ")");
    case OpKind::Gt: return cat("(trk_u8)(", a[0], " > ", a[1], ")");
    case OpKind::Ge: return cat("(trk_u8)(", a[0], " >= ", a[1], ")");
    case OpKind::LogicalAnd: return cat("(trk_u8)(", a[0], " && ", a[1], ")");
    case OpKind::LogicalOr: return cat("(trk_u8)(", a[0], " || ", a[1], ")");
    case OpKind::ReluBackward: return cat("(", a[1], " > ", c(0), " ? ", a[0], " : ", c(0), ")");
    case OpKind::SigmoidBackward: return cat(a[0], " * ", a[1], " * (", c(1), " - ", a[1], ")");
    case OpKind::TanhBackward: return cat(a[0], " * (", c(1), " - ", a[1], " * ", a[1], ")");
    case OpKind::GeluBackward:
      if (std::get<GeluAttrs>(op.attrs).tanh_approximation)
        return cat("trk_gelu_tanh_backward(", a[0], ", ", a[1], ")");
      return cat("trk_gelu_backward(", a[0], ", ", a[1], ")");
    case OpKind::Fma: return cat(a[0], " * ", a[1], " + ", a[2]);
    case OpKind::Where: return cat("(", a[0], " ? ", a[1], " : ", a[2], ")");
    default: break;
  }
  fail(ErrorKind::Internal, cat("codegen: no expression for op ", op_name(op.kind)));
}

// ---- preludes -----------------------------------------------------------------------------------

// Shared by both targets once TRK_INLINE and the integer types exist.
constexpr const char* kCommonPrelude = R"(
TRK_INLINE trk_i32 trk_to_i32(double v) {
  if (!(v == v)) return 0;
  if (v <= -2147483648.0) return (trk_i32)(-2147483647 - 1);
  if (v >= 2147483647.0) return (trk_i32)2147483647;
  return (trk_i32)v;
}
TRK_INLINE trk_i64 trk_to_i64(double v) {
  if (!(v == v)) return 0;
  if (v <= -9223372036854775808.0) return (trk_i64)(-9223372036854775807LL - 1);
  if (v >= 9223372036854775807.0) return (trk_i64)9223372036854775807LL;
  return (trk_i64)v;
}
TRK_INLINE float trk_gelu_backward(float g, float x) {
  const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
  return g * (cdf + x * pdf);
}
TRK_INLINE double trk_gelu_backward(double g, double x) {
  const double cdf = 0.5 * (1.0 + erf(x * 0.70710678118654752));
  const double pdf = 0.39894228040143268 * exp(-0.5 * x * x);
  return g * (cdf + x * pdf);
}
TRK_INLINE float trk_gelu_tanh_backward(float g, float x) {
  const float t = tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x));
  const float du = 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
  return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
}
TRK_INLINE double trk_gelu_tanh_backward(double g, double x) {
  const double t = tanh(0.79788456080286536 * (x + 0.044715 * x * x * x));
  const double du = 0.79788456080286536 * (1.0 + 3.0 * 0.044715 * x * x);
  return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
}
)";

constexpr const char* kCpuPrelude = R"(// generated by libtrainrt (codegen/emit_kernel.cpp), CPU target
#include <math.h>
#include <stdint.h>
#include <string.h>
#define TRK_INLINE static inline __attribute__((always_inline))
typedef int64_t trk_i64;
typedef int32_t trk_i32;
typedef uint8_t trk_u8;
typedef uint16_t trk_f16;
typedef uint16_t trk_bf16;
TRK_INLINE float trk_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
TRK_INLINE uint32_t trk_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
TRK_INLINE float trk_bf16_to_f32(trk_bf16 h) { return trk_bits_f32((uint32_t)h << 16); }
TRK_INLINE trk_bf16 trk_f32_to_bf16(float f) {
  uint32_t u = trk_f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (trk_bf16)((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (trk_bf16)(u >> 16);
}
TRK_INLINE float trk_f16_to_f32(trk_f16 h) { return (float)*(const _Float16*)&h; }
TRK_INLINE trk_f16 trk_f32_to_f16(float f) { _Float16 h = (_Float16)f; trk_f16 r; memcpy(&r, &h, 2); return r; }
)";

constexpr const char* kCudaPrelude = R"(// generated by libtrainrt (codegen/emit_kernel.cpp), CUDA target
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define TRK_INLINE static __device__ __forceinline__
typedef long long trk_i64;
typedef int trk_i32;
typedef unsigned char trk_u8;
typedef __half trk_f16;
typedef __nv_bfloat16 trk_bf16;
TRK_INLINE float trk_f16_to_f32(trk_f16 h) { return __half2float(h); }
TRK_INLINE trk_f16 trk_f32_to_f16(float f) { return __float2half_rn(f); }
TRK_INLINE float trk_bf16_to_f32(trk_bf16 h) { return __bfloat162float(h); }
TRK_INLINE trk_bf16 trk_f32_to_bf16(float f) { return __float2bfloat16_rn(f); }
)";

std::string array_literal(const std::vector<std::int64_t>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i], "LL");
  return s + "}";
}

/// Which operands a group reads.
std::vector<bool> operands_read(const FusedGroup& g, std::size_t operands) {
  std::vector<bool> used(operands, false);
  for (const FusedOp& op : g.ops)
    for (std::int32_t a : op.args)
      if (a < 0) used[static_cast<std::size_t>(fused_arg_operand(a))] = true;
  return used;
}

LoopNest group_nest(const KernelSpec& spec, const FusedGroup& g) {
  std::vector<Shape> shapes;
  shapes.reserve(spec.operands.size());
  for (const TensorType& t : spec.operands) shapes.push_back(t.shape);
  return loop_nest(g.loop, shapes);
}

}  // namespace

std::int64_t CudaLaunch::grid() const {
  std::int64_t n = 0;
  for (std::int64_t b : group_blocks) n += b;
  return n;
}

LoopNest loop_nest(const Shape& loop, const std::vector<Shape>& operands) {
  const auto rank = static_cast<std::size_t>(loop.rank());
  LoopNest nest;
  nest.strides.resize(operands.size());
  // Per original dim: size and each operand's stride (right-aligned broadcasting).
  std::vector<std::int64_t> dims;
  std::vector<std::vector<std::int64_t>> st(operands.size());
  for (std::size_t d = 0; d < rank; ++d) {
    const std::int64_t size = loop.dims()[d];
    nest.numel *= size;
    if (size == 1) continue;
    dims.push_back(size);
    for (std::size_t k = 0; k < operands.size(); ++k) {
      const Shape& s = operands[k];
      const std::int64_t off = static_cast<std::int64_t>(rank) - s.rank();
      const std::int64_t od = static_cast<std::int64_t>(d) - off;
      std::int64_t stride = 0;
      if (od >= 0 && s.dims()[static_cast<std::size_t>(od)] != 1) {
        stride = 1;
        for (std::int64_t e = od + 1; e < s.rank(); ++e) stride *= s.dims()[static_cast<std::size_t>(e)];
      }
      st[k].push_back(stride);
    }
  }
  // Merge a dim into the one before it when every operand walks them as one.
  for (std::size_t d = 0; d < dims.size(); ++d) {
    const bool merge = !nest.dims.empty() && [&] {
      for (std::size_t k = 0; k < operands.size(); ++k)
        if (nest.strides[k].back() != st[k][d] * dims[d]) return false;
      return true;
    }();
    if (merge) {
      nest.dims.back() *= dims[d];
      for (std::size_t k = 0; k < operands.size(); ++k) nest.strides[k].back() = st[k][d];
    } else {
      nest.dims.push_back(dims[d]);
      for (std::size_t k = 0; k < operands.size(); ++k) nest.strides[k].push_back(st[k][d]);
    }
  }
  if (nest.dims.empty()) {
    nest.dims.push_back(1);
    for (auto& s : nest.strides) s.push_back(0);
  }
  return nest;
}

KernelSpec kernel_spec(const GraphImpl& graph, std::int32_t node) {
  const Node& n = graph.node(node);
  KernelSpec spec;
  spec.body = &fused_body(n);
  for (const ValueId& v : n.inputs) spec.operands.push_back(graph.type(v));
  spec.outputs = n.outputs;
  return spec;
}

std::string emit_kernel_body(const KernelSpec& spec, const std::string& name) {
  const FusedBody& body = *spec.body;
  std::ostringstream os;
  for (std::size_t gi = 0; gi < body.groups.size(); ++gi) {
    const FusedGroup& g = body.groups[gi];
    check_internal(g.reduce_axes.empty(), "codegen: reductions in fused groups are not emitted");
    os << "// group " << gi << ": loop " << g.loop.to_string() << ", " << g.ops.size() << " ops\n";
    os << "TRK_INLINE void " << name << "_g" << gi << "(void* const* b, trk_i64 o, const trk_i64* ix) {\n";
    std::vector<std::string> value(g.ops.size());
    std::vector<std::string> loaded(spec.operands.size());
    auto arg = [&](std::int32_t a) -> std::string {
      if (a >= 0) return value[static_cast<std::size_t>(a)];
      const auto k = static_cast<std::size_t>(fused_arg_operand(a));
      if (loaded[k].empty()) {
        loaded[k] = cat("x", k);
        os << "  const " << compute_type(spec.operands[k].dtype) << " x" << k << " = "
           << load(spec.operands[k].dtype, k, cat("ix[", k, "]")) << ";\n";
      }
      return loaded[k];
    };
    auto arg_type = [&](std::int32_t a) {
      return a >= 0 ? g.ops[static_cast<std::size_t>(a)].type.dtype
                    : spec.operands[static_cast<std::size_t>(fused_arg_operand(a))].dtype;
    };
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
      const FusedOp& op = g.ops[i];
      std::vector<std::string> args;
      std::vector<DType> types;
      for (std::int32_t a : op.args) {
        args.push_back(arg(a));
        types.push_back(arg_type(a));
      }
      value[i] = cat("v", i);
      os << "  const " << compute_type(op.type.dtype) << " v" << i << " = " << op_expr(op, args, types) << ";  // "
         << op_name(op.kind) << "\n";
    }
    for (std::size_t o = 0; o < body.outputs.size(); ++o) {
      if (body.outputs[o].group != static_cast<std::int32_t>(gi)) continue;
      os << "  "
         << store(spec.outputs[o].dtype, spec.operands.size() + o, value[static_cast<std::size_t>(body.outputs[o].op)])
         << "\n";
    }
    os << "}\n";
  }
  return os.str();
}

std::string cpu_prelude() { return cat(kCpuPrelude, kCommonPrelude); }
std::string cuda_prelude() { return cat(kCudaPrelude, kCommonPrelude); }
std::string cpu_kernel_source(const KernelSpec& spec, const std::string& name) {
  return cpu_prelude() + cpu_kernel_code(spec, name);
}
std::string cuda_kernel_source(const KernelSpec& spec, const std::string& name) {
  return cuda_prelude() + cuda_kernel_code(spec, name);
}

std::string cpu_kernel_code(const KernelSpec& spec, const std::string& name) {
  std::ostringstream os;
  os << emit_kernel_body(spec, name);
  const std::size_t k_count = spec.operands.size();
  for (std::size_t gi = 0; gi < spec.body->groups.size(); ++gi) {
    const FusedGroup& g = spec.body->groups[gi];
    const LoopNest nest = group_nest(spec, g);
    const std::vector<bool> used = operands_read(g, k_count);
    const std::size_t rank = nest.dims.size();
    os << "static void " << name << "_run" << gi << "(void* const* b, trk_i64 begin, trk_i64 end) {\n"
       << "  static const trk_i64 dims[" << rank << "] = " << array_literal(nest.dims) << ";\n"
       << "  trk_i64 i = begin;\n  while (i < end) {\n"
       << "    const trk_i64 inner = dims[" << rank - 1 << "];\n"
       << "    const trk_i64 col = i % inner;\n    trk_i64 rest = i / inner;\n"
       << "    trk_i64 n = inner - col;\n    if (n > end - i) n = end - i;\n";
    // Row offsets of each operand the group reads (strides are constants).
    for (std::size_t k = 0; k < k_count; ++k)
      if (used[k]) os << "    trk_i64 off" << k << " = col * " << nest.strides[k][rank - 1] << "LL;\n";
    if (rank > 1) {
      os << "    for (int d = " << rank - 2 << "; d >= 0; --d) {\n"
         << "      const trk_i64 idx = rest % dims[d];\n      rest /= dims[d];\n";
      for (std::size_t k = 0; k < k_count; ++k)
        if (used[k]) {
          std::vector<std::int64_t> outer(nest.strides[k].begin(), nest.strides[k].end() - 1);
          os << "      { static const trk_i64 s[" << rank - 1 << "] = " << array_literal(outer) << "; off" << k
             << " += idx * s[d]; }\n";
        }
      os << "    }\n";
    }
    // Element j reads only element j of each operand it does not broadcast, and outputs may
    // be written in place over such operands (the memory plan allows nothing else): no
    // dependence between iterations, so no runtime alias checks (which fail, and fall back to
    // scalar code, exactly when an output is written in place).
    os << "#pragma GCC ivdep\n    for (trk_i64 j = 0; j < n; ++j) {\n      trk_i64 ix[" << (k_count ? k_count : 1)
       << "] = {0};\n";
    for (std::size_t k = 0; k < k_count; ++k)
      if (used[k]) os << "      ix[" << k << "] = off" << k << " + j * " << nest.strides[k][rank - 1] << "LL;\n";
    os << "      " << name << "_g" << gi << "(b, i + j, ix);\n    }\n    i += n;\n  }\n}\n";
  }
  os << "extern \"C\" void " << name << "(void* const* b, trk_i64 group, trk_i64 begin, trk_i64 end) {\n"
     << "  switch (group) {\n";
  for (std::size_t gi = 0; gi < spec.body->groups.size(); ++gi)
    os << "    case " << gi << ": " << name << "_run" << gi << "(b, begin, end); break;\n";
  os << "    default: break;\n  }\n}\n";
  return os.str();
}

CudaLaunch cuda_launch(const KernelSpec& spec) {
  CudaLaunch l;
  for (const FusedGroup& g : spec.body->groups) {
    const std::int64_t numel = g.loop.numel();
    const std::int64_t per_block = static_cast<std::int64_t>(l.block) * 4;
    l.group_blocks.push_back(
        std::max<std::int64_t>(1, std::min<std::int64_t>((numel + per_block - 1) / per_block, 8192)));
  }
  return l;
}

std::string cuda_kernel_code(const KernelSpec& spec, const std::string& name) {
  std::ostringstream os;
  os << emit_kernel_body(spec, name);
  const std::size_t k_count = spec.operands.size();
  const CudaLaunch launch = cuda_launch(spec);
  for (std::size_t gi = 0; gi < spec.body->groups.size(); ++gi) {
    const FusedGroup& g = spec.body->groups[gi];
    const LoopNest nest = group_nest(spec, g);
    const std::vector<bool> used = operands_read(g, k_count);
    os << "static __device__ void " << name << "_run" << gi << "(void* const* b, trk_i64 block, trk_i64 blocks) {\n"
       << "  for (trk_i64 i = block * blockDim.x + threadIdx.x; i < " << nest.numel
       << "LL; i += blocks * blockDim.x) {\n    trk_i64 ix[" << (k_count ? k_count : 1) << "] = {0};\n"
       << "    trk_i64 rest = i;\n";
    for (std::size_t d = nest.dims.size(); d-- > 0;) {
      os << "    { const trk_i64 idx = rest % " << nest.dims[d] << "LL; rest /= " << nest.dims[d] << "LL;";
      for (std::size_t k = 0; k < k_count; ++k)
        if (used[k] && nest.strides[k][d]) os << " ix[" << k << "] += idx * " << nest.strides[k][d] << "LL;";
      os << " }\n";
    }
    os << "    " << name << "_g" << gi << "(b, i, ix);\n  }\n}\n";
  }
  const std::size_t buffers = k_count + spec.outputs.size();
  os << "struct " << name << "_buffers { void* p[" << buffers << "]; };\n"
     << "extern \"C\" __global__ void __launch_bounds__(" << launch.block << ") " << name << "(" << name
     << "_buffers buffers) {\n  void* const* b = buffers.p;\n  trk_i64 block = blockIdx.x;\n";
  for (std::size_t gi = 0; gi < launch.group_blocks.size(); ++gi) {
    const std::int64_t n = launch.group_blocks[gi];
    os << "  if (block < " << n << "LL) { " << name << "_run" << gi << "(b, block, " << n << "LL); return; }\n"
       << "  block -= " << n << "LL;\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace trainrt::detail
