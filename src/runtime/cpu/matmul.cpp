// runtime/cpu/matmul.cpp — batched matrix product.
//
// f32 runs on oneDNN's matmul primitive: transposed operands are described by strides (no
// copy), batch axes broadcast natively, and the primitive is created once at compile time
// with a user-managed scratchpad planned into the arena. f64 (oneDNN has none) runs a
// reference loop, which also serves the tests as the oracle for the oneDNN path.
#include <algorithm>

#include "runtime/cpu/kernel.h"
#include "runtime/cpu/onednn_impl.h"
#include "runtime/cpu/parallel.h"

namespace trainrt::detail::cpu {

namespace {

using dnnl::memory;

/// The logical operand shapes padded to the output's rank, with element strides of the
/// stored (possibly transposed) operands.
struct MatmulShape {
  std::vector<std::int64_t> a_dims, b_dims, c_dims;      // logical [..., M, K], [..., K, N], [..., M, N]
  std::vector<std::int64_t> a_strides, b_strides;        // strides of the logical dims
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

/// Matmuls below this many flops run on one thread: they take under 0.1 ms there (one core
/// did 103 MFLOP, 128x784 @ 784x512, in 0.85 ms), and an OpenMP team's workers would spin
/// for about a millisecond afterwards, while the next (TBB) kernel wants their cores.
constexpr double kTeamFlops = 8e6;

class OneDnnMatmul final : public Kernel {
 public:
  OneDnnMatmul(const KernelEnv& env, const MatmulShape& s)
      : dnn_(env.dnn),
        team_(2.0 * static_cast<double>(s.batch * s.m * s.n * s.k) < kTeamFlops ? 1 : env.threads) {
    OneDnn::use_threads(team_);  // oneDNN fixes the work split of a primitive when it is made
    auto& impl = env.dnn.impl();
    const memory::data_type dt = onednn_type(env.out(0).dtype);
    auto md = [&](const std::vector<std::int64_t>& dims, std::vector<std::int64_t> strides) {
      // A broadcast (size-1) batch axis has stride 0 for the reference loop; oneDNN wants a
      // positive one, whose value is irrelevant for a size-1 axis.
      for (std::size_t d = 0; d < dims.size(); ++d)
        if (dims[d] == 1 && strides[d] == 0) strides[d] = 1;
      return memory::desc(memory::dims(dims.begin(), dims.end()), dt, memory::dims(strides.begin(), strides.end()));
    };
    std::vector<std::int64_t> c_strides(s.c_dims.size());
    std::int64_t acc = 1;
    for (std::size_t d = s.c_dims.size(); d-- > 0;) c_strides[d] = acc, acc *= s.c_dims[d];
    onednn_call("creating a matmul primitive", [&] {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const auto a_md = md(s.a_dims, s.a_strides), b_md = md(s.b_dims, s.b_strides), c_md = md(s.c_dims, c_strides);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, impl.engine);
      prim_ = dnnl::matmul(pd);
      a_ = memory(a_md, impl.engine, DNNL_MEMORY_NONE);
      b_ = memory(b_md, impl.engine, DNNL_MEMORY_NONE);
      c_ = memory(c_md, impl.engine, DNNL_MEMORY_NONE);
      scratch_bytes_ = pd.scratchpad_desc().get_size();
      scratch_ = memory(pd.scratchpad_desc(), impl.engine, DNNL_MEMORY_NONE);
      return 0;
    });
    args_.add(DNNL_ARG_SRC, a_);
    args_.add(DNNL_ARG_WEIGHTS, b_);
    args_.add(DNNL_ARG_DST, c_);
    args_.add(DNNL_ARG_SCRATCHPAD, scratch_);
  }

  std::size_t scratch_bytes() const override { return scratch_bytes_; }

  void run(const KernelArgs& a) override {
    OneDnn::use_threads(team_);
    onednn_bind(a_, a.in[0]);
    onednn_bind(b_, a.in[1]);
    onednn_bind(c_, a.out[0]);
    onednn_bind(scratch_, a.scratch);
    onednn_execute(dnn_, prim_, args_, "running a matmul");
  }

 private:
  OneDnn& dnn_;
  int team_;  // OpenMP threads of this matmul
  dnnl::matmul prim_;
  memory a_, b_, c_, scratch_;
  OneDnnArgs args_;
  std::size_t scratch_bytes_ = 0;
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
