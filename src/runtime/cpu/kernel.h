// runtime/cpu/kernel.h — the CPU backend's kernel interface.
//
// A Kernel is made once per scheduled node when a Program is compiled ("prepare": shapes,
// strides, oneDNN primitives are fixed then) and run once per step with the node's buffers.
// Kernels split their loops with tbb::parallel_for; they run inside the Program's task
// arena, so the arena's size bounds their threads. A kernel never allocates in run():
// temporary space is scratch, planned into the arena with everything else.
//
// To add an op: infer its type (ir/op_*.cpp), give it a gradient rule (autodiff/grad_*.cpp)
// and a kernel here (the family's make_*_kernel), then add its finite-difference gradient
// check to tests/autodiff_test.cpp (or the family's own test file) and a comparison with a
// naive loop or an f64 reference to tests/kernels_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "compile/kernel_builder.h"
#include "ir/graph_impl.h"

namespace trainrt::dist {
class Communicator;
}

namespace trainrt::detail::cpu {

class OneDnn;

/// Buffers of one node for one step.
struct KernelArgs {
  const void* const* in;  // one per node operand, nullptr where the operand is absent
  void* const* out;       // one per node output
  void* scratch;          // scratch_bytes() bytes, 64-byte aligned (nullptr when 0)
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  /// Computes the node's outputs. Throws trainrt::Error for data-dependent failures
  /// (an index out of range); never aborts.
  virtual void run(const KernelArgs& args) = 0;
  /// Scratch space run() needs (default none).
  virtual std::size_t scratch_bytes() const { return 0; }
};

/// What a kernel factory sees.
struct KernelEnv {
  const GraphImpl& graph;
  std::int32_t node{};
  int threads{};  // size of the Program's task arena
  OneDnn& dnn;
  const std::vector<CpuKernel>* fused = nullptr;  // compiled kernels of fused nodes, by node
  dist::Communicator* comm = nullptr;             // data-parallel programs: their ranks
  const Node& n() const { return graph.node(node); }
  const TensorType& in(std::size_t i) const { return graph.type(n().inputs[i]); }
  bool has(std::size_t i) const { return i < n().inputs.size() && n().inputs[i].valid(); }
  const TensorType& out(std::size_t i) const { return n().outputs[i]; }
};

/// The kernel of env's node, or nullptr when the node needs none (inputs, variables,
/// constants, reshapes and assignments are handled by the executor). Throws Unsupported
/// for an op/dtype combination the CPU backend lacks.
std::unique_ptr<Kernel> make_kernel(const KernelEnv& env);

// One factory per op family (runtime/cpu/<family>.cpp).
std::unique_ptr<Kernel> make_elementwise_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_shape_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_reduce_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_matmul_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_conv_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_pool_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_softmax_loss_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_norm_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_embedding_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_dropout_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_attention_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_fused_kernel(const KernelEnv& env);  // runtime/cpu/fused.cpp
std::unique_ptr<Kernel> make_collective_kernel(const KernelEnv& env);
std::unique_ptr<Kernel> make_multi_tensor_kernel(const KernelEnv& env);  // runtime/cpu/multi_tensor.cpp

/// Throws Unsupported naming the op, its dtype and the CPU backend.
[[noreturn]] void unsupported_dtype(const KernelEnv& env, DType dtype);

}  // namespace trainrt::detail::cpu
