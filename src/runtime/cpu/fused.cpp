// runtime/cpu/fused.cpp — runs a generated kernel (codegen/emit_kernel.h) of a fused node.
//
// The work is cut into pieces of at most kSerialElements elements of one group each, fixed
// when the kernel is made; pieces run with tbb::parallel_for (several groups' pieces at
// once for the multi-tensor optimizer update). Each element is computed by one piece alone,
// so results do not depend on the thread count.
#include <utility>
#include <vector>

#include "core/error.h"
#include "ir/fused.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"

namespace trainrt::detail::cpu {

namespace {

class FusedKernel final : public Kernel {
 public:
  FusedKernel(const KernelEnv& env, CpuKernel k) : kernel_(std::move(k)), outputs_(env.n().outputs.size()) {
    const FusedBody& body = fused_body(env.n());
    for (std::size_t g = 0; g < body.groups.size(); ++g) {
      const std::int64_t n = body.groups[g].loop.numel();
      for (std::int64_t b = 0; b < n; b += kSerialElements)
        pieces_.push_back({static_cast<std::int64_t>(g), b, std::min(n, b + kSerialElements)});
    }
    buffers_.resize(env.n().inputs.size() + env.n().outputs.size());
  }

  void run(const KernelArgs& a) override {
    const std::size_t ins = buffers_.size() - outputs_;
    for (std::size_t i = 0; i < ins; ++i) buffers_[i] = const_cast<void*>(a.in[i]);
    for (std::size_t o = 0; o < outputs_; ++o) buffers_[ins + o] = a.out[o];
    void* const* b = buffers_.data();
    const CpuKernelFn fn = kernel_.fn;
    parallel_for(static_cast<std::int64_t>(pieces_.size()), 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = lo; p < hi; ++p) {
        const Piece& piece = pieces_[static_cast<std::size_t>(p)];
        fn(b, piece.group, piece.begin, piece.end);
      }
    });
  }

 private:
  struct Piece {
    std::int64_t group, begin, end;
  };
  CpuKernel kernel_;
  std::vector<Piece> pieces_;
  std::size_t outputs_;
  std::vector<void*> buffers_;  // operands then outputs; filled by run()
};

}  // namespace

std::unique_ptr<Kernel> make_fused_kernel(const KernelEnv& env) {
  const CpuKernel* k = env.fused ? &(*env.fused)[static_cast<std::size_t>(env.node)] : nullptr;
  check_internal(k != nullptr && k->fn != nullptr, "a fused node has no compiled kernel");
  return std::make_unique<FusedKernel>(env, *k);
}

}  // namespace trainrt::detail::cpu
