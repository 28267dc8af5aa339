// runtime/cpu/conv.cpp — 2-D convolution (NCHW): forward, backward data, backward weights.
//
//   forward:          y[n, o, i, j] = bias[o] + sum_{c in group(o), kh, kw} x[n, c, ih, iw] * w[o, c', kh, kw]
//   backward data:    dx[n, c, ih, iw] = sum_{o in group(c), kh, kw, (i, j) reaching (ih, iw)} g[n, o, i, j]
//                                                                                         * w[o, c', kh, kw]
//   backward weights: dw[o, c', kh, kw] = sum_{n, i, j} g[n, o, i, j] * x[n, c, ih, iw]
// with ih = i * stride - padding + kh * dilation (likewise iw) and c' = c - group * C/groups.
// The bias gradient is a plain sum (autodiff/grad_conv.cpp), so no kernel here computes it.
//
// f32 runs on oneDNN. Our activations are plain NCHW, but oneDNN 2.6's fast AVX-512 kernels
// want channel-blocked layouts (nChw16c, OIhw16i16o); given plain layouts it falls back to
// im2col + GEMM ("x64:gemm:jit"), 2-3x slower. So by default the primitive is created with
// format_tag::any and the operands are reordered into (and the result out of) blocked
// buffers placed in the kernel's scratch; see prefer_blocked() for the measurements and
// the one case where plain wins. Primitives and reorders are created at compile time with
// a user-managed scratchpad, and run() goes through onednn_bind/onednn_execute (oneDNN's
// C API), so it never allocates.
//
// f64 (which oneDNN lacks), and f32 tensors with a zero extent, run reference loops that
// also serve the tests as the oracle of the oneDNN path. Each parallel task owns whole
// output planes (or whole weight filters) and sums in a fixed order, so results do not
// depend on the thread count.
#include <algorithm>
#include <array>
#include <vector>

#include "runtime/cpu/kernel.h"
#include "runtime/cpu/onednn_impl.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

using dnnl::memory;

/// Sizes of one convolution, whatever the op's operand order.
struct ConvGeometry {
  std::int64_t n = 0, c = 0, h = 0, w = 0;   // input x[N, C, H, W]
  std::int64_t o = 0, kh = 0, kw = 0;        // weight w[O, C/groups, KH, KW]
  std::int64_t oh = 0, ow = 0;               // output y[N, O, OH, OW]
  std::int64_t groups = 1;
  std::array<std::int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};

  std::int64_t cg() const { return c / groups; }  // input channels per group
  std::int64_t og() const { return o / groups; }  // output channels per group
  bool empty() const { return n * c * h * w == 0 || o * kh * kw == 0 || oh * ow == 0; }
};

ConvGeometry describe(const KernelEnv& env) {
  const auto& a = std::get<Conv2dAttrs>(env.n().attrs);
  Shape x, w, y;
  switch (env.n().kind) {
    case OpKind::Conv2d: x = env.in(0).shape, w = env.in(1).shape, y = env.out(0).shape; break;
    case OpKind::Conv2dBackwardData: y = env.in(0).shape, w = env.in(1).shape, x = env.out(0).shape; break;
    default: y = env.in(0).shape, x = env.in(1).shape, w = env.out(0).shape; break;  // backward weights
  }
  ConvGeometry s;
  s.n = x[0], s.c = x[1], s.h = x[2], s.w = x[3];
  s.o = w[0], s.kh = w[2], s.kw = w[3];
  s.oh = y[2], s.ow = y[3];
  s.groups = a.groups;
  s.stride = a.stride, s.padding = a.padding, s.dilation = a.dilation;
  return s;
}

// ---- oneDNN (f32) ---------------------------------------------------------------------------

