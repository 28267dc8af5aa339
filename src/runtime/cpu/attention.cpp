// runtime/cpu/attention.cpp — scaled dot-product attention and its fused backward, blocked
// in the style of FlashAttention-2 (Dao 2023, arXiv:2307.08691).
//
// For each leading index b (batch and heads flattened), with scores S = scale * Q K^T set
// to -inf where the mask is false or (causal) key j > query i:
//   forward:  out = softmax(S) V,   lse_i = log sum_j exp(S_ij)
//   backward: P = exp(S - lse), dV = P^T g, dP = g V^T, dS = P * (dP - rowsum(g * out)),
//             dQ = scale * dS K,   dK = scale * dS^T Q
// A query row with no visible key gets out = 0 and lse = -inf; the backward treats its P
// as zero, so no gradient flows through it.
//
// Tiles. Work is cut into tiles of kBlockQ queries by kBlockK keys, so no buffer grows with
// Lq * Lk. Each task holds one tile of the operand it does not loop over, transposed once,
// as the right-hand factor of its tile products (whose rows must be contiguous); the tiles
// it loops over are read in place as the left-hand factor, at any strides.
//   forward   one task per query tile walks the key tiles with an online softmax (a running
//             max and sum per query; the accumulator is rescaled when the max grows). Its
//             score tiles are key-major, S^T = K Q^T.
//   backward  two passes, both recomputing P and dS from the saved lse: one task per key
//             tile sums dK and dV over the query tiles in order (query-major tiles,
//             S = Q K^T), then one task per query tile sums dQ over the key tiles in order
//             (key-major tiles). This costs about 40% more arithmetic than one pass adding
//             into dQ atomically, but every sum has a fixed order.
// Determinism: the tiles and every order of summation are fixed by the shapes alone, so the
// bits do not depend on the number of threads. (They may differ in the last bits between
// machines with different vector instruction sets: the tile products are picked at run time,
// and the AVX2 and AVX-512 versions fuse multiply-adds.)
//
// Precision: a tile product sums at most kBlock (or D) terms in T; sums across tiles, the
// softmax statistics and rowsum(g * out) are kept in double. f32 exponentials use a
// vectorized exp_f32 (< 1 ulp; vec_kernels.h).
//
// Scratch: one slot per worker of the Program's task arena, picked with
// tbb::this_task_arena::current_thread_index(). A task never waits inside TBB (there is no
// nested parallelism here), so a worker cannot start a second task of this kernel while
// one is half done, and two running tasks never share a slot.
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "runtime/cpu/accumulate.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"
#include "runtime/cpu/vec_kernels.h"

