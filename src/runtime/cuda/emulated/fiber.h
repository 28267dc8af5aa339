// runtime/cuda/emulated/fiber.h — user-level threads for the kernel emulator: the threads of a
// block whose kernel has barriers or warp primitives run as fibers on one OS thread, switched
// where they synchronize (DESIGN decision 12).
//
// On x86-64 a switch saves the callee-saved registers, the MXCSR and the x87 control word on
// the old stack and loads the new one's (no system call); elsewhere it is ucontext's
// swapcontext. Stacks come from mmap with a guard page below them. Under AddressSanitizer the
// switches are announced to it (__sanitizer_start/finish_switch_fiber).
#pragma once

#include <cstddef>

namespace trainrt::detail {

class FiberStack {
 public:
  /// `bytes` of stack (rounded up to pages) above one inaccessible guard page. Throws
  /// Error(Runtime) when the mapping fails.
  explicit FiberStack(std::size_t bytes);
  ~FiberStack();
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  void* bottom() const noexcept { return base_; }
  std::size_t size() const noexcept { return bytes_; }

 private:
  void* mapping_ = nullptr;
  void* base_ = nullptr;  // lowest usable address
  std::size_t bytes_ = 0, mapped_ = 0;
};

/// A saved execution state.
struct Fiber {
  void* sp = nullptr;                  // x86-64: the saved stack pointer
  void* context = nullptr;             // elsewhere: a ucontext_t
  const void* stack_bottom = nullptr;  // for AddressSanitizer
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  Fiber() = default;
  ~Fiber();  // NOLINT(performance-trivially-destructible): not trivial where ucontext is used
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
};

/// Prepares `fiber` to run entry(arg) on `stack` at its first switch_fiber(). `entry` must
/// never return: it ends by switching away for good.
void make_fiber(Fiber& fiber, FiberStack& stack, void (*entry)(void*), void* arg);
/// Saves the running state into `from` and continues `to`.
void switch_fiber(Fiber& from, Fiber& to);

}  // namespace trainrt::detail
