// runtime/cuda/cublaslt.cpp — loading cuBLASLt, and GEMM plans over it. cublasLt.h supplies the
// types and the entry points' signatures only: every call goes through dlsym'd pointers.
#include "runtime/cuda/cublaslt.h"

#include <cublasLt.h>

#include <algorithm>
#include <mutex>

#include "core/dynamic_library.h"
#include "core/error.h"
#include "runtime/cuda/emulated_gemm.h"

namespace trainrt::detail {

struct CublasLt::Api {
  decltype(&cublasLtGetVersion) get_version = nullptr;
  decltype(&cublasLtGetStatusName) status_name = nullptr;
  decltype(&cublasLtGetStatusString) status_string = nullptr;
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatrixLayoutSetAttribute) layout_set = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

namespace {

cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

cublasLtEpilogue_t cublas_epilogue(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::bias_relu: return CUBLASLT_EPILOGUE_RELU_BIAS;
    case GemmEpilogue::bias_gelu_tanh: return CUBLASLT_EPILOGUE_GELU_BIAS;  // cuBLASLt's GELU is the tanh form
    case GemmEpilogue::none: break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

const char* epilogue_name(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::bias: return "bias";
    case GemmEpilogue::bias_relu: return "bias+relu";
    case GemmEpilogue::bias_gelu_tanh: return "bias+gelu(tanh)";
    case GemmEpilogue::none: break;
  }
  return "none";
}

}  // namespace

CublasLt::~CublasLt() = default;

std::vector<std::string> CublasLt::search_order() {
  std::vector<std::string> out;
  if (const std::string path = env_string("TRAINRT_CUBLASLT"); !path.empty()) out.push_back(path);
  out.emplace_back("libcublasLt.so.13");
  out.emplace_back("libcublasLt.so.12");
  out.emplace_back("/usr/local/cuda/lib64/libcublasLt.so.13");
  if (const std::string home = env_string("CUDA_HOME"); !home.empty()) out.push_back(home + "/lib64/libcublasLt.so.13");
  return out;
}

std::unique_ptr<CublasLt> CublasLt::open(const std::string& library) {
  void* h = open_library(library, "cuBLASLt");
  std::unique_ptr<CublasLt> lt(new CublasLt());
  lt->api_ = std::make_unique<Api>();
  lt->path_ = loaded_path(h, library);
  Api& a = *lt->api_;
  std::vector<std::string> missing;
  bind_symbol(h, "cublasLtGetVersion", a.get_version, missing);
  bind_symbol(h, "cublasLtGetStatusName", a.status_name, missing);
  bind_symbol(h, "cublasLtGetStatusString", a.status_string, missing);
  bind_symbol(h, "cublasLtCreate", a.create, missing);
  bind_symbol(h, "cublasLtDestroy", a.destroy, missing);
  bind_symbol(h, "cublasLtMatmulDescCreate", a.desc_create, missing);
  bind_symbol(h, "cublasLtMatmulDescDestroy", a.desc_destroy, missing);
  bind_symbol(h, "cublasLtMatmulDescSetAttribute", a.desc_set, missing);
  bind_symbol(h, "cublasLtMatrixLayoutCreate", a.layout_create, missing);
  bind_symbol(h, "cublasLtMatrixLayoutDestroy", a.layout_destroy, missing);
  bind_symbol(h, "cublasLtMatrixLayoutSetAttribute", a.layout_set, missing);
  bind_symbol(h, "cublasLtMatmulPreferenceCreate", a.pref_create, missing);
  bind_symbol(h, "cublasLtMatmulPreferenceDestroy", a.pref_destroy, missing);
  bind_symbol(h, "cublasLtMatmulPreferenceSetAttribute", a.pref_set, missing);
  bind_symbol(h, "cublasLtMatmulAlgoGetHeuristic", a.heuristic, missing);
  bind_symbol(h, "cublasLtMatmul", a.matmul, missing);
  if (!missing.empty()) {
    fail(ErrorKind::Unsupported, cat("'", lt->path_, "' is not a usable cuBLASLt: it lacks ", join(missing, ", ")));
  }
  // The library stays loaded for the life of the process, as the CUDA libraries expect.
  lt->version_ = a.get_version();
  return lt;
}

const CublasLt& CublasLt::get() {
  static std::once_flag once;
  static std::unique_ptr<CublasLt> lib;
  static std::string tried;
  std::call_once(once, [] {
    for (const std::string& candidate : search_order()) {
      try {
        lib = open(candidate);
        return;
      } catch (const Error& e) {
        tried += cat("\n  ", candidate, ": ", e.what());
      }
    }
  });
  if (!lib) fail(ErrorKind::Unsupported, cat("cuBLASLt could not be loaded (set TRAINRT_CUBLASLT); tried:", tried));
  return *lib;
}

std::string CublasLt::describe(int status) const {
  const auto s = static_cast<cublasStatus_t>(status);
  const char* n = api_->status_name ? api_->status_name(s) : nullptr;
  const char* t = api_->status_string ? api_->status_string(s) : nullptr;
  return cat(n ? n : "cuBLAS error", " (", status, ")", t ? cat(": ", t) : std::string());
}

CublasLtHandle::CublasLtHandle(const CublasLt& lib, const CudaDevice& device) : lib_(lib), device_(device) {
  if (device_.driver().emulated) return;  // the emulated device's GEMMs need no cuBLASLt handle
  const ScopedContext scope(device_.driver(), device_.context());
  cublasLtHandle_t h = nullptr;
  if (const cublasStatus_t s = lib_.api().create(&h); s != CUBLAS_STATUS_SUCCESS)
    fail(ErrorKind::Runtime, cat("cublasLtCreate on ", device_.name(), " failed: ", lib_.describe(s)));
  handle_ = h;
}

CublasLtHandle::~CublasLtHandle() {
  if (handle_ == nullptr) return;
  release_in_context(device_,
                     [&](const CudaDriver&) { (void)lib_.api().destroy(static_cast<cublasLtHandle_t>(handle_)); });
}

struct GemmPlan::Descriptors {
  const CublasLt::Api* api = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  ~Descriptors() {
    if (out) api->layout_destroy(out);
    if (second) api->layout_destroy(second);
    if (first) api->layout_destroy(first);
    if (op) api->desc_destroy(op);
  }
};

GemmPlan::GemmPlan(const CublasLtHandle& handle, const GemmDesc& desc, std::size_t max_workspace)
    : handle_(handle), desc_(desc), d_(std::make_unique<Descriptors>()) {
  if (handle_.device().driver().emulated) {
    emulated_ = std::make_unique<EmulatedGemm>(desc_, max_workspace);
    workspace_ = emulated_->workspace_bytes();
    return;
  }
  const GemmLayout l = gemm_layout(desc_);
  const CublasLt& lib = handle_.lib();
  const CublasLt::Api& a = lib.api();
  d_->api = &a;
  auto check = [&](cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS) fail(ErrorKind::Runtime, cat(what, " failed: ", lib.describe(s)));
  };
  const cudaDataType_t type = cuda_type(desc_.dtype);
  const cublasComputeType_t compute = desc_.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check(a.desc_create(&d_->op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t ta = l.first.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = l.second.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(a.desc_set(d_->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "setting TRANSA");
  check(a.desc_set(d_->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "setting TRANSB");
  const cublasLtEpilogue_t epilogue = cublas_epilogue(desc_.epilogue);
  check(a.desc_set(d_->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue), "setting the epilogue");
  if (desc_.epilogue != GemmEpilogue::none)
    check(a.desc_set(d_->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof type), "setting the bias dtype");

  auto layout = [&](cublasLtMatrixLayout_t& out, const GemmOperand& o, const char* which) {
    check(a.layout_create(&out, type, static_cast<std::uint64_t>(o.rows), static_cast<std::uint64_t>(o.cols), o.ld),
          which);
    if (desc_.batch > 1) {
      const auto count = static_cast<std::int32_t>(desc_.batch);
      const std::int64_t stride = o.stride;
      check(a.layout_set(out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), which);
      check(a.layout_set(out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride), which);
    }
  };
  layout(d_->first, l.first, "cublasLtMatrixLayoutCreate(B)");
  layout(d_->second, l.second, "cublasLtMatrixLayoutCreate(A)");
  layout(d_->out, l.out, "cublasLtMatrixLayoutCreate(C)");

  cublasLtMatmulPreference_t pref = nullptr;
  check(a.pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  // Destroyed when the plan is made, or when making it throws.
  const std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, decltype(a.pref_destroy)> owned(pref, a.pref_destroy);
  check(a.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof max_workspace),
        "setting the workspace limit");
  const auto align = static_cast<std::uint32_t>(std::min<std::int64_t>(desc_.alignment, 256));
  for (const cublasLtMatmulPreferenceAttributes_t attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    check(a.pref_set(pref, attr, &align, sizeof align), "setting the alignment");

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t s = a.heuristic(static_cast<cublasLtHandle_t>(handle_.get()), d_->op, d_->first, d_->second,
                                       d_->out, d_->out, pref, 1, &result, &found);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0)
    fail(ErrorKind::Unsupported,
         cat("cuBLASLt has no algorithm on ", handle_.device().name(), " for ", name(desc_.dtype), " [", desc_.batch,
             "] ", desc_.m, "x", desc_.k, (desc_.transpose_a ? "^T" : ""), " @ ", desc_.k, "x", desc_.n,
             (desc_.transpose_b ? "^T" : ""), ", epilogue ", epilogue_name(desc_.epilogue), ", alignment ",
             desc_.alignment, ", workspace <= ", max_workspace, " bytes",
             s != CUBLAS_STATUS_SUCCESS ? cat(" (", lib.describe(s), ")") : std::string()));
  d_->algo = result.algo;
  workspace_ = result.workspaceSize;
}

GemmPlan::~GemmPlan() = default;

void GemmPlan::run(void* stream, const void* a, const void* b, void* c, const void* bias, void* workspace) const {
  if (emulated_) {
    emulated_->run(handle_.device(), stream, a, b, c, bias, workspace);
    return;
  }
  const CublasLt& lib = handle_.lib();
  if (desc_.epilogue != GemmEpilogue::none) {
    check_internal(bias != nullptr, "a GEMM epilogue with a bias gets one");
    if (const cublasStatus_t s = lib.api().desc_set(d_->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
        s != CUBLAS_STATUS_SUCCESS)
      fail(ErrorKind::Runtime, cat("setting the GEMM's bias failed: ", lib.describe(s)));
  }
  const float alpha = desc_.alpha, beta = 0.0f;
  // cuBLASLt's first operand is our B, its second our A (gemm.h).
  const cublasStatus_t s =
      lib.api().matmul(static_cast<cublasLtHandle_t>(handle_.get()), d_->op, &alpha, b, d_->first, a, d_->second, &beta,
                       c, d_->out, c, d_->out, &d_->algo, workspace, workspace_, static_cast<cudaStream_t>(stream));
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(ErrorKind::Runtime, cat("cublasLtMatmul on ", handle_.device().name(), " failed: ", lib.describe(s)));
}

}  // namespace trainrt::detail