namespace trainrt::detail::cpu {

namespace {

// 64 x 64 tiles keep the score tiles and the transposed tile of a task (D = 64) within L2
// while leaving enough tasks for the threads at typical sequence lengths.
constexpr std::int64_t kBlockQ = 64;
constexpr std::int64_t kBlockK = 64;

// ---- tile products --------------------------------------------------------------------------

/// c[m x n] = a[m x k] b[k x n]. Element (i, p) of a is a[i * a_rs + p * a_cs] (any strides:
/// a is read one scalar at a time); b and c are row-major with leading dimensions. Vectors
/// of kBytes use GCC's vector extension (also in Clang), so any target gets its own
/// instructions; blocks of 4 rows by 2 vectors keep 8 accumulators in registers next to the
/// loaded operands. Every element is one sum over p = 0..k-1 in order.
template <class T, int kBytes>
[[gnu::always_inline]] inline void gemm_body(std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                                             std::int64_t a_rs, std::int64_t a_cs, const T* b, std::int64_t ldb, T* c,
                                             std::int64_t ldc) {
  typedef T Vec __attribute__((vector_size(kBytes)));  // NOLINT(modernize-use-using): GNU vector type
  constexpr int kLanes = kBytes / static_cast<int>(sizeof(T)), kRows = 4, kVecs = 2, kCols = kVecs * kLanes;
  std::int64_t i = 0;
  const std::int64_t n_blocked = n - n % kCols;
  for (; i + kRows <= m; i += kRows)
    for (std::int64_t j = 0; j < n_blocked; j += kCols) {
      // No address of acc is taken, so that the compiler keeps it in registers.
      Vec acc[kRows][kVecs] = {};
      for (std::int64_t p = 0; p < k; ++p) {
        Vec bv[kVecs];
        for (int x = 0; x < kVecs; ++x) std::memcpy(&bv[x], b + p * ldb + j + x * kLanes, sizeof(Vec));
        for (int r = 0; r < kRows; ++r) {
          const Vec ar = a[(i + r) * a_rs + p * a_cs] - Vec{};  // a broadcast (x - 0 is x, even for -0)
          for (int x = 0; x < kVecs; ++x) acc[r][x] += ar * bv[x];
        }
      }
      for (int r = 0; r < kRows; ++r)
        for (int x = 0; x < kVecs; ++x) {
          const Vec out = acc[r][x];
          std::memcpy(c + (i + r) * ldc + j + x * kLanes, &out, sizeof out);
        }
    }
  // Edges: the rows left below the blocks, and the columns right of them.
  for (std::int64_t r = 0; r < m; ++r) {
    const std::int64_t j0 = r < i ? n_blocked : 0;
    if (j0 == n) continue;
    T* cr = c + r * ldc;
    std::fill(cr + j0, cr + n, T(0));
    for (std::int64_t p = 0; p < k; ++p) {
      const T arp = a[r * a_rs + p * a_cs];
      const T* bp = b + p * ldb;
      for (std::int64_t j = j0; j < n; ++j) cr[j] += arp * bp[j];
    }
  }
}

template <class T>
using GemmFn = void (*)(std::int64_t, std::int64_t, std::int64_t, const T*, std::int64_t, std::int64_t, const T*,
                        std::int64_t, T*, std::int64_t);

/// The baseline build (SSE2 on x86-64): 16-byte vectors.
template <class T>
void gemm_baseline(std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t a_rs, std::int64_t a_cs,
                   const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  gemm_body<T, 16>(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc);
}

#if defined(__GNUC__) && defined(__x86_64__)
// The library is built for the x86-64 baseline; the tile products, most of the arithmetic,
// are also built for AVX2+FMA and AVX-512 and picked at run time. On a Sapphire Rapids core
// they make a forward+backward step of q, k, v [8, 4, 128, 64] f32 2x and 2.4x faster.
template <class T>
[[gnu::target("avx2,fma")]] void gemm_avx2(std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                                           std::int64_t a_rs, std::int64_t a_cs, const T* b, std::int64_t ldb, T* c,
                                           std::int64_t ldc) {
  gemm_body<T, 32>(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc);
}
template <class T>
[[gnu::target("avx512f")]] void gemm_avx512(std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                                            std::int64_t a_rs, std::int64_t a_cs, const T* b, std::int64_t ldb, T* c,
                                            std::int64_t ldc) {
  gemm_body<T, 64>(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc);
}
#endif

template <class T>
GemmFn<T> pick_gemm() {
#if defined(__GNUC__) && defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return gemm_avx512<T>;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return gemm_avx2<T>;
#endif
  return gemm_baseline<T>;
}

/// dst[x * ldd + r] = src[r * lds + x] for r < rows, x < cols.
template <class T>
void transpose(std::int64_t rows, std::int64_t cols, const T* src, std::int64_t lds, T* dst, std::int64_t ldd) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t x = 0; x < cols; ++x) dst[x * ldd + r] = src[r * lds + x];
}

// ---- exponentials ----------------------------------------------------------------------------

/// s[x] = exp(s[x] - sub[x * sub_stride]) for x < n (sub_stride is 0 or 1); f32 on vectors
/// (vec_kernels.h).
inline void exp_diff(float* s, const float* sub, std::int64_t sub_stride, std::int64_t n) {
  exp_diff_f32(s, sub, sub_stride, n);
}

