// runtime/cpu/embedding.cpp — table lookup and its backward (scatter-add).
//
// The backward sums rows of g into the rows of the table that were looked up. To keep the
// order of additions fixed whatever the threads, work is split over tiles of columns and
// every tile walks the indices in order.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

template <class T, class I>
class EmbeddingKernel final : public Kernel {
 public:
  EmbeddingKernel(bool backward, std::int64_t count, std::int64_t rows, std::int64_t dim, SourceLoc loc)
      : backward_(backward), count_(count), rows_(rows), dim_(dim), loc_(loc) {}

  void run(const KernelArgs& a) override {
    if (backward_) {
      const T* g = static_cast<const T*>(a.in[0]);
      const I* idx = static_cast<const I*>(a.in[1]);
      T* table = static_cast<T*>(a.out[0]);
      std::memset(table, 0, static_cast<std::size_t>(rows_ * dim_) * sizeof(T));
      for (std::int64_t i = 0; i < count_; ++i) check(idx[i], i);
      constexpr std::int64_t kTile = 64;
      const std::int64_t tiles = (dim_ + kTile - 1) / kTile;
      parallel_for(tiles, grain_for(count_ * std::min(kTile, dim_)), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t t = b; t < e; ++t) {
          const std::int64_t j0 = t * kTile, len = std::min(kTile, dim_ - j0);
          for (std::int64_t i = 0; i < count_; ++i) {
            T* dst = table + static_cast<std::int64_t>(idx[i]) * dim_ + j0;
            const T* src = g + i * dim_ + j0;
            for (std::int64_t j = 0; j < len; ++j) dst[j] += src[j];
          }
        }
      });
      return;
    }
    const T* table = static_cast<const T*>(a.in[0]);
    const I* idx = static_cast<const I*>(a.in[1]);
    T* out = static_cast<T*>(a.out[0]);
    parallel_for(count_, grain_for(dim_), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        check(idx[i], i);
        std::memcpy(out + i * dim_, table + static_cast<std::int64_t>(idx[i]) * dim_,
                    static_cast<std::size_t>(dim_) * sizeof(T));
      }
    });
  }

 private:
  void check(I index, std::int64_t position) const {
    if (index < 0 || static_cast<std::int64_t>(index) >= rows_)
      fail(ErrorKind::InvalidArgument,
           cat("embedding at ", where(loc_.file, loc_.line), ": index ", static_cast<std::int64_t>(index),
               " at position ", position, " is out of range [0, ", rows_, ")"));
  }

  bool backward_;
  std::int64_t count_, rows_, dim_;
  SourceLoc loc_;
};

}  // namespace

std::unique_ptr<Kernel> make_embedding_kernel(const KernelEnv& env) {
  const Node& n = env.n();
  const bool backward = n.kind == OpKind::EmbeddingBackward;
  const TensorType& table = backward ? env.out(0) : env.in(0);
  const TensorType& idx = env.in(1);
  return dispatch_floating(table.dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return dispatch_index(idx.dtype, [&](auto i) -> std::unique_ptr<Kernel> {
      return std::make_unique<EmbeddingKernel<decltype(t), decltype(i)>>(backward, idx.shape.numel(), table.shape[0],
                                                                         table.shape[1], n.loc);
    });
  });
}

}  // namespace trainrt::detail::cpu
