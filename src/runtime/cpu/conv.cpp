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
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "runtime/cpu/conv_internal.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/onednn_impl.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

using dnnl::memory;

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

/// Batch pieces of one call (conv_internal.h's pieces_by_work, at most one per sample).
std::int64_t pieces_for(const ConvGeometry& s) { return pieces_by_work(s, s.n); }

/// f32 convolution on oneDNN, cut into batch pieces that run as TBB tasks, each piece a
/// single-threaded oneDNN call.
///
/// Why pieces rather than oneDNN's own threads: Debian's oneDNN parallelizes with OpenMP,
/// whose idle workers spin for about a millisecond after every call, taking cores from the
/// TBB kernels that run next (a CNN step at 2 threads: 72 ms, against 60 ms with
/// OMP_WAIT_POLICY=passive). Run on fixed batch pieces inside our own task arena, the
/// convolutions are as fast (32->64 channels on 14x14, batch 128, forward: 3.88 ms on
/// OpenMP's 2 threads; 3.88-3.90 ms as 2, 4 or 8 pieces on 2 TBB threads), nothing spins,
/// and every result — the weight gradient too, summed over pieces in order — is the same
/// whatever the number of threads.
///
/// Layout: the pieces' primitives and reorders are made once, at compile time, for the
/// piece batch (and a tail piece when the batch does not divide). Weights are reordered
/// once per call, before the pieces; activations are reordered per piece into the worker's
/// own scratch slot. Scratch:
///   [weights in the primitive's layout | slot 0 | slot 1 | ... | weight-gradient partials]
/// where a slot holds one scratchpad (shared by a piece's reorders and convolution, which
/// run in order) and the reordered activations of one piece.
class OneDnnConv final : public Kernel {
 public:
  OneDnnConv(const KernelEnv& env, const ConvGeometry& s, bool has_bias)
      : kind_(env.n().kind), s_(s), has_bias_(has_bias), slots_(std::max(env.threads, 1)) {
    pieces_ = pieces_for(s);
    piece_batch_ = (s.n + pieces_ - 1) / pieces_;
    pieces_ = (s.n + piece_batch_ - 1) / piece_batch_;
    onednn_call("creating a convolution primitive", [&] {
      build(env);
      return 0;
    });
  }

  std::size_t scratch_bytes() const override { return scratch_bytes_; }

  void run(const KernelArgs& a) override {
    auto* scratch = static_cast<std::byte*>(a.scratch);
    if (weights_.reordered) {  // once per call, shared by every piece
      onednn_bind(weights_.user, a.in[1]);
      onednn_bind(weights_.inner, scratch);
      onednn_bind(weights_.scratchpad, scratch + slot_offset_);
      OneDnn::single_thread();
      onednn_execute(weights_.stream, weights_.reorder, weights_.args, "reordering conv weights");
    }
    parallel_for(pieces_, 1, [&](std::int64_t lo, std::int64_t hi) {
      OneDnn::single_thread();
      const int slot = tbb::this_task_arena::current_thread_index();
      check_internal(slot >= 0 && slot < slots_, "conv: a worker index outside the arena's scratch slots");
      for (std::int64_t p = lo; p < hi; ++p) run_piece(a, scratch, slot, p);
    });
    if (kind_ == OpKind::Conv2dBackwardWeight) sum_partials(a, scratch);
  }

 private:
  /// An activation operand (sliced along the batch) of a piece.
  struct Act {
    int arg = 0;   // DNNL_ARG_*
    int slot = 0;  // index into KernelArgs::in, or ::out for the output
    bool output = false;
    bool reordered = false;
    std::int64_t sample_bytes = 0;  // bytes of one sample in the plain tensor
    std::size_t inner_offset = 0;   // in the scratch slot
  };
  /// One primitive shape: the main piece or the tail.
  struct Shape {
    std::int64_t batch = 0;
    dnnl::primitive prim;
    std::vector<dnnl::reorder> reorders;  // per Act (empty handle when not reordered)
  };
  /// What one worker needs to run one shape: its own memory objects and stream.
  struct Runner {
    dnnl::stream stream;
    memory scratchpad, weights, bias, weight_grad;
    std::vector<memory> user, inner;  // per Act
    OneDnnArgs args;
    std::vector<OneDnnArgs> reorder_args;  // per Act
  };
  /// The weights' one reorder per call (forward and backward data).
  struct Weights {
    bool reordered = false;
    memory user, inner, scratchpad;
    dnnl::reorder reorder;
    dnnl::stream stream;
    OneDnnArgs args;
  };