inline void exp_diff(double* s, const double* sub, std::int64_t sub_stride, std::int64_t n) {
  for (std::int64_t x = 0; x < n; ++x) s[x] = std::exp(s[x] - sub[x * sub_stride]);
}

// ---- geometry ---------------------------------------------------------------------------------

/// Byte offsets of the pieces of one worker's scratch slot, each 64-byte aligned.
class SlotLayout {
 public:
  template <class U>
  std::size_t add(std::int64_t count) {
    const std::size_t at = bytes_;
    bytes_ += (static_cast<std::size_t>(std::max<std::int64_t>(count, 0)) * sizeof(U) + 63) / 64 * 64;
    return at;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t bytes_ = 0;
};

/// Sizes of one attention node, and where its mask lives relative to the scores.
struct Geometry {
  std::int64_t batch = 0, lq = 0, lk = 0, d = 0, dv = 0;  // batch: the leading axes flattened
  double scale = 1.0;
  bool causal = false;
  bool has_mask = false;
  std::vector<std::int64_t> mask_offset;  // per leading index: first mask element of its [Lq, Lk] plane
  std::int64_t mask_q = 0, mask_k = 0;    // mask element strides along Lq and Lk (0 where broadcast)
};

Geometry geometry_of(const KernelEnv& env, bool backward) {
  const std::size_t first = backward ? 1 : 0;  // the backward's operand 0 is the output gradient
  const Shape& q = env.in(first).shape;
  const std::int64_t r = q.rank();
  const auto& attrs = std::get<AttentionAttrs>(env.n().attrs);
  Geometry g;
  g.lq = q[r - 2];
  g.d = q[r - 1];
  g.lk = env.in(first + 1).shape[r - 2];
  g.dv = env.in(first + 2).shape[r - 1];
  g.batch = 1;
  for (std::int64_t a = 0; a < r - 2; ++a) g.batch *= q[a];
  g.scale = attrs.scale;
  g.causal = attrs.causal;
  g.has_mask = env.has(first + 3);
  if (!g.has_mask) return g;
  // The mask's axes align with the trailing axes of the scores [..., Lq, Lk]; a size-1 or
  // missing axis is broadcast (stride 0).
  const TensorType& m = env.in(first + 3);
  check_internal(m.dtype == DType::boolean, "attention: the mask reached the kernel with a non-bool dtype");
  const std::int64_t rm = m.shape.rank();
  std::vector<std::int64_t> stride(static_cast<std::size_t>(r), 0);
  std::int64_t step = 1;
  for (std::int64_t a = rm - 1; a >= 0; --a) {
    stride[static_cast<std::size_t>(r - rm + a)] = m.shape[a] == 1 ? 0 : step;
    step *= m.shape[a];
  }
  g.mask_q = stride[static_cast<std::size_t>(r - 2)];
  g.mask_k = stride[static_cast<std::size_t>(r - 1)];
  g.mask_offset.resize(static_cast<std::size_t>(g.batch));
  for (std::int64_t b = 0; b < g.batch; ++b) {
    std::int64_t rest = b, offset = 0;
    for (std::int64_t a = r - 3; a >= 0; --a) {
      offset += (rest % q[a]) * stride[static_cast<std::size_t>(a)];
      rest /= q[a];
    }
    g.mask_offset[static_cast<std::size_t>(b)] = offset;
  }
  return g;
}

// ---- the kernel ---------------------------------------------------------------------------------

template <class T>
class AttentionKernel final : public Kernel {
 public:
  AttentionKernel(Geometry g, bool backward, int threads)
      : g_(std::move(g)), backward_(backward), slots_(std::max(threads, 1)) {
    bq_ = std::min(kBlockQ, g_.lq);
    bk_ = std::min(kBlockK, g_.lk);
    const std::int64_t tile = std::max(bq_, bk_), width = std::max(g_.d, g_.dv);
    SlotLayout s;
    fixed_ = s.add<T>(tile * g_.d);  // the task's own tile, transposed: Q^T (forward, pass 2) or K^T (pass 1)
    scores_ = s.add<T>(bq_ * bk_);
    prod_ = s.add<T>(tile * width);
    acc_ = s.add<double>(tile * width);
    row_a_ = s.add<T>(bq_);
    row_b_ = s.add<T>(bq_);
    if (!backward_) {
      row_max_ = s.add<double>(bq_);
      row_sum_ = s.add<double>(bq_);
      tile_sum_ = s.add<double>(bq_);
    } else {
      fixed_v_ = s.add<T>(tile * g_.dv);  // G^T (pass 2) or V^T (pass 1)
      dp_ = s.add<T>(bq_ * bk_);
      acc_v_ = s.add<double>(bk_ * g_.dv);
    }
    slot_bytes_ = s.bytes();
  }

