// runtime/cpu/matmul.cpp — batched matrix product.
//
// f32 runs on oneDNN's matmul primitive: transposed operands are described by strides (no
// copy), batch axes broadcast natively, and the primitive is created once at compile time
// with a user-managed scratchpad planned into the arena; the product is cut into row
// pieces that run as TBB tasks (OneDnnMatmul says why). f64 (oneDNN has none) runs a
// reference loop, which also serves the tests as the oracle for the oneDNN path.
#include <tbb/task_arena.h>

#include <algorithm>

#include "core/error.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/onednn_impl.h"
#include "runtime/cpu/parallel.h"

namespace trainrt::detail::cpu {

namespace {

using dnnl::memory;

/// The logical operand shapes padded to the output's rank, with element strides of the
/// stored (possibly transposed) operands.
struct MatmulShape {
  std::vector<std::int64_t> a_dims, b_dims, c_dims;  // logical [..., M, K], [..., K, N], [..., M, N]
  std::vector<std::int64_t> a_strides, b_strides;    // strides of the logical dims
  std::int64_t m = 0, n = 0, k = 0, batch = 1;
};

std::vector<std::int64_t> logical_strides(const Shape& stored, std::size_t rank, bool transposed,
                                          std::vector<std::int64_t>& dims) {
  std::vector<std::int64_t> st(static_cast<std::size_t>(stored.rank()));
  std::int64_t acc = 1;
  for (std::int64_t d = stored.rank() - 1; d >= 0; --d) st[static_cast<std::size_t>(d)] = acc, acc *= stored[d];
  std::vector<std::int64_t> sd = stored.dims();
  if (transposed) {
    std::swap(sd[sd.size() - 1], sd[sd.size() - 2]);
    std::swap(st[st.size() - 1], st[st.size() - 2]);
  }
  const std::size_t pad = rank - sd.size();
  dims.assign(pad, 1);
  dims.insert(dims.end(), sd.begin(), sd.end());
  std::vector<std::int64_t> out(pad, 0);
  out.insert(out.end(), st.begin(), st.end());
  for (std::size_t d = 0; d + 2 < rank; ++d)
    if (dims[d] == 1) out[d] = 0;  // broadcast batch axis
  return out;
}

MatmulShape describe(const KernelEnv& env) {
  const auto& t = std::get<MatmulAttrs>(env.n().attrs);
  MatmulShape s;
  s.c_dims = env.out(0).shape.dims();
  const std::size_t rank = s.c_dims.size();
  s.a_strides = logical_strides(env.in(0).shape, rank, t.transpose_a, s.a_dims);
  s.b_strides = logical_strides(env.in(1).shape, rank, t.transpose_b, s.b_dims);
  s.m = s.c_dims[rank - 2];
  s.n = s.c_dims[rank - 1];
  s.k = s.a_dims[rank - 1];
  for (std::size_t d = 0; d + 2 < rank; ++d) s.batch *= s.c_dims[d];
  return s;
}

/// Row pieces of one product: each at least kMinPieceRows rows of M and kMinPieceFlops of
/// work (a GEMM call packs its operands, so small pieces waste it), at most kMaxPieces. The
/// count depends on the shape alone, so results do not depend on the thread count.
/// Measured on the 2-core build machine, oneDNN 2.6, 128x784 @ 784x512 (103 MFLOP): its own
/// OpenMP team of 2 threads 0.43 ms; 2 or 4 single-threaded row pieces on 2 TBB threads
/// 0.48 or 0.52 ms; one thread 0.85 ms.
std::int64_t pieces_for(const MatmulShape& s) {
  constexpr std::int64_t kMinPieceRows = 32;
  constexpr double kMinPieceFlops = 25e6;
  constexpr std::int64_t kMaxPieces = 16;
  const double flops = 2.0 * static_cast<double>(s.batch * s.m * s.n * s.k);
  const auto by_work = static_cast<std::int64_t>(flops / kMinPieceFlops);
  return std::clamp<std::int64_t>(std::min(by_work, s.m / kMinPieceRows), 1, kMaxPieces);
}

/// f32 matmul on oneDNN, cut into pieces of rows of M that run as TBB tasks, each a
/// single-threaded oneDNN call — as conv.cpp does, and for the same reasons: Debian's
/// oneDNN parallelizes with OpenMP, whose spinning workers take cores from the kernels that
/// run next (or beside, in the parallel executor), and fixed pieces give the same bits for
/// any thread count. A piece covers rows [m0, m0 + rows) of every batch: the same strides,
/// shifted base pointers. The primitive for the piece shape (and a tail piece) is made once;
/// each worker slot has its own memory objects, stream and scratchpad.
class OneDnnMatmul final : public Kernel {
 public:
  OneDnnMatmul(const KernelEnv& env, const MatmulShape& s)
      : s_(s), slots_(std::max(env.threads, 1)), elem_(size_of(env.out(0).dtype)) {
    pieces_ = pieces_for(s);
    rows_ = (s.m + pieces_ - 1) / pieces_;
    pieces_ = (s.m + rows_ - 1) / rows_;
    const std::size_t r = s.c_dims.size();
    a_row_ = s.a_strides[r - 2];
    c_row_ = s.n;
    OneDnn::single_thread();  // oneDNN fixes a primitive's work split when it is made
    onednn_call("creating a matmul primitive", [&] {
      build(env, rows_);
      const std::int64_t tail = s.m - (pieces_ - 1) * rows_;
      if (tail != rows_) build(env, tail);
      return 0;
    });
  }