/// Whether to let oneDNN pick (blocked) layouts, paying reorders from and to our plain
/// NCHW tensors, rather than forcing plain layouts on it.
///
/// Measured on the 2-core AVX-512 build machine, oneDNN 2.6 (Debian, OpenMP), 2 threads,
/// with a throwaway program outside the repository: each variant is one complete op call
/// including its reorders and stream.wait(); variants alternate in rounds of >= 200 ms;
/// rounds during which other processes used > 5% of the machine (/proc/stat minus our own
/// getrusage) are dropped; reported is the median call over >= 8 clean rounds.
/// Batch 128, 3x3 kernels, padding 1, stride 1, no bias; milliseconds, plain / any+reorders:
///                      forward         backward data    backward weights
///   1 -> 32, 28x28     1.06 / 0.86     1.35 / 5.64      3.16 / 0.90
///   32 -> 64, 14x14    9.67 / 4.41     11.5 / 4.48      9.42 / 4.97
///   64 -> 128, 7x7     8.73 / 3.33     10.1 / 3.48      7.02 / 3.93
/// With plain descriptors oneDNN picks "x64:gemm:jit"; with any, "jit:avx512_core" on
/// nChw16c activations (the first layer's forward and backward weights keep a plain src).
/// Mixing plain and any per operand always fell back to gemm.
///
/// The one loss is backward data into a tensor with few channels: the blocked diff_src pads
/// C up to 16 while the plain GEMM's cost grows with C. Backward data C -> 32 on 28x28,
/// same method: C=3 3.75 / 5.88, 4 4.89 / 5.86, 5 6.06 / 5.90, 6 7.26 / 5.99,
/// 8 9.61 / 6.19 ms; so below 5 channels backward data stays plain. (The first layer of a
/// network never needs backward data, but a later few-channel layer might.)
bool prefer_blocked(OpKind kind, const ConvGeometry& s) {
  constexpr std::int64_t kFewChannels = 5;
  return !(kind == OpKind::Conv2dBackwardData && s.groups == 1 && s.c < kFewChannels);
}

std::size_t align64(std::size_t bytes) { return (bytes + 63) & ~std::size_t{63}; }

class OneDnnConv final : public Kernel {
 public:
  OneDnnConv(const KernelEnv& env, const ConvGeometry& s, bool has_bias) : kind_(env.n().kind), dnn_(env.dnn) {
    onednn_call("creating a convolution primitive", [&] {
      build(env, s, has_bias);
      return 0;
    });
  }

  std::size_t scratch_bytes() const override { return scratch_bytes_; }

  void run(const KernelArgs& a) override {
    auto* scratch = static_cast<std::byte*>(a.scratch);
    onednn_bind(scratchpad_, scratch);
    for (const Operand& op : operands_) {
      onednn_bind(op.user, op.output ? a.out[op.slot] : a.in[op.slot]);
      if (op.reordered) onednn_bind(op.inner, scratch + op.offset);
    }
    for (const Operand& op : operands_)
      if (op.reordered && !op.output) onednn_execute(dnn_, op.reorder, op.reorder_args, "reordering a conv input");
    onednn_execute(dnn_, prim_, args_, "running a convolution");
    for (const Operand& op : operands_)
      if (op.reordered && op.output) onednn_execute(dnn_, op.reorder, op.reorder_args, "reordering a conv output");
  }

 private:
  /// One argument of the primitive: the caller's plain buffer and, when the primitive
  /// wants another layout, a scratch buffer in that layout with the reorder between them.
  struct Operand {
    int arg = 0;           // DNNL_ARG_*
    int slot = 0;          // index into KernelArgs::in, or ::out for the output
    bool output = false;
    bool reordered = false;
    memory user, inner;    // inner is user when not reordered
    dnnl::reorder reorder;
    OneDnnArgs reorder_args;
    std::size_t offset = 0;             // of inner in the scratch
    std::size_t scratchpad_bytes = 0;   // the reorder's own scratchpad
  };