  std::size_t scratch_bytes() const override { return slot_bytes_ * static_cast<std::size_t>(slots_); }

  void run(const KernelArgs& a) override {
    if (g_.batch == 0) return;
    if (g_.lq == 0) {  // no queries: out, lse and dQ are empty, dK and dV zero
      if (backward_) {
        std::fill_n(static_cast<T*>(a.out[1]), g_.batch * g_.lk * g_.d, T(0));
        std::fill_n(static_cast<T*>(a.out[2]), g_.batch * g_.lk * g_.dv, T(0));
      }
      return;
    }
    if (backward_) {
      run_backward(a);
    } else {
      run_forward(a);
    }
  }

 private:
  static constexpr T kInf = std::numeric_limits<T>::infinity();

  struct Io {
    const T *q, *k, *v;
    const Bool* mask;        // nullptr when absent
    const T *g, *out, *lse;  // backward only
  };

  template <class U>
  static U* piece(std::byte* slot, std::size_t offset) {
    return reinterpret_cast<U*>(slot + offset);
  }

  /// The calling worker's scratch slot.
  std::byte* slot_of(void* scratch) const {
    const int w = tbb::this_task_arena::current_thread_index();
    check_internal(w >= 0 && w < slots_, "attention: a worker index outside the arena's scratch slots");
    return static_cast<std::byte*>(scratch) + slot_bytes_ * static_cast<std::size_t>(w);
  }

  std::int64_t query_tiles() const { return (g_.lq + bq_ - 1) / bq_; }
  std::int64_t key_tiles() const { return bk_ ? (g_.lk + bk_ - 1) / bk_ : 0; }
  /// Keys [0, key_end) are visible to some query below `query_end`.
  std::int64_t key_end(std::int64_t query_end) const { return g_.causal ? std::min(g_.lk, query_end) : g_.lk; }
  /// Element operations of one (query tile, key tile) pair, for the grain.
  std::int64_t tile_work() const { return std::max<std::int64_t>(bq_ * bk_ * (g_.d + g_.dv), 1); }

