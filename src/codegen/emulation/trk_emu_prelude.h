// codegen/emulation/trk_emu_prelude.h — what a CUDA C++ source is compiled with by the host
// compiler for the emulated device (DESIGN decision 12): CUDA's execution-space keywords,
// threadIdx/blockIdx/blockDim/gridDim, __shared__ memory per block, barriers, 32-lane warp
// primitives, atomics, __ldg, the math intrinsics our kernels use, and __half/__nv_bfloat16
// from the toolkit's own headers.
//
// Not part of libtrainrt's build: codegen/cuda_host_source.cpp puts this text (with
// trk_emu_abi.h in place of its #include) in front of every rewritten source. The rewrite
// turns `__shared__ T name[N];` into a shared_array over the block's storage (below) and
// appends one trk_emu_kernel export per kernel. Something CUDA has that this lacks is a
// compile error of the host build that names it, never a silent difference.
//
// Shared memory is reached through small proxies (shared_ref, shared_array, shared_ptr): in
// checking mode every element access is reported to the runtime, which finds races between
// threads and reads of memory no thread wrote. Raw pointers into shared memory do not exist
// here (a `float* p = &tile[0];` does not compile): they would escape that tracking.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "trk_emu_abi.h"

// ---- execution spaces and qualifiers ----
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __restrict__
#undef __constant__
#undef __managed__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __constant__
#define __managed__ TRK_EMU_UNSUPPORTED_managed_memory

static const trk_emu_runtime* trk_emu_rt = nullptr;
static int trk_emu_checking = 0;
static thread_local trk_emu_thread* trk_emu_self = nullptr;

extern "C" __attribute__((visibility("default"))) int trk_emu_abi_version = TRK_EMU_ABI_VERSION;
extern "C" __attribute__((visibility("default"))) void trk_emu_bind(const trk_emu_runtime* rt) {
  trk_emu_rt = rt;
  trk_emu_checking = rt->check;
}

#define threadIdx (trk_emu_self->thread_idx)
#define blockIdx (trk_emu_self->block_idx)
#define blockDim (trk_emu_self->block_dim)
#define gridDim (trk_emu_self->grid_dim)
#define warpSize 32