  void build(const KernelEnv& env, const ConvGeometry& s, bool has_bias) {
    auto& engine = env.dnn.impl().engine;
    const memory::data_type dt = memory::data_type::f32;
    using tag = memory::format_tag;
    const memory::dims x_dims{s.n, s.c, s.h, s.w}, y_dims{s.n, s.o, s.oh, s.ow};
    // Grouped weights are 5-D [G, O/G, C/G, KH, KW]; our [O, C/G, KH, KW] is that in goihw.
    const memory::dims w_dims = s.groups == 1 ? memory::dims{s.o, s.c, s.kh, s.kw}
                                              : memory::dims{s.groups, s.og(), s.cg(), s.kh, s.kw};
    const memory::desc x_plain(x_dims, dt, tag::nchw), y_plain(y_dims, dt, tag::nchw);
    const memory::desc w_plain(w_dims, dt, s.groups == 1 ? tag::oihw : tag::goihw);
    const memory::desc b_plain({s.o}, dt, tag::x);
    const bool blocked = prefer_blocked(kind_, s);
    const memory::desc x_md = blocked ? memory::desc(x_dims, dt, tag::any) : x_plain;
    const memory::desc y_md = blocked ? memory::desc(y_dims, dt, tag::any) : y_plain;
    const memory::desc w_md = blocked ? memory::desc(w_dims, dt, tag::any) : w_plain;
    // oneDNN counts dilation from 0 (dense), PyTorch from 1.
    const memory::dims strides{s.stride[0], s.stride[1]}, pad{s.padding[0], s.padding[1]};
    const memory::dims dil{s.dilation[0] - 1, s.dilation[1] - 1};
    const auto algo = dnnl::algorithm::convolution_direct;

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    using Fwd = dnnl::convolution_forward;
    const auto fwd_desc = has_bias ? Fwd::desc(dnnl::prop_kind::forward_training, algo, x_md, w_md, b_plain, y_md,
                                               strides, dil, pad, pad)
                                   : Fwd::desc(dnnl::prop_kind::forward_training, algo, x_md, w_md, y_md, strides,
                                               dil, pad, pad);
    const Fwd::primitive_desc fwd(fwd_desc, attr, engine);
    memory::desc scratchpad_md;
    switch (kind_) {
      case OpKind::Conv2d:
        prim_ = Fwd(fwd);
        scratchpad_md = fwd.scratchpad_desc();
        add(env, DNNL_ARG_SRC, 0, false, x_plain, fwd.src_desc());
        add(env, DNNL_ARG_WEIGHTS, 1, false, w_plain, fwd.weights_desc());
        if (has_bias) add(env, DNNL_ARG_BIAS, 2, false, b_plain, fwd.bias_desc());
        add(env, DNNL_ARG_DST, 0, true, y_plain, fwd.dst_desc());
        break;
      case OpKind::Conv2dBackwardData: {
        using Bwd = dnnl::convolution_backward_data;
        const Bwd::primitive_desc pd(Bwd::desc(algo, x_md, w_md, y_md, strides, dil, pad, pad), attr, engine, fwd);
        prim_ = Bwd(pd);
        scratchpad_md = pd.scratchpad_desc();
        add(env, DNNL_ARG_DIFF_DST, 0, false, y_plain, pd.diff_dst_desc());
        add(env, DNNL_ARG_WEIGHTS, 1, false, w_plain, pd.weights_desc());
        add(env, DNNL_ARG_DIFF_SRC, 0, true, x_plain, pd.diff_src_desc());
        break;
      }
      default: {
        using Bwd = dnnl::convolution_backward_weights;
        const Bwd::primitive_desc pd(Bwd::desc(algo, x_md, w_md, y_md, strides, dil, pad, pad), attr, engine, fwd);
        prim_ = Bwd(pd);
        scratchpad_md = pd.scratchpad_desc();
        add(env, DNNL_ARG_DIFF_DST, 0, false, y_plain, pd.diff_dst_desc());
        add(env, DNNL_ARG_SRC, 1, false, x_plain, pd.src_desc());
        add(env, DNNL_ARG_DIFF_WEIGHTS, 0, true, w_plain, pd.diff_weights_desc());
        break;
      }
    }
    // Scratch: [shared scratchpad | one buffer per reordered operand]. The reorders and the
    // convolution run one after another on an in-order stream, so they share the scratchpad.
    std::size_t shared = scratchpad_md.get_size();
    for (const Operand& op : operands_)
      if (op.reordered) shared = std::max(shared, op.scratchpad_bytes);
    const memory::desc bytes({static_cast<memory::dim>(shared)}, memory::data_type::u8, tag::x);
    scratchpad_ = memory(shared == scratchpad_md.get_size() ? scratchpad_md : bytes, engine, DNNL_MEMORY_NONE);
    std::size_t offset = align64(shared);
    for (Operand& op : operands_) {
      if (!op.reordered) continue;
      op.offset = offset;
      offset += align64(op.inner.get_desc().get_size());
      op.reorder_args.add(DNNL_ARG_SCRATCHPAD, scratchpad_);
    }
    scratch_bytes_ = offset;
    args_.add(DNNL_ARG_SCRATCHPAD, scratchpad_);
    for (const Operand& op : operands_) args_.add(op.arg, op.inner);
  }

