// runtime/cpu/dropout.cpp — dropout with counter-based random numbers.
//
// Element i keeps its value (scaled by 1/(1-p)) when u >= p, where u is uniform in [0, 1)
// from word i % 4 of Philox4x32-10(key, counter = (i / 4, step)). Any backend computing
// the same formula draws the same mask, and the backward op (the same kernel applied to
// the gradient) needs no saved mask.
#include "core/philox.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

template <class T>
class DropoutKernel final : public Kernel {
 public:
  DropoutKernel(std::int64_t n, DropoutAttrs a) : n_(n), a_(a) {}
  void run(const KernelArgs& args) override {
    const T* x = static_cast<const T*>(args.in[0]);
    const auto step = static_cast<std::uint64_t>(*static_cast<const std::int64_t*>(args.in[1]));
    T* y = static_cast<T*>(args.out[0]);
    const auto p = static_cast<float>(a_.p);
    const T scale = static_cast<T>(1.0 / (1.0 - a_.p));
    // Chunks start on multiples of 4 so each Philox call serves four elements.
    parallel_for((n_ + 3) / 4, kSerialElements / 16, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t q = b; q < e; ++q) {
        const Philox4x32 r = philox4x32_10(a_.key, static_cast<std::uint64_t>(q), step);
        for (std::int64_t w = 0; w < 4; ++w) {
          const std::int64_t i = q * 4 + w;
          if (i >= n_) break;
          y[i] = uniform01(r.v[w]) >= p ? x[i] * scale : T(0);
        }
      }
    });
  }

 private:
  std::int64_t n_;
  DropoutAttrs a_;
};

}  // namespace

std::unique_ptr<Kernel> make_dropout_kernel(const KernelEnv& env) {
  const DropoutAttrs a = std::get<DropoutAttrs>(env.n().attrs);
  // Dropout itself is lowered to dropout_apply (or removed) before kernels are made.
  if (env.n().kind != OpKind::DropoutApply) unsupported_dtype(env, env.out(0).dtype);
  return dispatch_floating(env.out(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return std::make_unique<DropoutKernel<decltype(t)>>(env.out(0).shape.numel(), a);
  });
}

}  // namespace trainrt::detail::cpu