  /// Scales the raw scores of queries i0.. (rows) against keys j0.. (cols) and sets hidden
  /// ones to -inf. Tiles are key-major (element (r, c) at c * ld + r) or query-major (r * ld + c).
  template <bool kKeyMajor>
  void scale_and_mask(T* s, std::int64_t ld, const Bool* mask, std::int64_t b, std::int64_t i0, std::int64_t rows,
                      std::int64_t j0, std::int64_t cols) const {
    const T scale = static_cast<T>(g_.scale);
    const Bool* m = nullptr;
    if (mask) m = mask + g_.mask_offset[static_cast<std::size_t>(b)] + i0 * g_.mask_q + j0 * g_.mask_k;
    // Causal: query i0 + r sees key j0 + c when j0 + c <= i0 + r.
    if (kKeyMajor) {
      for (std::int64_t c = 0; c < cols; ++c) {
        T* sc = s + c * ld;
        const std::int64_t first = g_.causal ? std::clamp<std::int64_t>(j0 + c - i0, 0, rows) : 0;
        std::fill(sc, sc + first, -kInf);
        for (std::int64_t r = first; r < rows; ++r) sc[r] *= scale;
        if (m)
          for (std::int64_t r = first; r < rows; ++r) sc[r] = m[c * g_.mask_k + r * g_.mask_q] ? sc[r] : -kInf;
      }
    } else {
      for (std::int64_t r = 0; r < rows; ++r) {
        T* sr = s + r * ld;
        const std::int64_t visible = g_.causal ? std::clamp<std::int64_t>(i0 + r - j0 + 1, 0, cols) : cols;
        for (std::int64_t c = 0; c < visible; ++c) sr[c] *= scale;
        std::fill(sr + visible, sr + cols, -kInf);
        if (m)
          for (std::int64_t c = 0; c < visible; ++c) sr[c] = m[r * g_.mask_q + c * g_.mask_k] ? sr[c] : -kInf;
      }
    }
  }

  // ---- forward -------------------------------------------------------------------------------

  void run_forward(const KernelArgs& a) const {
    const Io io{static_cast<const T*>(a.in[0]),
                static_cast<const T*>(a.in[1]),
                static_cast<const T*>(a.in[2]),
                static_cast<const Bool*>(a.in[3]),
                nullptr,
                nullptr,
                nullptr};
    T* out = static_cast<T*>(a.out[0]);
    T* lse = static_cast<T*>(a.out[1]);
    const std::int64_t tiles = query_tiles();
    const std::int64_t work = tile_work() * std::max<std::int64_t>(key_tiles(), 1);
    parallel_for(g_.batch * tiles, grain_for(work), [&](std::int64_t begin, std::int64_t end) {
      std::byte* slot = slot_of(a.scratch);
      for (std::int64_t t = begin; t < end; ++t) forward_tile(io, t / tiles, (t % tiles) * bq_, out, lse, slot);
    });
  }

