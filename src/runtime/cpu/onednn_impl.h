// runtime/cpu/onednn_impl.h — oneDNN types for the kernels that call oneDNN (matmul, conv).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "runtime/cpu/onednn.h"
#include "trainrt/dtype.hpp"

namespace trainrt::detail::cpu {

struct OneDnn::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

/// oneDNN's data type for `dtype`; throws Unsupported for dtypes oneDNN lacks (f64, i64).
dnnl::memory::data_type onednn_type(DType dtype);

/// Runs `fn`, turning a dnnl::error into trainrt::Error naming `what` and oneDNN's status.
template <class Fn>
auto onednn_call(const char* what, Fn&& fn) -> decltype(fn());
[[noreturn]] void onednn_fail(const char* what, const dnnl::error& e);

template <class Fn>
auto onednn_call(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    onednn_fail(what, e);
  }
}

}  // namespace trainrt::detail::cpu
