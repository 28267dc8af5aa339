// runtime/cuda/emulated/fiber.cpp — stacks and the context switch.
#include "runtime/cuda/emulated/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "core/error.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRAINRT_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TRAINRT_FIBER_ASAN 1
#endif
#if defined(TRAINRT_FIBER_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
// trainrt_fiber_switch(void** save_sp, void* load_sp): pushes the callee-saved registers and
// the floating-point control words, stores the stack pointer, loads the other and pops its.
// trainrt_fiber_start: the first "return" of a new fiber lands here with entry in r12 and its
// argument in r13 (make_fiber puts them in the initial frame).
__asm__(
    ".text\n"
    ".globl trainrt_fiber_switch\n"
    ".type trainrt_fiber_switch,@function\n"
    "trainrt_fiber_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size trainrt_fiber_switch,.-trainrt_fiber_switch\n"
    ".globl trainrt_fiber_start\n"
    ".type trainrt_fiber_start,@function\n"
    "trainrt_fiber_start:\n"
    "  movq %r13, %rdi\n"
    "  callq *%r12\n"
    "  ud2\n"
    ".size trainrt_fiber_start,.-trainrt_fiber_start\n");
extern "C" void trainrt_fiber_switch(void** save_sp, void* load_sp);
extern "C" void trainrt_fiber_start();
#endif

namespace trainrt::detail {

FiberStack::FiberStack(std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  bytes_ = (bytes + page - 1) / page * page;
  mapped_ = bytes_ + page;
  mapping_ = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    fail(ErrorKind::Runtime, cat("emulated device: cannot map a fiber stack of ", bytes_, " bytes"));
  }
  mprotect(mapping_, page, PROT_NONE);  // the guard page: an overflow faults instead of corrupting
  base_ = static_cast<char*>(mapping_) + page;
}

FiberStack::~FiberStack() {
  if (mapping_ != nullptr) munmap(mapping_, mapped_);
}

#if defined(__x86_64__)
Fiber::~Fiber() = default;
#else
Fiber::~Fiber() { delete static_cast<ucontext_t*>(context); }
#endif

void make_fiber(Fiber& fiber, FiberStack& stack, void (*entry)(void*), void* arg) {
  fiber.stack_bottom = stack.bottom();
  fiber.stack_size = stack.size();
#if defined(__x86_64__)
  // The initial frame, from a 16-byte aligned top: the return address (trainrt_fiber_start;
  // its `ret` leaves the stack pointer at the aligned top, as a call needs), rbp, rbx,
  // r12 = entry, r13 = arg, r14, r15, and the control words.
  auto top = reinterpret_cast<std::uintptr_t>(stack.bottom()) + stack.size();
  top &= ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uint64_t*>(top);  // NOLINT(performance-no-int-to-ptr): a stack being built
  *--slot = reinterpret_cast<std::uint64_t>(&trainrt_fiber_start);
  *--slot = 0;                                       // rbp
  *--slot = 0;                                       // rbx
  *--slot = reinterpret_cast<std::uint64_t>(entry);  // r12
  *--slot = reinterpret_cast<std::uint64_t>(arg);    // r13
  *--slot = 0;                                       // r14
  *--slot = 0;                                       // r15
  std::uint32_t control[2] = {0, 0};
  __asm__ volatile("stmxcsr %0" : "=m"(control[0]));
  __asm__ volatile("fnstcw %0" : "=m"(control[1]));
  std::uint64_t words = 0;
  std::memcpy(&words, control, 4);
  std::uint16_t cw = 0;
  std::memcpy(&cw, &control[1], 2);
  words |= static_cast<std::uint64_t>(cw) << 32;
  *--slot = words;
  fiber.sp = slot;
#else
  auto* ctx = static_cast<ucontext_t*>(fiber.context);
  if (ctx == nullptr) fiber.context = ctx = new ucontext_t{};
  getcontext(ctx);
  ctx->uc_stack.ss_sp = stack.bottom();
  ctx->uc_stack.ss_size = stack.size();
  ctx->uc_link = nullptr;
  // makecontext passes int arguments: the pointer travels in two halves.
  const auto bits = reinterpret_cast<std::uintptr_t>(arg);
  static void (*const trampoline)(unsigned, unsigned, unsigned, unsigned) = [](unsigned e0, unsigned e1, unsigned a0,
                                                                               unsigned a1) {
    auto* fn = reinterpret_cast<void (*)(void*)>((std::uintptr_t{e1} << 32) | e0);
    fn(reinterpret_cast<void*>((std::uintptr_t{a1} << 32) | a0));
  };
  const auto fn_bits = reinterpret_cast<std::uintptr_t>(entry);
  makecontext(ctx, reinterpret_cast<void (*)()>(trampoline), 4, static_cast<unsigned>(fn_bits),
              static_cast<unsigned>(fn_bits >> 32), static_cast<unsigned>(bits), static_cast<unsigned>(bits >> 32));
#endif
}

void switch_fiber(Fiber& from, Fiber& to) {
#if defined(TRAINRT_FIBER_ASAN)
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.stack_bottom, to.stack_size);
#endif
#if defined(__x86_64__)
  trainrt_fiber_switch(&from.sp, to.sp);
#else
  if (from.context == nullptr) from.context = new ucontext_t{};
  swapcontext(static_cast<ucontext_t*>(from.context), static_cast<ucontext_t*>(to.context));
#endif
#if defined(TRAINRT_FIBER_ASAN)
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
}

}  // namespace trainrt::detail
