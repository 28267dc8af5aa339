// runtime/cpu/onednn_impl.h — oneDNN types for the kernels that call oneDNN (matmul, conv).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <vector>

#include "runtime/cpu/onednn.h"
#include "trainrt/dtype.hpp"

namespace trainrt::detail::cpu {

struct OneDnn::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};

/// oneDNN's data type for `dtype`; throws Unsupported for dtypes oneDNN lacks (f64, i64).
dnnl::memory::data_type onednn_type(DType dtype);

/// Arguments of one primitive, made once at compile time: (DNNL_ARG_*, memory) pairs whose
/// data handles run() points at the step's buffers.
struct OneDnnArgs {
  std::vector<dnnl_exec_arg_t> args;
  void add(int kind, const dnnl::memory& m) { args.push_back({kind, m.get()}); }
};

/// Points `m` at `data` (allocates nothing; throws trainrt::Error on failure).
void onednn_bind(const dnnl::memory& m, const void* data);
/// Executes `prim` on the CPU stream and waits. Goes through oneDNN's C API: the C++
/// wrapper's execute() copies its argument map into a new vector at every call.
void onednn_execute(OneDnn& dnn, const dnnl::primitive& prim, const OneDnnArgs& args, const char* what);
/// The same on `stream` (one per worker thread: a oneDNN stream is not thread-safe).
void onednn_execute(const dnnl::stream& stream, const dnnl::primitive& prim, const OneDnnArgs& args, const char* what);

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
