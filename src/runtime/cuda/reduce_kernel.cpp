#include "runtime/cuda/reduce_kernel.h"

#include <sstream>
#include <vector>

#include "codegen/emit_kernel.h"
#include "core/error.h"

namespace trainrt::detail {

namespace {

const char* cuda_type(DType t) {
  switch (t) {
    case DType::f32: return "float";
    case DType::f16: return "trk_f16";
    case DType::bf16: return "trk_bf16";
    default: return nullptr;
  }
}

std::string load(DType t, const std::string& expr) {
  if (t == DType::f16) return cat("trk_f16_to_f32(", expr, ")");
  if (t == DType::bf16) return cat("trk_bf16_to_f32(", expr, ")");
  return expr;
}

std::string store(DType t, const std::string& expr) {
  if (t == DType::f16) return cat("trk_f32_to_f16(", expr, ")");
  if (t == DType::bf16) return cat("trk_f32_to_bf16(", expr, ")");
  return expr;
}

std::string literal(const std::vector<std::int64_t>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i], "LL");
  return s + (v.empty() ? "0LL}" : "}");
}

}  // namespace

bool cuda_reducible(const GraphImpl& graph, std::int32_t node, std::string& why) {
  const Node& n = graph.node(node);
  if (n.kind != OpKind::ReduceSum && n.kind != OpKind::ReduceMean && n.kind != OpKind::ReduceMax) {
    why = "it has no CUDA kernel yet";
    return false;
  }
  const DType in = graph.type(n.inputs[0]).dtype;
  if (!cuda_type(in) || n.outputs[0].dtype != in) {
    why = "a reduction over a dtype other than f32, f16 or bf16";
    return false;
  }
  return true;
}

std::string reduce_kernel_source(const GraphImpl& graph, std::int32_t node, const std::string& name) {
  const Node& n = graph.node(node);
  const TensorType& in = graph.type(n.inputs[0]);
  const auto& attrs = std::get<ReduceAttrs>(n.attrs);
  const auto rank = static_cast<std::size_t>(in.shape.rank());
  std::vector<bool> reduced(rank, false);
  for (std::int64_t a : attrs.axes) reduced.at(static_cast<std::size_t>(a)) = true;
  // Kept and reduced axes, outermost first, each with its dimension and input stride.
  std::vector<std::int64_t> kept_dims, kept_strides, red_dims, red_strides;
  std::int64_t stride = 1, count = 1;
  std::vector<std::int64_t> strides(rank);
  for (std::size_t d = rank; d-- > 0;) strides[d] = stride, stride *= in.shape[static_cast<std::int64_t>(d)];
  for (std::size_t d = 0; d < rank; ++d) {
    if (reduced[d]) {
      red_dims.push_back(in.shape[static_cast<std::int64_t>(d)]);
      red_strides.push_back(strides[d]);
      count *= in.shape[static_cast<std::int64_t>(d)];
    } else {
      kept_dims.push_back(in.shape[static_cast<std::int64_t>(d)]);
      kept_strides.push_back(strides[d]);
    }
  }
  const bool max = n.kind == OpKind::ReduceMax;
  const char* type = cuda_type(in.dtype);
  check_internal(type != nullptr, "reduce_kernel_source of an unsupported dtype");
  std::ostringstream os;
  os << cuda_prelude() << "// " << op_name(n.kind) << " of " << in.to_string() << " to " << n.outputs[0].to_string()
     << "\n"
     << "static __device__ __forceinline__ float trk_fold(float a, float b) { return "
     << (max ? "(a != a || a > b) ? a : b" : "a + b") << "; }\n"
     << "extern \"C\" __global__ void " << name << "(const void* in_, void* out_) {\n"
     << "  const " << type << "* in = static_cast<const " << type << "*>(in_);\n"
     << "  " << type << "* out = static_cast<" << type << "*>(out_);\n"
     << "  const trk_i64 kept_dims[] = " << literal(kept_dims) << ";\n"
     << "  const trk_i64 kept_strides[] = " << literal(kept_strides) << ";\n"
     << "  const trk_i64 red_dims[] = " << literal(red_dims) << ";\n"
     << "  const trk_i64 red_strides[] = " << literal(red_strides) << ";\n"
     << "  __shared__ float partial[" << kReduceBlock << "];\n"
     << "  trk_i64 rest = blockIdx.x;\n  trk_i64 base = 0;\n"
     << "  for (int d = " << kept_dims.size() << " - 1; d >= 0; --d) {\n"
     << "    base += (rest % kept_dims[d]) * kept_strides[d];\n    rest /= kept_dims[d];\n  }\n"
     << "  float acc = " << (max ? "-__int_as_float(0x7f800000)" : "0.0f") << ";\n"
     << "  for (trk_i64 r = threadIdx.x; r < " << count << "LL; r += " << kReduceBlock << ") {\n"
     << "    trk_i64 at = base;\n    trk_i64 left = r;\n"
     << "    for (int d = " << red_dims.size() << " - 1; d >= 0; --d) {\n"
     << "      at += (left % red_dims[d]) * red_strides[d];\n      left /= red_dims[d];\n    }\n"
     << "    acc = trk_fold(acc, " << load(in.dtype, "in[at]") << ");\n  }\n"
     << "  partial[threadIdx.x] = acc;\n  __syncthreads();\n"
     << "  for (int width = " << kReduceBlock / 2 << "; width > 0; width /= 2) {\n"
     << "    if (threadIdx.x < width) partial[threadIdx.x] = trk_fold(partial[threadIdx.x], partial[threadIdx.x + "
        "width]);\n"
     << "    __syncthreads();\n  }\n"
     << "  if (threadIdx.x == 0) {\n"
     << "    float v = partial[0];\n";
  if (n.kind == OpKind::ReduceMean) os << "    v = v / " << count << ".0f;\n";
  os << "    out[blockIdx.x] = " << store(in.dtype, "v") << ";\n  }\n}\n";
  return os.str();
}

}  // namespace trainrt::detail