  /// Output rows [i0, i0 + bq) of leading index b.
  void forward_tile(const Io& io, std::int64_t b, std::int64_t i0, T* out, T* lse, std::byte* slot) const {
    const std::int64_t rows = std::min(bq_, g_.lq - i0), d = g_.d, dv = g_.dv;
    T* qt = piece<T>(slot, fixed_);
    T* st = piece<T>(slot, scores_);  // key-major: S^T
    T* pv = piece<T>(slot, prod_);
    T* tile_max = piece<T>(slot, row_a_);
    T* shift = piece<T>(slot, row_b_);
    auto* acc = piece<double>(slot, acc_);
    auto* row_max = piece<double>(slot, row_max_);
    auto* row_sum = piece<double>(slot, row_sum_);
    auto* tile_sum = piece<double>(slot, tile_sum_);
    std::fill(acc, acc + rows * dv, 0.0);
    std::fill(row_max, row_max + rows, -std::numeric_limits<double>::infinity());
    std::fill(row_sum, row_sum + rows, 0.0);
    transpose(rows, d, io.q + (b * g_.lq + i0) * d, d, qt, bq_);
    const T* k = io.k + b * g_.lk * d;
    const T* v = io.v + b * g_.lk * dv;
    const std::int64_t keys = key_end(i0 + rows);
    for (std::int64_t j0 = 0; j0 < keys; j0 += bk_) {
      const std::int64_t cols = std::min(bk_, keys - j0);
      gemm_(cols, rows, d, k + j0 * d, d, 1, qt, bq_, st, bq_);
      scale_and_mask<true>(st, bq_, io.mask, b, i0, rows, j0, cols);
      std::copy(st, st + rows, tile_max);
      for (std::int64_t c = 1; c < cols; ++c) {
        const T* sc = st + c * bq_;
        for (std::int64_t r = 0; r < rows; ++r) tile_max[r] = sc[r] > tile_max[r] ? sc[r] : tile_max[r];
      }
      // Online softmax: when a query's running max grows, what was summed so far is rescaled.
      for (std::int64_t r = 0; r < rows; ++r) {
        const double m = std::max(row_max[r], static_cast<double>(tile_max[r]));
        if (m > row_max[r] && row_sum[r] != 0) {
          const double alpha = std::exp(row_max[r] - m);
          row_sum[r] *= alpha;
          for (double* x = acc + r * dv; x != acc + (r + 1) * dv; ++x) *x *= alpha;
        }
        row_max[r] = m;
        // Exact: the max is one of the T scores. With nothing visible yet, any finite shift
        // gives exp(-inf - shift) = 0.
        shift[r] = m == -std::numeric_limits<double>::infinity() ? T(0) : static_cast<T>(m);
      }
      std::fill(tile_sum, tile_sum + rows, 0.0);
      for (std::int64_t c = 0; c < cols; ++c) {
        T* sc = st + c * bq_;
        exp_diff(sc, shift, 1, rows);
        for (std::int64_t r = 0; r < rows; ++r) tile_sum[r] += static_cast<double>(sc[r]);
      }
      for (std::int64_t r = 0; r < rows; ++r) row_sum[r] += tile_sum[r];
      gemm_(rows, dv, cols, st, 1, bq_, v + j0 * dv, dv, pv, dv);  // P V, P read from S^T
      for (std::int64_t x = 0; x < rows * dv; ++x) acc[x] += static_cast<double>(pv[x]);
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      T* o = out + (b * g_.lq + i0 + r) * dv;
      T& l = lse[b * g_.lq + i0 + r];
      if (row_sum[r] == 0) {  // no visible key
        std::fill(o, o + dv, T(0));
        l = -kInf;
        continue;
      }
      const double inv = 1.0 / row_sum[r];
      for (std::int64_t x = 0; x < dv; ++x) o[x] = static_cast<T>(acc[r * dv + x] * inv);
      l = static_cast<T>(row_max[r] + std::log(row_sum[r]));
    }
  }

  // ---- backward ------------------------------------------------------------------------------

  void run_backward(const KernelArgs& a) const {
    const Io io{static_cast<const T*>(a.in[1]),    static_cast<const T*>(a.in[2]), static_cast<const T*>(a.in[3]),
                static_cast<const Bool*>(a.in[4]), static_cast<const T*>(a.in[0]), static_cast<const T*>(a.in[5]),
                static_cast<const T*>(a.in[6])};
    T* dq = static_cast<T*>(a.out[0]);
    T* dk = static_cast<T*>(a.out[1]);
    T* dv = static_cast<T*>(a.out[2]);
    // Pass 1: dK and dV, one task per key tile.
    const std::int64_t ktiles = key_tiles();
    parallel_for(g_.batch * ktiles, grain_for(tile_work() * query_tiles()), [&](std::int64_t begin, std::int64_t end) {
      std::byte* slot = slot_of(a.scratch);
      for (std::int64_t t = begin; t < end; ++t) key_tile_grads(io, t / ktiles, (t % ktiles) * bk_, dk, dv, slot);
    });
    // Pass 2: dQ, one task per query tile.
    const std::int64_t qtiles = query_tiles();
    const std::int64_t work = tile_work() * std::max<std::int64_t>(ktiles, 1);
    parallel_for(g_.batch * qtiles, grain_for(work), [&](std::int64_t begin, std::int64_t end) {
      std::byte* slot = slot_of(a.scratch);
      for (std::int64_t t = begin; t < end; ++t) query_tile_grads(io, t / qtiles, (t % qtiles) * bq_, dq, slot);
    });
  }

