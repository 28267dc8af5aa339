// exec/cpu_backend.h — the CPU backend: plans run by exec/executor.h in the Program's task
// arena, kernels from runtime/cpu (oneDNN for matmul and convolution, generated C++ for fused
// nodes), variables in host memory (their VariableStore entries hold the values).
#pragma once

#include <memory>

#include "exec/backend.h"

namespace trainrt::detail {

/// `threads` computing threads (> 0); `collectives`: the Program runs collective nodes, whose
/// waits take one more arena slot so that `threads` keep computing.
std::unique_ptr<Backend> make_cpu_backend(int threads, bool collectives);

}  // namespace trainrt::detail
