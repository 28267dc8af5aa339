// runtime/cuda/emulated_gemm.cpp — the column-major GEMM of the emulated device.
#include "runtime/cuda/emulated_gemm.h"

#include <oneapi/dnnl/dnnl.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace trainrt::detail {

namespace {

constexpr int kInvalidValue = 7;  // CUBLAS_STATUS_INVALID_VALUE

// Elements a column-major operand spans over the batch (stride 0: one matrix for all).
std::int64_t extent(const GemmOperand& o, std::int64_t batch) {
  return (batch - 1) * o.stride + o.ld * (o.cols - 1) + o.rows;
}

float load(const void* p, DType t, std::int64_t i) {
  switch (t) {
    case DType::f16: return half_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::bf16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// TF32: f32 with its mantissa rounded to 10 bits (to nearest, ties to even), as tensor cores read it.
float to_tf32(float x) {
  if (!std::isfinite(x)) return x;
  std::uint32_t u = 0;
  std::memcpy(&u, &x, 4);
  u = (u + 0xFFFu + ((u >> 13) & 1u)) & ~0x1FFFu;
  std::memcpy(&x, &u, 4);
  return x;
}

std::vector<float> widen(const void* p, DType t, std::int64_t n, bool tf32) {
  std::vector<float> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = tf32 ? to_tf32(load(p, t, i)) : load(p, t, i);
  return out;
}

}  // namespace

struct EmulatedGemm::Call {
  const EmulatedGemm* plan;
  const void *a, *b, *bias;
  void* c;
  static void run(void* self) {
    const Call& k = *static_cast<const Call*>(self);
    // cuBLASLt's first operand is our B, its second our A (gemm.h).
    compute(k.plan->desc_, k.plan->layout_, k.b, k.a, k.c, k.bias);
  }
};

EmulatedGemm::EmulatedGemm(const GemmDesc& desc, std::size_t max_workspace)
    : desc_(desc), layout_(gemm_layout(desc)), workspace_(std::min<std::size_t>(max_workspace, std::size_t{1} << 20)) {}

EmulatedGemm::~EmulatedGemm() = default;

void EmulatedGemm::compute(const GemmDesc& desc, const GemmLayout& l, const void* first, const void* second, void* out,
                           const void* bias) {
  const bool tf32 = desc.tf32 && desc.dtype == DType::f32;
  const std::vector<float> f = widen(first, desc.dtype, extent(l.first, desc.batch), tf32);
  const std::vector<float> s = widen(second, desc.dtype, extent(l.second, desc.batch), tf32);
  const std::int64_t out_n = extent(l.out, desc.batch);
  std::vector<float> d(static_cast<std::size_t>(out_n), 0.0f);
  for (std::int64_t t = 0; t < desc.batch; ++t) {
    // Column-major D (m x n) = op(F) op(S) is, read row-major, D^T (n x m) = op(S)^T op(F)^T:
    // a column-major X is its own transpose row-major, with the same leading dimension.
    const dnnl_status_t st =
        dnnl_sgemm(l.second.transpose ? 'T' : 'N', l.first.transpose ? 'T' : 'N', l.n, l.m, l.k, desc.alpha,
                   s.data() + t * l.second.stride, l.second.ld, f.data() + t * l.first.stride, l.first.ld, 0.0f,
                   d.data() + t * l.out.stride, l.out.ld);
    if (st != dnnl_success)
      fail(ErrorKind::Runtime, cat("the emulated cublasLtMatmul's sgemm failed (oneDNN status ", st, ")"));
  }
  for (std::int64_t t = 0; t < desc.batch; ++t)
    for (std::int64_t j = 0; j < l.n; ++j)
      for (std::int64_t i = 0; i < l.m; ++i) {
        const std::int64_t at = t * l.out.stride + j * l.out.ld + i;
        float v = d[static_cast<std::size_t>(at)];
        if (desc.epilogue != GemmEpilogue::none) v += load(bias, desc.dtype, i);
        if (desc.epilogue == GemmEpilogue::bias_relu) v = v > 0.0f ? v : 0.0f;
        if (desc.epilogue == GemmEpilogue::bias_gelu_tanh)
          v = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        switch (desc.dtype) {
          case DType::f16: static_cast<std::uint16_t*>(out)[at] = float_to_half(v); break;
          case DType::bf16: static_cast<std::uint16_t*>(out)[at] = float_to_bf16(v); break;
          default: static_cast<float*>(out)[at] = v;
        }
      }
}

void EmulatedGemm::run(const CudaDevice& device, void* stream, const void* a, const void* b, void* c, const void* bias,
                       void* workspace) const {
  const auto refuse = [&](const std::string& why) {
    fail(ErrorKind::Runtime, cat("cublasLtMatmul on ", device.name(), " failed: CUBLAS_STATUS_INVALID_VALUE (",
                                 kInvalidValue, "): ", why, " (the emulated cuBLASLt checks what the real one needs)"));
  };
  const auto aligned = [&](const void* p, const char* which) {
    if (reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(desc_.alignment) != 0)
      refuse(cat("the pointer ", which, " is not aligned to the ", desc_.alignment, " bytes the plan was made for"));
  };
  if (a == nullptr || b == nullptr || c == nullptr) refuse("A, B and C must be device memory");
  aligned(a, "A");
  aligned(b, "B");
  aligned(c, "C");
  if (desc_.epilogue != GemmEpilogue::none) {
    if (bias == nullptr) refuse("the epilogue has a bias and none was given");
    aligned(bias, "bias");
  }
  if (workspace_ > 0 && workspace == nullptr) refuse(cat("the algorithm needs ", workspace_, " bytes of workspace"));
  const std::size_t es = size_of(desc_.dtype);
  const auto span = [&](const GemmOperand& o) { return static_cast<std::size_t>(extent(o, desc_.batch)) * es; };
  // cuBLASLt's first operand is our B, its second our A.
  std::vector<CudaAccess> accesses = {{reinterpret_cast<CuDevicePtr>(b), span(layout_.first), false},
                                      {reinterpret_cast<CuDevicePtr>(a), span(layout_.second), false},
                                      {reinterpret_cast<CuDevicePtr>(c), span(layout_.out), true}};
  if (bias != nullptr && desc_.epilogue != GemmEpilogue::none)
    accesses.push_back({reinterpret_cast<CuDevicePtr>(bias), static_cast<std::size_t>(desc_.n) * es, false});
  if (workspace_ > 0) accesses.push_back({reinterpret_cast<CuDevicePtr>(workspace), workspace_, true});
  Call* call = nullptr;
  {
    std::lock_guard lock(mutex_);
    for (const auto& k : calls_)
      if (k->a == a && k->b == b && k->c == c && k->bias == bias) call = k.get();
    if (call == nullptr) {
      calls_.push_back(std::make_unique<Call>(Call{this, a, b, bias, c}));
      call = calls_.back().get();
    }
  }
  const CudaDriver& d = device.driver();
  const ScopedContext scope(d, device.context());
  d.declare(stream, accesses.data(), accesses.size(), "cublasLtMatmul (emulated)");
  d.check(d.launch_host_func(stream, &Call::run, call), cat("cublasLtMatmul (emulated) on ", device.name()));
}

}  // namespace trainrt::detail
