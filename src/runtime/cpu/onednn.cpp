#include "runtime/cpu/onednn.h"

#include <omp.h>

#include "core/error.h"
#include "runtime/cpu/onednn_impl.h"

namespace trainrt::detail::cpu {

OneDnn::OneDnn(int threads)
    : threads_(threads), impl_(onednn_call("creating the CPU engine", [] { return std::make_unique<Impl>(); })) {}

OneDnn::~OneDnn() = default;

void OneDnn::use_threads(int n) { omp_set_num_threads(n); }

dnnl::memory::data_type onednn_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return dnnl::memory::data_type::f32;
    case DType::f16: return dnnl::memory::data_type::f16;
    case DType::bf16: return dnnl::memory::data_type::bf16;
    case DType::i32: return dnnl::memory::data_type::s32;
    default: break;
  }
  fail(ErrorKind::Unsupported, cat("oneDNN has no ", name(dtype), " data type"));
}

void onednn_bind(const dnnl::memory& m, const void* data) {
  const dnnl_status_t status = dnnl_memory_set_data_handle_v2(m.get(), const_cast<void*>(data), nullptr);
  if (status != dnnl_success) onednn_fail("binding a buffer", dnnl::error(status, "dnnl_memory_set_data_handle_v2"));
}

void onednn_execute(const dnnl::stream& stream, const dnnl::primitive& prim, const OneDnnArgs& args, const char* what) {
  dnnl_status_t status =
      dnnl_primitive_execute(prim.get(), stream.get(), static_cast<int>(args.args.size()), args.args.data());
  if (status == dnnl_success) status = dnnl_stream_wait(stream.get());
  if (status != dnnl_success) onednn_fail(what, dnnl::error(status, "dnnl_primitive_execute"));
}

void onednn_execute(OneDnn& dnn, const dnnl::primitive& prim, const OneDnnArgs& args, const char* what) {
  onednn_execute(dnn.impl().stream, prim, args, what);
}

void onednn_fail(const char* what, const dnnl::error& e) {
  fail(ErrorKind::Runtime,
       cat("oneDNN failed while ", what, ": ", e.what(), " (status ", static_cast<int>(e.status), ")"));
}

}  // namespace trainrt::detail::cpu
