// runtime/cpu/multi_tensor.cpp — gradient_stats: whether any gradient holds an infinity or a
// NaN, and the sum of squares of all of them, in one pass (ir/op_multi_tensor.cpp).
//
// Every tensor is cut into chunks of kChunk elements, fixed by the shapes alone; chunks run in
// parallel, each writes its partial sum to scratch, and the partials are added in chunk order:
// the result has the same bits with any number of threads. Squares are added in f64, in eight
// independent lanes (so the loop vectorizes without reassociating anything). For f32 operands
// the f64 sum cannot overflow, so it is non-finite exactly when some element is; f64 operands
// also add x - x (0, or NaN for an infinity or a NaN), whose square could overflow.
#include <array>
#include <cmath>
#include <vector>

#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

constexpr std::int64_t kChunk = std::int64_t{1} << 16;

struct Chunk {
  std::int32_t input;
  std::int64_t begin, end;
};

struct Partial {
  double squares;
  double nonfinite;  // 0, or NaN when the chunk holds an infinity or a NaN
};

template <class T>
Partial reduce_chunk(const T* x, std::int64_t n) {
  constexpr int kLanes = 8;
  std::array<double, kLanes> sq{};
  std::array<double, kLanes> bad{};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const auto v = static_cast<double>(x[i + l]);
      sq[static_cast<std::size_t>(l)] += v * v;
      if constexpr (std::is_same_v<T, double>) bad[static_cast<std::size_t>(l)] += v - v;
    }
  }
  for (; i < n; ++i) {
    const auto v = static_cast<double>(x[i]);
    sq[0] += v * v;
    if constexpr (std::is_same_v<T, double>) bad[0] += v - v;
  }
  Partial p{0, 0};
  for (int l = 0; l < kLanes; ++l) {
    p.squares += sq[static_cast<std::size_t>(l)];
    p.nonfinite += bad[static_cast<std::size_t>(l)];
  }
  if constexpr (!std::is_same_v<T, double>) p.nonfinite = p.squares - p.squares;
  return p;
}

class GradientStatsKernel final : public Kernel {
 public:
  explicit GradientStatsKernel(const KernelEnv& env) {
    const std::size_t n = env.n().inputs.size();
    for (std::size_t i = 0; i < n; ++i) {
      dtypes_.push_back(env.in(i).dtype);
      const std::int64_t numel = env.in(i).shape.numel();
      for (std::int64_t b = 0; b < numel; b += kChunk)
        chunks_.push_back({static_cast<std::int32_t>(i), b, std::min(numel, b + kChunk)});
    }
    for (DType d : dtypes_) dispatch_floating(d, [](auto) {});  // f16/bf16 are legalized to f32 before this
  }

  std::size_t scratch_bytes() const override { return chunks_.size() * sizeof(Partial); }

  void run(const KernelArgs& args) override {
    auto* partials = static_cast<Partial*>(args.scratch);
    parallel_for(static_cast<std::int64_t>(chunks_.size()), 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t c = begin; c < end; ++c) {
        const Chunk& k = chunks_[static_cast<std::size_t>(c)];
        const auto in = static_cast<std::size_t>(k.input);
        partials[c] = dispatch_floating(dtypes_[in], [&](auto t) {
          using T = decltype(t);
          return reduce_chunk(static_cast<const T*>(args.in[in]) + k.begin, k.end - k.begin);
        });
      }
    });
    double squares = 0, nonfinite = 0;
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      squares += partials[c].squares;
      nonfinite += partials[c].nonfinite;
    }
    *static_cast<Bool*>(args.out[0]) = std::isnan(nonfinite) ? 1 : 0;
    *static_cast<float*>(args.out[1]) = static_cast<float>(squares);
  }

 private:
  std::vector<DType> dtypes_;
  std::vector<Chunk> chunks_;
};

}  // namespace

std::unique_ptr<Kernel> make_multi_tensor_kernel(const KernelEnv& env) {
  check_internal(env.n().kind == OpKind::GradientStats, "make_multi_tensor_kernel: not a multi-tensor op");
  return std::make_unique<GradientStatsKernel>(env);
}

}  // namespace trainrt::detail::cpu