namespace trk_emu {

// A hook may switch this OS thread to another emulated thread's fiber and back: the module's
// notion of "the current thread" is restored from the caller's own stack afterwards.
struct keep_self {
  trk_emu_thread* me = trk_emu_self;
  ~keep_self() { trk_emu_self = me; }
};

[[noreturn]] inline void fault(const char* message, int line) {
  trk_emu_rt->fault(trk_emu_self, message, line);
  __builtin_unreachable();
}

inline int barrier(int kind, int predicate, int line) {
  keep_self k;
  return trk_emu_rt->syncthreads(k.me, kind, predicate, line);
}

template <class T>
unsigned long long to_bits(const T& v) {
  static_assert(sizeof(T) <= 8, "the emulated warp primitives exchange values of at most 8 bytes");
  unsigned long long b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(unsigned long long b) {
  T v;
  std::memcpy(static_cast<void*>(&v), &b, sizeof(T));
  return v;
}

template <class T>
T warp(int kind, unsigned mask, const T& v, int arg, int width, int line) {
  keep_self k;
  return from_bits<T>(trk_emu_rt->warp_op(k.me, kind, mask, to_bits(v), static_cast<int>(sizeof(T)), arg, width, line));
}

inline unsigned warp_vote(int kind, unsigned mask, int predicate, int line) {
  keep_self k;
  return static_cast<unsigned>(trk_emu_rt->warp_op(k.me, kind, mask, predicate != 0, 4, 0, 32, line));
}

inline void track(const void* at, std::size_t bytes, int write) {
  if (trk_emu_checking) trk_emu_rt->shared_access(trk_emu_self, at, bytes, write);
}

// ---- shared memory ----
template <class T>
class shared_ptr;

// One element of shared memory.
template <class T>
class shared_ref {
 public:
  explicit shared_ref(T* p) : p_(p) {}
  operator T() const {
    track(p_, sizeof(T), 0);
    return *p_;
  }
  shared_ref& operator=(const T& v) {
    track(p_, sizeof(T), 1);
    *p_ = v;
    return *this;
  }
  shared_ref& operator=(const shared_ref& o) { return *this = static_cast<T>(o); }
#define TRK_EMU_COMPOUND(op)               \
  template <class U>                       \
  shared_ref& operator op##=(const U& u) { \
    T v = static_cast<T>(*this);           \
    v = static_cast<T>(v op u);            \
    return *this = v;                      \
  }
  TRK_EMU_COMPOUND(+)
  TRK_EMU_COMPOUND(-)
  TRK_EMU_COMPOUND(*)
  TRK_EMU_COMPOUND(/)
  TRK_EMU_COMPOUND(%)
  TRK_EMU_COMPOUND(&)
  TRK_EMU_COMPOUND(|)
  TRK_EMU_COMPOUND(^)
  TRK_EMU_COMPOUND(<<)
  TRK_EMU_COMPOUND(>>)
#undef TRK_EMU_COMPOUND
  shared_ref& operator++() { return *this += 1; }
  shared_ref& operator--() { return *this -= 1; }
  T operator++(int) {
    T v = *this;
    *this += 1;
    return v;
  }
  T operator--(int) {
    T v = *this;
    *this -= 1;
    return v;
  }
  shared_ptr<T> operator&() const { return shared_ptr<T>(p_); }
  T* raw() const { return p_; }

 private:
  T* p_;
};

template <class T>
class shared_array;

// An element of type E: a shared_ref, or for an array element a shared_array view of it.
template <class E>
auto element(E* p, const char* name) {
  if constexpr (std::is_array_v<E>) return shared_array<E>(static_cast<void*>(p), name);
  else return shared_ref<E>(p);
}

template <class T, std::size_t N>
class shared_array<T[N]> {
 public:
  shared_array(void* p, const char* name) : p_(static_cast<T*>(p)), name_(name) {}
  template <class I>
  auto operator[](I i) const {
    if (trk_emu_checking && (static_cast<long long>(i) < 0 || static_cast<unsigned long long>(i) >= N)) {
      char text[160];
      std::snprintf(text, sizeof(text), "shared-memory index %lld is out of the bounds of %s[%llu]",
                    static_cast<long long>(i), name_, static_cast<unsigned long long>(N));
      fault(text, 0);
    }
    return element<T>(p_ + i, name_);
  }
  operator shared_ptr<T>() const { return shared_ptr<T>(p_); }
  template <class I>
  shared_ptr<T> operator+(I i) const {
    return shared_ptr<T>(p_ + i);
  }

 private:
  T* p_;
  const char* name_;
};

// extern __shared__ T name[]: bounded by the launch's dynamic shared-memory size.
template <class T>
class shared_array<T[]> {
 public:
  shared_array(void* p, unsigned long long bytes, const char* name)
      : p_(static_cast<T*>(p)), n_(bytes / sizeof(T)), name_(name) {}
  template <class I>
  auto operator[](I i) const {
    if (trk_emu_checking && (static_cast<long long>(i) < 0 || static_cast<unsigned long long>(i) >= n_)) {
      char text[200];
      std::snprintf(text, sizeof(text),
                    "dynamic shared-memory index %lld is out of the bounds of %s[] (%llu elements of the launch's "
                    "shared bytes)",
                    static_cast<long long>(i), name_, n_);
      fault(text, 0);
    }
    return element<T>(p_ + i, name_);
  }
  operator shared_ptr<T>() const { return shared_ptr<T>(p_); }
  template <class I>
  shared_ptr<T> operator+(I i) const {
    return shared_ptr<T>(p_ + i);
  }