  /// Adds the operand `arg`, stored at `slot` in `plain` layout, which the primitive wants
  /// in layout `wanted`.
  void add(const KernelEnv& env, int arg, int slot, bool output, const memory::desc& plain,
           const memory::desc& wanted) {
    auto& engine = env.dnn.impl().engine;
    Operand op;
    op.arg = arg;
    op.slot = slot;
    op.output = output;
    op.user = memory(plain, engine, DNNL_MEMORY_NONE);
    op.reordered = !(plain == wanted);
    op.inner = op.reordered ? memory(wanted, engine, DNNL_MEMORY_NONE) : op.user;
    if (op.reordered) {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const memory::desc& from = output ? wanted : plain;
      const memory::desc& to = output ? plain : wanted;
      const dnnl::reorder::primitive_desc pd(engine, from, engine, to, attr);
      op.reorder = dnnl::reorder(pd);
      op.scratchpad_bytes = pd.scratchpad_desc().get_size();
      op.reorder_args.add(DNNL_ARG_FROM, output ? op.inner : op.user);
      op.reorder_args.add(DNNL_ARG_TO, output ? op.user : op.inner);
    }
    operands_.push_back(std::move(op));
  }

  OpKind kind_;
  OneDnn& dnn_;
  dnnl::primitive prim_;
  memory scratchpad_;
  std::vector<Operand> operands_;
  OneDnnArgs args_;
  std::size_t scratch_bytes_ = 0;
};

// ---- reference loops (f64; f32 with a zero extent) --------------------------------------------

/// The output positions i in [0, out) whose tap k lands inside [0, in): i * s - p + k * d in
/// [0, in), as the half-open range [lo, hi) (empty when hi <= lo).
struct TapRange {
  std::int64_t lo, hi;
};
TapRange tap_range(std::int64_t in, std::int64_t out, std::int64_t s, std::int64_t p, std::int64_t d, std::int64_t k) {
  const std::int64_t off = k * d - p;  // input index of output 0's tap
  // smallest i with i * s + off >= 0, and the first i with i * s + off >= in
  const std::int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
  const std::int64_t hi = in - off <= 0 ? 0 : (in - off + s - 1) / s;
  return {std::min(lo, out), std::min(hi, out)};
}

template <class T>
class ReferenceConv final : public Kernel {
 public:
  ReferenceConv(OpKind kind, const ConvGeometry& s) : kind_(kind), s_(s) {}

  void run(const KernelArgs& a) override {
    switch (kind_) {
      case OpKind::Conv2d:
        return forward(static_cast<const T*>(a.in[0]), static_cast<const T*>(a.in[1]), static_cast<const T*>(a.in[2]),
                       static_cast<T*>(a.out[0]));
      case OpKind::Conv2dBackwardData:
        return backward_data(static_cast<const T*>(a.in[0]), static_cast<const T*>(a.in[1]), static_cast<T*>(a.out[0]));
      default:
        return backward_weights(static_cast<const T*>(a.in[0]), static_cast<const T*>(a.in[1]),
                                static_cast<T*>(a.out[0]));
    }
  }

 private:
  // Each loop nest visits the taps (c, kh, kw) outside and the output rows/columns inside,
  // so the innermost loop runs along contiguous rows. Ranges come from tap_range, so no
  // bounds test is needed inside.

  /// Offset in an input plane of the tap (kh, kw) of output (i, 0); column j adds j * stride.
  /// It may be negative: only columns in the tap's range are read.
  std::int64_t input_offset(std::int64_t i, std::int64_t kh, std::int64_t kw) const {
    const ConvGeometry& s = s_;
    return (i * s.stride[0] - s.padding[0] + kh * s.dilation[0]) * s.w - s.padding[1] + kw * s.dilation[1];
  }