  std::size_t scratch_bytes() const override { return static_cast<std::size_t>(slots_) * slot_bytes_; }

  void run(const KernelArgs& a) override {
    parallel_for(pieces_, 1, [&](std::int64_t lo, std::int64_t hi) {
      OneDnn::single_thread();
      const int slot = tbb::this_task_arena::current_thread_index();
      check_internal(slot >= 0 && slot < slots_, "matmul: a worker index outside the arena's scratch slots");
      for (std::int64_t p = lo; p < hi; ++p) {
        Piece& piece = pieces_by_shape_[(shapes_ > 1 && p == pieces_ - 1) ? 1 : 0][static_cast<std::size_t>(slot)];
        const std::int64_t m0 = p * rows_;
        onednn_bind(piece.a, static_cast<const std::byte*>(a.in[0]) + m0 * a_row_ * static_cast<std::int64_t>(elem_));
        onednn_bind(piece.b, a.in[1]);
        onednn_bind(piece.c, static_cast<std::byte*>(a.out[0]) + m0 * c_row_ * static_cast<std::int64_t>(elem_));
        onednn_bind(piece.scratch, static_cast<std::byte*>(a.scratch) + static_cast<std::size_t>(slot) * slot_bytes_);
        onednn_execute(piece.stream, prim_[piece.shape], piece.args, "running a matmul");
      }
    });
  }

 private:
  struct Piece {
    std::size_t shape = 0;
    dnnl::stream stream;
    memory a, b, c, scratch;
    OneDnnArgs args;
  };