  /// Per query row of [i0, i0 + rows): the lse to subtract (+inf for a row without visible
  /// keys, whose scores are all -inf: exp(-inf - inf) = 0 where -inf - lse would be NaN) and
  /// rowsum(g * out), into the slot's row buffers.
  void row_terms(const Io& io, std::int64_t b, std::int64_t i0, std::int64_t rows, std::byte* slot) const {
    T* lse = piece<T>(slot, row_a_);
    T* dot = piece<T>(slot, row_b_);
    const std::int64_t base = b * g_.lq + i0;
    for (std::int64_t r = 0; r < rows; ++r) {
      lse[r] = io.lse[base + r] == -kInf ? kInf : io.lse[base + r];
      dot[r] = static_cast<T>(lane_dot(io.g + (base + r) * g_.dv, io.out + (base + r) * g_.dv, g_.dv));
    }
  }

  /// P = exp(S - lse) in place of the masked scores s, and dS = P * (dP - dot) in place of dP,
  /// for `rows` queries and `cols` keys in either layout (see scale_and_mask).
  template <bool kKeyMajor>
  void probabilities(T* s, T* dp, std::int64_t ld, std::int64_t rows, std::int64_t cols, std::byte* slot) const {
    const T* lse = piece<T>(slot, row_a_);
    const T* dot = piece<T>(slot, row_b_);
    const std::int64_t outer = kKeyMajor ? cols : rows, inner = kKeyMajor ? rows : cols;
    for (std::int64_t o = 0; o < outer; ++o) {
      T* so = s + o * ld;
      T* dpo = dp + o * ld;
      exp_diff(so, kKeyMajor ? lse : lse + o, kKeyMajor ? 1 : 0, inner);
      for (std::int64_t x = 0; x < inner; ++x) dpo[x] = so[x] * (dpo[x] - dot[kKeyMajor ? x : o]);
    }
  }

  /// dK and dV rows [j0, j0 + bk) of leading index b, summed over query tiles in order.
  /// Tiles are query-major: S = Q K^T with K^T and V^T transposed once.
  void key_tile_grads(const Io& io, std::int64_t b, std::int64_t j0, T* dk, T* dv, std::byte* slot) const {
    const std::int64_t cols = std::min(bk_, g_.lk - j0), d = g_.d, w = g_.dv;
    T* kt = piece<T>(slot, fixed_);
    T* vt = piece<T>(slot, fixed_v_);
    T* s = piece<T>(slot, scores_);
    T* dp = piece<T>(slot, dp_);
    T* prod = piece<T>(slot, prod_);
    auto* acc_k = piece<double>(slot, acc_);
    auto* acc_v = piece<double>(slot, acc_v_);
    std::fill(acc_k, acc_k + cols * d, 0.0);
    std::fill(acc_v, acc_v + cols * w, 0.0);
    transpose(cols, d, io.k + (b * g_.lk + j0) * d, d, kt, bk_);
    transpose(cols, w, io.v + (b * g_.lk + j0) * w, w, vt, bk_);
    // Causal: query i sees key j only when j <= i, so queries before j0 contribute nothing.
    for (std::int64_t i0 = g_.causal ? j0 : 0; i0 < g_.lq; i0 += bq_) {
      const std::int64_t rows = std::min(bq_, g_.lq - i0);
      const T* q = io.q + (b * g_.lq + i0) * d;
      const T* g = io.g + (b * g_.lq + i0) * w;
      gemm_(rows, cols, d, q, d, 1, kt, bk_, s, bk_);
      scale_and_mask<false>(s, bk_, io.mask, b, i0, rows, j0, cols);
      gemm_(rows, cols, w, g, w, 1, vt, bk_, dp, bk_);
      row_terms(io, b, i0, rows, slot);
      probabilities<false>(s, dp, bk_, rows, cols, slot);
      gemm_(cols, w, rows, s, 1, bk_, g, w, prod, w);  // P^T g
      for (std::int64_t x = 0; x < cols * w; ++x) acc_v[x] += static_cast<double>(prod[x]);
      gemm_(cols, d, rows, dp, 1, bk_, q, d, prod, d);  // dS^T Q
      for (std::int64_t x = 0; x < cols * d; ++x) acc_k[x] += static_cast<double>(prod[x]);
    }
    T* dk_rows = dk + (b * g_.lk + j0) * d;
    T* dv_rows = dv + (b * g_.lk + j0) * w;
    for (std::int64_t x = 0; x < cols * d; ++x) dk_rows[x] = static_cast<T>(g_.scale * acc_k[x]);
    for (std::int64_t x = 0; x < cols * w; ++x) dv_rows[x] = static_cast<T>(acc_v[x]);
  }