  void build(const KernelEnv& env);
  void run_piece(const KernelArgs& a, std::byte* scratch, int slot, std::int64_t p);
  void sum_partials(const KernelArgs& a, std::byte* scratch);

  OpKind kind_;
  ConvGeometry s_;
  bool has_bias_;
  int slots_;
  std::int64_t pieces_ = 1, piece_batch_ = 1;
  std::vector<Act> acts_;
  std::vector<Shape> shapes_;                 // [main] or [main, tail]
  std::vector<std::vector<Runner>> runners_;  // [shape][slot]
  Weights weights_;
  memory::desc grad_md_;  // backward weights: the primitive's diff_weights layout
  bool grad_reordered_ = false;
  dnnl::reorder grad_reorder_;
  Runner grad_runner_;  // binds the summed gradient and the caller's buffer
  std::size_t weights_bytes_ = 0, slot_offset_ = 0, slot_bytes_ = 0, partial_offset_ = 0, grad_bytes_ = 0;
  std::size_t scratch_bytes_ = 0;
};

void OneDnnConv::build(const KernelEnv& env) {
  auto& engine = env.dnn.impl().engine;
  const ConvGeometry& s = s_;
  const memory::data_type dt = memory::data_type::f32;
  using tag = memory::format_tag;
  // Grouped weights are 5-D [G, O/G, C/G, KH, KW]; our [O, C/G, KH, KW] is that in goihw.
  const memory::dims w_dims =
      s.groups == 1 ? memory::dims{s.o, s.c, s.kh, s.kw} : memory::dims{s.groups, s.og(), s.cg(), s.kh, s.kw};
  const memory::desc w_plain(w_dims, dt, s.groups == 1 ? tag::oihw : tag::goihw);
  const memory::desc b_plain({s.o}, dt, tag::x);
  const bool blocked = prefer_blocked(kind_, s);
  const memory::dims strides{s.stride[0], s.stride[1]}, pad{s.padding[0], s.padding[1]};
  const memory::dims dil{s.dilation[0] - 1, s.dilation[1] - 1};  // oneDNN counts dilation from 0
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Primitives are made for one thread: oneDNN fixes a primitive's work split when it is
  // created, and each piece runs on one thread.
  OneDnn::single_thread();

  const std::int64_t tail = s.n - (pieces_ - 1) * piece_batch_;
  std::vector<std::int64_t> batches{piece_batch_};
  if (tail != piece_batch_) batches.push_back(tail);
  std::size_t scratchpad = 0, inner_bytes = 0;
  memory::desc w_wanted;
  std::vector<std::vector<memory::desc>> wanted(batches.size());  // per shape, per Act
  std::vector<memory::desc> plains;                               // per Act, for the main shape
  for (std::size_t k = 0; k < batches.size(); ++k) {
    const std::int64_t nb = batches[k];
    const memory::dims x_dims{nb, s.c, s.h, s.w}, y_dims{nb, s.o, s.oh, s.ow};
    const memory::desc x_plain(x_dims, dt, tag::nchw), y_plain(y_dims, dt, tag::nchw);
    const memory::desc x_md = blocked ? memory::desc(x_dims, dt, tag::any) : x_plain;
    const memory::desc y_md = blocked ? memory::desc(y_dims, dt, tag::any) : y_plain;
    const memory::desc w_md = blocked ? memory::desc(w_dims, dt, tag::any) : w_plain;
    using Fwd = dnnl::convolution_forward;
    const auto fwd_desc =
        has_bias_
            ? Fwd::desc(dnnl::prop_kind::forward_training, algo, x_md, w_md, b_plain, y_md, strides, dil, pad, pad)
            : Fwd::desc(dnnl::prop_kind::forward_training, algo, x_md, w_md, y_md, strides, dil, pad, pad);
    const Fwd::primitive_desc fwd(fwd_desc, attr, engine);
    Shape shape;
    shape.batch = nb;
    // (operand, plain layout, wanted layout) of the activations, in execution order.
    std::vector<std::tuple<Act, memory::desc, memory::desc>> acts;
    auto act = [&](int arg, int slot, bool output, const memory::desc& plain, const memory::desc& want) {
      Act a;
      a.arg = arg, a.slot = slot, a.output = output;
      a.reordered = !(plain == want);
      a.sample_bytes = static_cast<std::int64_t>(plain.get_size()) / nb;
      acts.emplace_back(a, plain, want);
    };
    switch (kind_) {
      case OpKind::Conv2d:
        shape.prim = Fwd(fwd);
        scratchpad = std::max(scratchpad, fwd.scratchpad_desc().get_size());
        w_wanted = fwd.weights_desc();
        act(DNNL_ARG_SRC, 0, false, x_plain, fwd.src_desc());
        act(DNNL_ARG_DST, 0, true, y_plain, fwd.dst_desc());
        break;
      case OpKind::Conv2dBackwardData: {
        using Bwd = dnnl::convolution_backward_data;
        const Bwd::primitive_desc pd(Bwd::desc(algo, x_md, w_md, y_md, strides, dil, pad, pad), attr, engine, fwd);
        shape.prim = Bwd(pd);
        scratchpad = std::max(scratchpad, pd.scratchpad_desc().get_size());
        w_wanted = pd.weights_desc();
        act(DNNL_ARG_DIFF_DST, 0, false, y_plain, pd.diff_dst_desc());
        act(DNNL_ARG_DIFF_SRC, 0, true, x_plain, pd.diff_src_desc());
        break;
      }
      default: {
        using Bwd = dnnl::convolution_backward_weights;
        const Bwd::primitive_desc pd(Bwd::desc(algo, x_md, w_md, y_md, strides, dil, pad, pad), attr, engine, fwd);
        shape.prim = Bwd(pd);
        scratchpad = std::max(scratchpad, pd.scratchpad_desc().get_size());
        grad_md_ = pd.diff_weights_desc();
        act(DNNL_ARG_DIFF_DST, 0, false, y_plain, pd.diff_dst_desc());
        act(DNNL_ARG_SRC, 1, false, x_plain, pd.src_desc());
        break;
      }
    }
    if (k == 0) {
      for (auto& [a, plain, want] : acts) {
        acts_.push_back(a);
        plains.push_back(plain);
      }
    }
    std::size_t offset = 0;
    for (std::size_t i = 0; i < acts.size(); ++i) {
      const auto& [a, plain, want] = acts[i];
      wanted[k].push_back(want);
      dnnl::reorder r;
      if (a.reordered) {
        const dnnl::reorder::primitive_desc rpd(engine, a.output ? want : plain, engine, a.output ? plain : want, attr);
        r = dnnl::reorder(rpd);
        scratchpad = std::max(scratchpad, rpd.scratchpad_desc().get_size());
        if (k == 0) acts_[i].inner_offset = offset;
        offset += align64(want.get_size());
      }
      shape.reorders.push_back(r);
    }
    inner_bytes = std::max(inner_bytes, offset);
    shapes_.push_back(std::move(shape));
  }

  // The weights (forward, backward data): reordered once per call when the layout differs.
  const memory::desc b_md = b_plain;
  if (kind_ != OpKind::Conv2dBackwardWeight) {
    weights_.reordered = !(w_plain == w_wanted);
    weights_.user = memory(w_plain, engine, DNNL_MEMORY_NONE);
    weights_.inner = weights_.reordered ? memory(w_wanted, engine, DNNL_MEMORY_NONE) : weights_.user;
    if (weights_.reordered) {
      const dnnl::reorder::primitive_desc rpd(engine, w_plain, engine, w_wanted, attr);
      weights_.reorder = dnnl::reorder(rpd);
      scratchpad = std::max(scratchpad, rpd.scratchpad_desc().get_size());
      weights_.stream = dnnl::stream(engine);
      weights_.args.add(DNNL_ARG_FROM, weights_.user);
      weights_.args.add(DNNL_ARG_TO, weights_.inner);
      weights_bytes_ = align64(w_wanted.get_size());
    }
  } else {
    grad_reordered_ = !(w_plain == grad_md_);
    grad_bytes_ = align64(grad_md_.get_size());
    if (grad_reordered_) {
      const dnnl::reorder::primitive_desc rpd(engine, grad_md_, engine, w_plain, attr);
      grad_reorder_ = dnnl::reorder(rpd);
      scratchpad = std::max(scratchpad, rpd.scratchpad_desc().get_size());
      grad_runner_.stream = dnnl::stream(engine);
      grad_runner_.weight_grad = memory(grad_md_, engine, DNNL_MEMORY_NONE);
      grad_runner_.weights = memory(w_plain, engine, DNNL_MEMORY_NONE);
      grad_runner_.scratchpad = memory(
          memory::desc({static_cast<memory::dim>(std::max<std::size_t>(scratchpad, 1))}, memory::data_type::u8, tag::x),
          engine, DNNL_MEMORY_NONE);
      grad_runner_.args.add(DNNL_ARG_FROM, grad_runner_.weight_grad);
      grad_runner_.args.add(DNNL_ARG_TO, grad_runner_.weights);
      grad_runner_.args.add(DNNL_ARG_SCRATCHPAD, grad_runner_.scratchpad);
    }
  }
  const memory::desc pad_md({static_cast<memory::dim>(std::max<std::size_t>(scratchpad, 1))}, memory::data_type::u8,
                            tag::x);
  if (weights_.reordered) {
    weights_.scratchpad = memory(pad_md, engine, DNNL_MEMORY_NONE);
    weights_.args.add(DNNL_ARG_SCRATCHPAD, weights_.scratchpad);
  }

  // Scratch layout (see the class comment).
  slot_offset_ = weights_bytes_;
  slot_bytes_ = align64(scratchpad) + inner_bytes;
  for (Act& a : acts_) a.inner_offset += align64(scratchpad);
  partial_offset_ = slot_offset_ + static_cast<std::size_t>(slots_) * slot_bytes_;
  scratch_bytes_ =
      partial_offset_ + (kind_ == OpKind::Conv2dBackwardWeight ? static_cast<std::size_t>(pieces_) * grad_bytes_ : 0);

  // Runners: every shape for every worker slot, each with its own memory objects.
  runners_.resize(shapes_.size());
  for (std::size_t k = 0; k < shapes_.size(); ++k) {
    const std::int64_t nb = shapes_[k].batch;
    for (int w = 0; w < slots_; ++w) {
      Runner r;
      r.stream = dnnl::stream(engine);
      r.scratchpad = memory(pad_md, engine, DNNL_MEMORY_NONE);
      r.args.add(DNNL_ARG_SCRATCHPAD, r.scratchpad);
      for (std::size_t i = 0; i < acts_.size(); ++i) {
        const Act& a = acts_[i];
        memory::dims dims = plains[i].dims();
        dims[0] = nb;
        const memory::desc plain(dims, dt, tag::nchw);
        r.user.emplace_back(plain, engine, static_cast<void*>(DNNL_MEMORY_NONE));
        r.inner.push_back(a.reordered ? memory(wanted[k][i], engine, DNNL_MEMORY_NONE) : r.user.back());
        r.args.add(a.arg, r.inner.back());
        OneDnnArgs ra;
        if (a.reordered) {
          ra.add(DNNL_ARG_FROM, a.output ? r.inner.back() : r.user.back());
          ra.add(DNNL_ARG_TO, a.output ? r.user.back() : r.inner.back());
          ra.add(DNNL_ARG_SCRATCHPAD, r.scratchpad);
        }
        r.reorder_args.push_back(std::move(ra));
      }
      if (kind_ == OpKind::Conv2dBackwardWeight) {
        r.weight_grad = memory(grad_md_, engine, DNNL_MEMORY_NONE);
        r.args.add(DNNL_ARG_DIFF_WEIGHTS, r.weight_grad);
      } else {
        r.weights = memory(weights_.reordered ? w_wanted : w_plain, engine, DNNL_MEMORY_NONE);
        r.args.add(DNNL_ARG_WEIGHTS, r.weights);
        if (kind_ == OpKind::Conv2d && has_bias_) {
          r.bias = memory(b_md, engine, DNNL_MEMORY_NONE);
          r.args.add(DNNL_ARG_BIAS, r.bias);
        }
      }
      runners_[k].push_back(std::move(r));
    }
  }
}