  void forward(const T* x, const T* w, const T* bias, T* y) const {
    const ConvGeometry& s = s_;
    const std::int64_t plane = s.oh * s.ow;
    parallel_for(s.n * s.o, grain_for(plane * s.cg() * s.kh * s.kw), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t t = lo; t < hi; ++t) {
        const std::int64_t n = t / s.o, o = t % s.o, c0 = (o / s.og()) * s.cg();
        T* yp = y + t * plane;
        std::fill(yp, yp + plane, bias ? bias[o] : T(0));
        for (std::int64_t c = 0; c < s.cg(); ++c) {
          const T* xp = x + (n * s.c + c0 + c) * s.h * s.w;
          for (std::int64_t kh = 0; kh < s.kh; ++kh) {
            const TapRange rows = tap_range(s.h, s.oh, s.stride[0], s.padding[0], s.dilation[0], kh);
            for (std::int64_t kw = 0; kw < s.kw; ++kw) {
              const TapRange cols = tap_range(s.w, s.ow, s.stride[1], s.padding[1], s.dilation[1], kw);
              const T wv = w[((o * s.cg() + c) * s.kh + kh) * s.kw + kw];
              for (std::int64_t i = rows.lo; i < rows.hi; ++i) {
                const std::int64_t xr = input_offset(i, kh, kw);
                T* yr = yp + i * s.ow;
                for (std::int64_t j = cols.lo; j < cols.hi; ++j) yr[j] += wv * xp[xr + j * s.stride[1]];
              }
            }
          }
        }
      }
    });
  }

  void backward_data(const T* g, const T* w, T* dx) const {
    const ConvGeometry& s = s_;
    const std::int64_t plane = s.h * s.w;
    parallel_for(s.n * s.c, grain_for(s.oh * s.ow * s.og() * s.kh * s.kw), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t t = lo; t < hi; ++t) {
        const std::int64_t n = t / s.c, c = t % s.c, grp = c / s.cg(), cl = c % s.cg();
        T* dp = dx + t * plane;
        std::fill(dp, dp + plane, T(0));
        for (std::int64_t ol = 0; ol < s.og(); ++ol) {
          const std::int64_t o = grp * s.og() + ol;
          const T* gp = g + (n * s.o + o) * s.oh * s.ow;
          for (std::int64_t kh = 0; kh < s.kh; ++kh) {
            const TapRange rows = tap_range(s.h, s.oh, s.stride[0], s.padding[0], s.dilation[0], kh);
            for (std::int64_t kw = 0; kw < s.kw; ++kw) {
              const TapRange cols = tap_range(s.w, s.ow, s.stride[1], s.padding[1], s.dilation[1], kw);
              const T wv = w[((o * s.cg() + cl) * s.kh + kh) * s.kw + kw];
              for (std::int64_t i = rows.lo; i < rows.hi; ++i) {
                const std::int64_t dr = input_offset(i, kh, kw);
                const T* gr = gp + i * s.ow;
                for (std::int64_t j = cols.lo; j < cols.hi; ++j) dp[dr + j * s.stride[1]] += wv * gr[j];
              }
            }
          }
        }
      }
    });
  }

  void backward_weights(const T* g, const T* x, T* dw) const {
    const ConvGeometry& s = s_;
    const std::int64_t taps = s.kh * s.kw;
    parallel_for(s.o * s.cg(), grain_for(s.n * s.oh * s.ow * taps), [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t t = lo; t < hi; ++t) {
        const std::int64_t o = t / s.cg(), c = (o / s.og()) * s.cg() + t % s.cg();
        for (std::int64_t kh = 0; kh < s.kh; ++kh) {
          const TapRange rows = tap_range(s.h, s.oh, s.stride[0], s.padding[0], s.dilation[0], kh);
          for (std::int64_t kw = 0; kw < s.kw; ++kw) {
            const TapRange cols = tap_range(s.w, s.ow, s.stride[1], s.padding[1], s.dilation[1], kw);
            T acc = 0;
            for (std::int64_t n = 0; n < s.n; ++n) {
              const T* gp = g + (n * s.o + o) * s.oh * s.ow;
              const T* xp = x + (n * s.c + c) * s.h * s.w;
              for (std::int64_t i = rows.lo; i < rows.hi; ++i) {
                const std::int64_t xr = input_offset(i, kh, kw);
                const T* gr = gp + i * s.ow;
                for (std::int64_t j = cols.lo; j < cols.hi; ++j) acc += gr[j] * xp[xr + j * s.stride[1]];
              }
            }
            dw[t * taps + kh * s.kw + kw] = acc;
          }
        }
      }
    });
  }

  OpKind kind_;
  ConvGeometry s_;
};

}  // namespace

std::unique_ptr<Kernel> make_conv_kernel(const KernelEnv& env) {
  const OpKind kind = env.n().kind;
  const ConvGeometry s = describe(env);
  const DType dtype = env.out(0).dtype;
  switch (dtype) {
    case DType::f32:
      if (s.empty()) return std::make_unique<ReferenceConv<float>>(kind, s);
      return std::make_unique<OneDnnConv>(env, s, kind == OpKind::Conv2d && env.has(2));
    case DType::f64: return std::make_unique<ReferenceConv<double>>(kind, s);
    default: unsupported_dtype(env, dtype);
  }
}

}  // namespace trainrt::detail::cpu