  /// dQ rows [i0, i0 + bq) of leading index b, summed over key tiles in order. Tiles are
  /// key-major: S^T = K Q^T with Q^T and G^T transposed once.
  void query_tile_grads(const Io& io, std::int64_t b, std::int64_t i0, T* dq, std::byte* slot) const {
    const std::int64_t rows = std::min(bq_, g_.lq - i0), d = g_.d, w = g_.dv;
    T* qt = piece<T>(slot, fixed_);
    T* gt = piece<T>(slot, fixed_v_);
    T* st = piece<T>(slot, scores_);
    T* dpt = piece<T>(slot, dp_);
    T* prod = piece<T>(slot, prod_);
    auto* acc = piece<double>(slot, acc_);
    std::fill(acc, acc + rows * d, 0.0);
    transpose(rows, d, io.q + (b * g_.lq + i0) * d, d, qt, bq_);
    transpose(rows, w, io.g + (b * g_.lq + i0) * w, w, gt, bq_);
    row_terms(io, b, i0, rows, slot);
    const std::int64_t keys = key_end(i0 + rows);
    for (std::int64_t j0 = 0; j0 < keys; j0 += bk_) {
      const std::int64_t cols = std::min(bk_, keys - j0);
      const T* k = io.k + (b * g_.lk + j0) * d;
      gemm_(cols, rows, d, k, d, 1, qt, bq_, st, bq_);
      scale_and_mask<true>(st, bq_, io.mask, b, i0, rows, j0, cols);
      gemm_(cols, rows, w, io.v + (b * g_.lk + j0) * w, w, 1, gt, bq_, dpt, bq_);
      probabilities<true>(st, dpt, bq_, rows, cols, slot);
      gemm_(rows, d, cols, dpt, 1, bq_, k, d, prod, d);  // dS K, dS read from dS^T
      for (std::int64_t x = 0; x < rows * d; ++x) acc[x] += static_cast<double>(prod[x]);
    }
    T* dq_rows = dq + (b * g_.lq + i0) * d;
    for (std::int64_t x = 0; x < rows * d; ++x) dq_rows[x] = static_cast<T>(g_.scale * acc[x]);
  }

  Geometry g_;
  GemmFn<T> gemm_ = pick_gemm<T>();
  bool backward_;
  int slots_;
  std::int64_t bq_ = 0, bk_ = 0;  // tile sizes, clamped to the lengths
  // Offsets into a slot (see the constructor).
  std::size_t fixed_ = 0, fixed_v_ = 0, scores_ = 0, dp_ = 0, prod_ = 0, acc_ = 0, acc_v_ = 0;
  std::size_t row_a_ = 0, row_b_ = 0, row_max_ = 0, row_sum_ = 0, tile_sum_ = 0;
  std::size_t slot_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Kernel> make_attention_kernel(const KernelEnv& env) {
  const Node& n = env.n();
  check_internal(n.kind == OpKind::Attention || n.kind == OpKind::AttentionBackward,
                 "make_attention_kernel: not an attention node");
  const bool backward = n.kind == OpKind::AttentionBackward;
  const DType dtype = env.in(backward ? 1 : 0).dtype;
  if (dtype != DType::f32 && dtype != DType::f64) unsupported_dtype(env, dtype);
  Geometry g = geometry_of(env, backward);
  return dispatch_floating(dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return std::make_unique<AttentionKernel<decltype(t)>>(std::move(g), backward, env.threads);
  });
}

}  // namespace trainrt::detail::cpu