void OneDnnConv::run_piece(const KernelArgs& a, std::byte* scratch, int slot, std::int64_t p) {
  const std::size_t k = (shapes_.size() > 1 && p == pieces_ - 1) ? 1 : 0;
  Runner& r = runners_[k][static_cast<std::size_t>(slot)];
  std::byte* slot_base = scratch + slot_offset_ + static_cast<std::size_t>(slot) * slot_bytes_;
  const std::int64_t first = p * piece_batch_;
  onednn_bind(r.scratchpad, slot_base);
  for (std::size_t i = 0; i < acts_.size(); ++i) {
    const Act& act = acts_[i];
    const auto* base = static_cast<const std::byte*>(act.output ? a.out[act.slot] : a.in[act.slot]);
    onednn_bind(r.user[i], base + first * act.sample_bytes);
    if (act.reordered) onednn_bind(r.inner[i], slot_base + act.inner_offset);
  }
  if (kind_ == OpKind::Conv2dBackwardWeight) {
    onednn_bind(r.weight_grad, scratch + partial_offset_ + static_cast<std::size_t>(p) * grad_bytes_);
  } else {
    onednn_bind(r.weights, weights_.reordered ? static_cast<const void*>(scratch) : a.in[1]);
    if (kind_ == OpKind::Conv2d && has_bias_) onednn_bind(r.bias, a.in[2]);
  }
  const Shape& shape = shapes_[k];
  for (std::size_t i = 0; i < acts_.size(); ++i)
    if (acts_[i].reordered && !acts_[i].output)
      onednn_execute(r.stream, shape.reorders[i], r.reorder_args[i], "reordering a conv input");
  onednn_execute(r.stream, shape.prim, r.args, "running a convolution");
  for (std::size_t i = 0; i < acts_.size(); ++i)
    if (acts_[i].reordered && acts_[i].output)
      onednn_execute(r.stream, shape.reorders[i], r.reorder_args[i], "reordering a conv output");
}