 private:
  T* p_;
  unsigned long long n_;
  const char* name_;
};

// A pointer into shared memory (from &element or array + offset), tracked like the array.
template <class T>
class shared_ptr {
 public:
  explicit shared_ptr(T* p) : p_(p) {}
  template <class I>
  shared_ref<T> operator[](I i) const {
    return shared_ref<T>(p_ + i);
  }
  shared_ref<T> operator*() const { return shared_ref<T>(p_); }
  template <class I>
  shared_ptr operator+(I i) const {
    return shared_ptr(p_ + i);
  }
  template <class I>
  shared_ptr operator-(I i) const {
    return shared_ptr(p_ - i);
  }
  template <class I>
  shared_ptr& operator+=(I i) {
    p_ += i;
    return *this;
  }
  shared_ptr& operator++() {
    ++p_;
    return *this;
  }
  bool operator==(const shared_ptr& o) const { return p_ == o.p_; }
  bool operator!=(const shared_ptr& o) const { return p_ != o.p_; }
  T* raw() const { return p_; }

 private:
  T* p_;
};

// A scalar __shared__ variable.
template <class T>
class shared_scalar : public shared_ref<T> {
 public:
  shared_scalar(void* p, const char*) : shared_ref<T>(static_cast<T*>(p)) {}
  using shared_ref<T>::operator=;
};

inline void* shared_static(int site, const char* name, std::size_t bytes, std::size_t align) {
  return trk_emu_rt->shared_static(trk_emu_self, site, name, bytes, align);
}
inline void* shared_dynamic(unsigned long long* bytes) { return trk_emu_rt->shared_dynamic(trk_emu_self, bytes); }

template <class T>
struct declared;  // the proxy type of a __shared__ declaration of type T
template <class T, std::size_t N>
struct declared<T[N]> {
  using type = shared_array<T[N]>;
};
template <class T>
struct declared {
  using type = shared_scalar<T>;
};

template <class T>
typename declared<T>::type declare_shared(int site, const char* name) {
  return typename declared<T>::type(shared_static(site, name, sizeof(T), alignof(std::remove_all_extents_t<T>)), name);
}
template <class T>
shared_array<T[]> declare_dynamic(const char* name) {
  unsigned long long bytes = 0;
  void* p = shared_dynamic(&bytes);
  return shared_array<T[]>(p, bytes, name);
}

// ---- kernel entry: unpacking cuLaunchKernel's parameter array ----
template <class A>
constexpr unsigned char param_kind() {
  if constexpr (!std::is_pointer_v<A>) return TRK_EMU_PARAM_VALUE;
  else if constexpr (std::is_const_v<std::remove_pointer_t<A>>) return TRK_EMU_PARAM_CONST_POINTER;
  else return TRK_EMU_PARAM_POINTER;
}

template <class... A>
struct signature {
  static constexpr unsigned long long sizes[sizeof...(A) + 1] = {sizeof(A)..., 0};
  static constexpr unsigned char kinds[sizeof...(A) + 1] = {param_kind<A>()..., 0};
};

template <class... A, std::size_t... I>
void call(void (*kernel)(A...), void* const* args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

template <class... A>
trk_emu_kernel describe(void (*)(A...), const char* name, int uses_sync, void (*run)(trk_emu_thread*, void* const*)) {
  return trk_emu_kernel{name, static_cast<int>(sizeof...(A)), uses_sync, signature<A...>::sizes, signature<A...>::kinds,
                        run};
}

template <class... A>
void invoke(void (*kernel)(A...), trk_emu_thread* self, void* const* args) {
  trk_emu_self = self;
  call(kernel, args, std::index_sequence_for<A...>{});
}

}  // namespace trk_emu

#define TRK_EMU_EXPORT(kernel, uses_sync)                                                          \
  static void trk_emu_run_##kernel(trk_emu_thread* self, void* const* args) {                      \
    ::trk_emu::invoke(&kernel, self, args);                                                        \
  }                                                                                                \
  extern "C" __attribute__((visibility("default"))) const trk_emu_kernel trk_emu_kernel_##kernel = \
      ::trk_emu::describe(&kernel, #kernel, uses_sync, &trk_emu_run_##kernel);

// ---- barriers and warp primitives (CUDA Programming Guide, "Warp Shuffle Functions" and
// "Warp Vote Functions"; masks, widths and lanes out of range as documented there) ----
#define __syncthreads() ::trk_emu::barrier(TRK_EMU_BARRIER, 1, __LINE__)
#define __syncthreads_count(p) ::trk_emu::barrier(TRK_EMU_BARRIER_COUNT, (p) ? 1 : 0, __LINE__)
#define __syncthreads_and(p) ::trk_emu::barrier(TRK_EMU_BARRIER_AND, (p) ? 1 : 0, __LINE__)
#define __syncthreads_or(p) ::trk_emu::barrier(TRK_EMU_BARRIER_OR, (p) ? 1 : 0, __LINE__)
#define __syncwarp(...) ::trk_emu::syncwarp(__LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, v, lane, ...) ::trk_emu::shfl(TRK_EMU_SHFL, mask, v, lane, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::trk_emu::shfl(TRK_EMU_SHFL_UP, mask, v, d, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) ::trk_emu::shfl(TRK_EMU_SHFL_DOWN, mask, v, d, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) ::trk_emu::shfl(TRK_EMU_SHFL_XOR, mask, v, m, __LINE__, ##__VA_ARGS__)
#define __ballot_sync(mask, p) ::trk_emu::warp_vote(TRK_EMU_BALLOT, mask, (p) ? 1 : 0, __LINE__)
#define __any_sync(mask, p) (::trk_emu::warp_vote(TRK_EMU_ANY, mask, (p) ? 1 : 0, __LINE__) != 0)
#define __all_sync(mask, p) (::trk_emu::warp_vote(TRK_EMU_ALL, mask, (p) ? 1 : 0, __LINE__) != 0)

namespace trk_emu {
inline void syncwarp(int line, unsigned mask = 0xffffffffu) {
  keep_self k;
  (void)trk_emu_rt->warp_op(k.me, TRK_EMU_SYNCWARP, mask, 0, 4, 0, 32, line);
}
template <class T>
T shfl(int kind, unsigned mask, const T& v, int arg, int line, int width = 32) {
  return warp(kind, mask, v, arg, width, line);
}
}  // namespace trk_emu

inline unsigned __activemask() {
  unsigned long long lanes = trk_emu_rt->warp_op(trk_emu_self, -1, 0, 0, 4, 0, 32, 0);  // kind -1: no sync
  return static_cast<unsigned>(lanes);
}

// ---- memory fences, __ldg, atomics (host atomics on the emulated device's host memory) ----
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

namespace trk_emu {
template <class T, class F>
T atomic_update(T* p, F f) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "emulated atomics take 4- and 8-byte values");
  using U = std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>;
  U* u = reinterpret_cast<U*>(p);
  U old = __atomic_load_n(u, __ATOMIC_RELAXED);
  for (;;) {
    T before;
    std::memcpy(&before, &old, sizeof(T));
    const T after = f(before);
    U next;
    std::memcpy(&next, &after, sizeof(T));
    if (__atomic_compare_exchange_n(u, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return before;
  }
}
// Shared-memory atomics: tracked as one read and one write; atomics never race each other,
// so they are reported as reads (a plain access of another thread still conflicts).
template <class T, class F>
T atomic_update(shared_ptr<T> p, F f) {
  track(p.raw(), sizeof(T), 0);
  return atomic_update(p.raw(), f);
}
}  // namespace trk_emu

#define TRK_EMU_ATOMICS(T)                                                          \
  inline T atomicAdd(T* p, T v) {                                                   \
    return ::trk_emu::atomic_update(p, [&](T x) { return static_cast<T>(x + v); }); \
  }                                                                                 \
  inline T atomicAdd(::trk_emu::shared_ptr<T> p, T v) {                             \
    return ::trk_emu::atomic_update(p, [&](T x) { return static_cast<T>(x + v); }); \
  }                                                                                 \
  inline T atomicSub(T* p, T v) {                                                   \
    return ::trk_emu::atomic_update(p, [&](T x) { return static_cast<T>(x - v); }); \
  }                                                                                 \
  inline T atomicExch(T* p, T v) {                                                  \
    return ::trk_emu::atomic_update(p, [&](T) { return v; });                       \
  }                                                                                 \
  inline T atomicMax(T* p, T v) {                                                   \
    return ::trk_emu::atomic_update(p, [&](T x) { return x < v ? v : x; });         \
  }                                                                                 \
  inline T atomicMin(T* p, T v) {                                                   \
    return ::trk_emu::atomic_update(p, [&](T x) { return v < x ? v : x; });         \
  }                                                                                 \
  inline T atomicMax(::trk_emu::shared_ptr<T> p, T v) {                             \
    return ::trk_emu::atomic_update(p, [&](T x) { return x < v ? v : x; });         \
  }                                                                                 \
  inline T atomicMin(::trk_emu::shared_ptr<T> p, T v) {                             \
    return ::trk_emu::atomic_update(p, [&](T x) { return v < x ? v : x; });         \
  }
TRK_EMU_ATOMICS(int)
TRK_EMU_ATOMICS(unsigned)
TRK_EMU_ATOMICS(unsigned long long)
TRK_EMU_ATOMICS(long long)
#undef TRK_EMU_ATOMICS
inline float atomicAdd(float* p, float v) {
  return ::trk_emu::atomic_update(p, [&](float x) { return x + v; });
}
inline double atomicAdd(double* p, double v) {
  return ::trk_emu::atomic_update(p, [&](double x) { return x + v; });
}
inline float atomicAdd(::trk_emu::shared_ptr<float> p, float v) {
  return ::trk_emu::atomic_update(p, [&](float x) { return x + v; });
}
inline float atomicExch(float* p, float v) {
  return ::trk_emu::atomic_update(p, [&](float) { return v; });
}
inline int atomicCAS(int* p, int compare, int v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}
inline unsigned atomicCAS(unsigned* p, unsigned compare, unsigned v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare, unsigned long long v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAnd(int* p, int v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAnd(unsigned* p, unsigned v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }

// ---- integer and bit intrinsics ----
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}

// ---- reinterpretation ----
inline float __int_as_float(int x) { return ::trk_emu::from_bits<float>(static_cast<unsigned>(x)); }
inline int __float_as_int(float x) { return static_cast<int>(::trk_emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return ::trk_emu::from_bits<float>(x); }
inline unsigned __float_as_uint(float x) { return static_cast<unsigned>(::trk_emu::to_bits(x)); }
inline double __longlong_as_double(long long x) {
  return ::trk_emu::from_bits<double>(static_cast<unsigned long long>(x));
}
inline long long __double_as_longlong(double x) { return static_cast<long long>(::trk_emu::to_bits(x)); }

// ---- floating point: CUDA's device math library names, and the fast intrinsics computed
// exactly (the emulator's results follow the IEEE functions, not the GPU's approximations) ----
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / std::cbrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x != x ? 0.0f : x)); }
inline float exp10f(float x) { return std::pow(10.0f, x); }
inline float normcdff(float x) { return 0.5f * std::erfc(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752); }
inline float fdividef(float x, float y) { return x / y; }

// ---- no timing, no PTX ----
#define clock() TRK_EMU_UNSUPPORTED_clock_the_emulator_has_no_timing
#define clock64() TRK_EMU_UNSUPPORTED_clock64_the_emulator_has_no_timing
#define __nanosleep(ns) TRK_EMU_UNSUPPORTED_nanosleep_the_emulator_has_no_timing

// A failed assert ends the kernel with an emulator error instead of aborting the process.
#undef assert
#define assert(e) ((e) ? (void)0 : ::trk_emu::fault("assertion failed: " #e, __LINE__))
