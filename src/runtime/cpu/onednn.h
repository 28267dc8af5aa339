// runtime/cpu/onednn.h — the oneDNN engine and stream of one Program.
//
// Only files that call oneDNN include onednn_impl.h (and with it dnnl.hpp, a several-
// hundred-kilobyte header); everything else sees this forward-declared handle.
//
// Threads: Debian's oneDNN runs its primitives on an OpenMP pool, not on TBB. Convolutions
// run oneDNN single-threaded on batch pieces inside our TBB tasks (runtime/cpu/conv.cpp
// says why); large matmuls use an OpenMP team of the Program's thread count, small ones one
// thread. OpenMP's team size is a per-thread setting, so each kernel sets it right before
// it creates or runs a primitive: use_threads(n).
#pragma once

#include <memory>

namespace trainrt::detail::cpu {

class OneDnn {
 public:
  explicit OneDnn(int threads);
  ~OneDnn();
  OneDnn(const OneDnn&) = delete;
  OneDnn& operator=(const OneDnn&) = delete;

  /// Sizes the calling thread's OpenMP team for oneDNN calls made from it to the Program's
  /// thread count.
  void prepare_thread() const { use_threads(threads_); }
  /// Sizes the calling thread's OpenMP team to `n` (1: no team, nothing spins afterwards).
  static void use_threads(int n);
  static void single_thread() { use_threads(1); }
  int threads() const noexcept { return threads_; }

  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  int threads_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trainrt::detail::cpu
