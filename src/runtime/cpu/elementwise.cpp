#include "runtime/cpu/elementwise.h"

#include "core/error.h"
#include "runtime/cpu/elementwise_ops.h"

namespace trainrt::detail::cpu {

BroadcastPlan make_broadcast_plan(const Shape& out, const std::vector<Shape>& inputs) {
  check_internal(inputs.size() <= kMaxOperands, "too many elementwise operands");
  const std::int64_t rank = out.rank();
  // Per axis of the output: its size and each operand's element stride (0 when broadcast).
  std::vector<std::int64_t> dims;
  std::vector<std::vector<std::int64_t>> strides(inputs.size());
  std::vector<std::int64_t> running(inputs.size(), 1);
  std::vector<std::vector<std::int64_t>> full(inputs.size(),
                                              std::vector<std::int64_t>(static_cast<std::size_t>(rank), 0));
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Shape& s = inputs[k];
    for (std::int64_t d = rank - 1; d >= 0; --d) {
      const std::int64_t sd = d - (rank - s.rank());
      if (sd < 0) continue;
      const std::int64_t size = s[sd];
      full[k][static_cast<std::size_t>(d)] = size == 1 ? 0 : running[k];
      running[k] *= size;
    }
  }
  for (std::int64_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;  // size-1 axes contribute nothing
    const bool merge = !dims.empty() && [&] {
      for (std::size_t k = 0; k < inputs.size(); ++k)
        if (strides[k].back() != full[k][static_cast<std::size_t>(d)] * out[d]) return false;
      return true;
    }();
    if (merge) {
      dims.back() *= out[d];
      for (std::size_t k = 0; k < inputs.size(); ++k) strides[k].back() = full[k][static_cast<std::size_t>(d)];
    } else {
      dims.push_back(out[d]);
      for (std::size_t k = 0; k < inputs.size(); ++k) strides[k].push_back(full[k][static_cast<std::size_t>(d)]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (auto& s : strides) s.push_back(0);
  }
  if (dims.size() > static_cast<std::size_t>(kMaxDims))
    fail(ErrorKind::Unsupported,
         cat("elementwise op over ", dims.size(), " non-mergeable axes (at most ", kMaxDims, ")"));
  BroadcastPlan p;
  p.operands = static_cast<int>(inputs.size());
  p.rank = static_cast<int>(dims.size());
  p.numel = out.numel();
  for (int d = 0; d < p.rank; ++d) {
    p.dims[d] = dims[static_cast<std::size_t>(d)];
    for (int k = 0; k < p.operands; ++k)
      p.stride[k][d] = strides[static_cast<std::size_t>(k)][static_cast<std::size_t>(d)];
  }
  return p;
}

std::unique_ptr<Kernel> make_elementwise_kernel(const KernelEnv& env) {
  switch (op_family(env.n().kind)) {
    case OpFamily::Unary: return make_unary_kernel(env);
    case OpFamily::Binary: return make_binary_kernel(env);
    default: return make_ternary_kernel(env);
  }
}

}  // namespace trainrt::detail::cpu