/// dW = the sum over pieces of their partial gradients, in piece order (element by element,
/// in parallel over elements), then into the caller's layout.
void OneDnnConv::sum_partials(const KernelArgs& a, std::byte* scratch) {
  const auto n = static_cast<std::int64_t>(grad_md_.get_size() / sizeof(float));
  auto* total = reinterpret_cast<float*>(scratch + partial_offset_);
  float* out = grad_reordered_ ? total : static_cast<float*>(a.out[0]);
  const std::size_t stride = grad_bytes_ / sizeof(float);
  parallel_for(n, kSerialElements / std::max<std::int64_t>(pieces_, 1), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      float v = total[i];
      for (std::int64_t p = 1; p < pieces_; ++p)
        v += total[static_cast<std::size_t>(p) * stride + static_cast<std::size_t>(i)];
      out[i] = v;
    }
  });
  if (grad_reordered_) {
    onednn_bind(grad_runner_.weight_grad, total);
    onednn_bind(grad_runner_.weights, a.out[0]);
    onednn_bind(grad_runner_.scratchpad, scratch + slot_offset_);  // slot 0 is free by now
    OneDnn::single_thread();
    onednn_execute(grad_runner_.stream, grad_reorder_, grad_runner_.args, "reordering a weight gradient");
  }
}

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
      if (kind == OpKind::Conv2dBackwardWeight) {
        if (auto k = make_conv_weights_by_channels(env, s)) return k;
      }
      return std::make_unique<OneDnnConv>(env, s, kind == OpKind::Conv2d && env.has(2));
    case DType::f64: return std::make_unique<ReferenceConv<double>>(kind, s);
    default: unsupported_dtype(env, dtype);
  }
}

}  // namespace trainrt::detail::cpu
