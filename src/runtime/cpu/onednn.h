// runtime/cpu/onednn.h — the oneDNN engine and stream of one Program.
//
// Only files that call oneDNN include onednn_impl.h (and with it dnnl.hpp, a several-
// hundred-kilobyte header); everything else sees this forward-declared handle.
//
// Threads: Debian's oneDNN runs its primitives on an OpenMP pool, not on TBB. Before a step
// the executor calls prepare_thread() so that pool has as many threads as the Program's
// task arena; the two pools take turns (kernels run one at a time in this executor).
#pragma once

#include <memory>

namespace trainrt::detail::cpu {

class OneDnn {
 public:
  explicit OneDnn(int threads);
  ~OneDnn();
  OneDnn(const OneDnn&) = delete;
  OneDnn& operator=(const OneDnn&) = delete;

  /// Sizes the calling thread's OpenMP team for oneDNN calls made from it.
  void prepare_thread() const;
  int threads() const noexcept { return threads_; }

  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trainrt::detail::cpu
