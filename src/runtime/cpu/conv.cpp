// runtime/cpu/conv.cpp — PLACEHOLDER while the kernel is written (not part of any commit).
#include "runtime/cpu/kernel.h"

namespace trainrt::detail::cpu {

std::unique_ptr<Kernel> make_conv_kernel(const KernelEnv& env) { unsupported_dtype(env, env.out(0).dtype); }

}  // namespace trainrt::detail::cpu