  /// The primitive for pieces of `rows` rows, and one Piece per worker slot.
  void build(const KernelEnv& env, std::int64_t rows) {
    auto& engine = env.dnn.impl().engine;
    const memory::data_type dt = onednn_type(env.out(0).dtype);
    auto md = [&](std::vector<std::int64_t> dims, std::vector<std::int64_t> strides) {
      // A broadcast (size-1) batch axis has stride 0 for the reference loop; oneDNN wants a
      // positive one, whose value is irrelevant for a size-1 axis.
      for (std::size_t d = 0; d < dims.size(); ++d)
        if (dims[d] == 1 && strides[d] == 0) strides[d] = 1;
      return memory::desc(memory::dims(dims.begin(), dims.end()), dt, memory::dims(strides.begin(), strides.end()));
    };
    const std::size_t r = s_.c_dims.size();
    std::vector<std::int64_t> a_dims = s_.a_dims, c_dims = s_.c_dims, c_strides(r);
    a_dims[r - 2] = rows;
    c_dims[r - 2] = rows;
    std::int64_t acc = 1;  // the full output's strides: a piece is a window of it
    for (std::size_t d = r; d-- > 0;) c_strides[d] = acc, acc *= s_.c_dims[d];
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto a_md = md(a_dims, s_.a_strides), b_md = md(s_.b_dims, s_.b_strides), c_md = md(c_dims, c_strides);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine);
    prim_.emplace_back(pd);
    slot_bytes_ = std::max(slot_bytes_, (pd.scratchpad_desc().get_size() + 63) & ~std::size_t{63});
    std::vector<Piece> slots;
    for (int w = 0; w < slots_; ++w) {
      Piece p;
      p.shape = static_cast<std::size_t>(shapes_);
      p.stream = dnnl::stream(engine);
      p.a = memory(a_md, engine, DNNL_MEMORY_NONE);
      p.b = memory(b_md, engine, DNNL_MEMORY_NONE);
      p.c = memory(c_md, engine, DNNL_MEMORY_NONE);
      p.scratch = memory(pd.scratchpad_desc(), engine, DNNL_MEMORY_NONE);
      p.args.add(DNNL_ARG_SRC, p.a);
      p.args.add(DNNL_ARG_WEIGHTS, p.b);
      p.args.add(DNNL_ARG_DST, p.c);
      p.args.add(DNNL_ARG_SCRATCHPAD, p.scratch);
      slots.push_back(std::move(p));
    }
    pieces_by_shape_.push_back(std::move(slots));
    ++shapes_;
  }

  MatmulShape s_;
  int slots_;
  std::size_t elem_;
  std::int64_t pieces_ = 1, rows_ = 1, a_row_ = 0, c_row_ = 0;
  int shapes_ = 0;
  std::vector<dnnl::matmul> prim_;                   // [main] or [main, tail]
  std::vector<std::vector<Piece>> pieces_by_shape_;  // [shape][slot]
  std::size_t slot_bytes_ = 0;
};

/// Reference kernel (f64, and any float type): c[b, i, :] = sum_k a[b, i, k] * b[b, k, :].
template <class T>
class ReferenceMatmul final : public Kernel {
 public:
  explicit ReferenceMatmul(MatmulShape s) : s_(std::move(s)) {}
  void run(const KernelArgs& args) override {
    const T* a = static_cast<const T*>(args.in[0]);
    const T* b = static_cast<const T*>(args.in[1]);
    T* c = static_cast<T*>(args.out[0]);
    const std::size_t r = s_.c_dims.size();
    const std::int64_t am = s_.a_strides[r - 2], ak = s_.a_strides[r - 1];
    const std::int64_t bk = s_.b_strides[r - 2], bn = s_.b_strides[r - 1];
    parallel_for(s_.batch * s_.m, grain_for(s_.n * s_.k), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t row = lo; row < hi; ++row) {
        const std::int64_t bi = row / s_.m, i = row % s_.m;
        std::int64_t ao = 0, bo = 0, rest = bi;
        for (std::size_t d = r - 2; d-- > 0;) {
          const std::int64_t idx = rest % s_.c_dims[d];
          rest /= s_.c_dims[d];
          ao += idx * s_.a_strides[d];
          bo += idx * s_.b_strides[d];
        }
        T* out = c + row * s_.n;
        std::fill(out, out + s_.n, T(0));
        for (std::int64_t k = 0; k < s_.k; ++k) {
          const T av = a[ao + i * am + k * ak];
          const T* brow = b + bo + k * bk;
          for (std::int64_t j = 0; j < s_.n; ++j) out[j] += av * brow[j * bn];
        }
      }
    });
  }

 private:
  MatmulShape s_;
};

}  // namespace

std::unique_ptr<Kernel> make_matmul_kernel(const KernelEnv& env) {
  const MatmulShape s = describe(env);
  switch (env.out(0).dtype) {
    case DType::f32:
      if (env.out(0).shape.numel() == 0 || s.k == 0) return std::make_unique<ReferenceMatmul<float>>(s);
      return std::make_unique<OneDnnMatmul>(env, s);
    case DType::f64: return std::make_unique<ReferenceMatmul<double>>(s);
    default: unsupported_dtype(env, env.out(0).dtype);
  }
}

}  // namespace trainrt::detail::cpu
