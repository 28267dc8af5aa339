#include "runtime/cpu/kernel.h"

#include "core/error.h"

namespace trainrt::detail::cpu {

void unsupported_dtype(const KernelEnv& env, DType dtype) {
  const Node& n = env.n();
  fail(ErrorKind::Unsupported, cat(op_name(n.kind), " at ", where(n.loc.file, n.loc.line), ": the CPU backend has no ",
                                   name(dtype), " kernel for this op"));
}

std::unique_ptr<Kernel> make_kernel(const KernelEnv& env) {
  const OpKind k = env.n().kind;
  switch (op_family(k)) {
    case OpFamily::State: return nullptr;
    case OpFamily::Unary:
    case OpFamily::Binary:
    case OpFamily::Ternary: return make_elementwise_kernel(env);
    case OpFamily::Shape: return k == OpKind::Reshape ? nullptr : make_shape_kernel(env);
    case OpFamily::Reduce: return make_reduce_kernel(env);
    case OpFamily::Matmul: return make_matmul_kernel(env);
    case OpFamily::Conv: return make_conv_kernel(env);
    case OpFamily::Pool: return make_pool_kernel(env);
    case OpFamily::Softmax:
    case OpFamily::Loss: return make_softmax_loss_kernel(env);
    case OpFamily::Norm: return make_norm_kernel(env);
    case OpFamily::Random: return make_dropout_kernel(env);
    case OpFamily::Embedding: return make_embedding_kernel(env);
    case OpFamily::Attention: return make_attention_kernel(env);
    case OpFamily::Collective: return make_collective_kernel(env);
    case OpFamily::MultiTensor: return make_multi_tensor_kernel(env);
    case OpFamily::Fused: return make_fused_kernel(env);
  }
  check_internal(false, "make_kernel: unknown family");
  return nullptr;
}

}  // namespace trainrt::detail::cpu
