// runtime/cpu/conv_weights.cpp — the f32 weight gradient of a convolution, split by output
// channels rather than by batch.
//
// conv.cpp cuts every convolution into batch pieces. For the weight gradient each piece then
// produces a whole partial dW, and the pieces' partials are summed in order. That costs
// pieces x |dW| of writes and reads, which is nothing for the early layers of a CNN (small
// filters, large images) and dominates the late ones: ResNet-18's 512 -> 512 3x3 layers on
// 4x4 images, batch 32, 16 pieces, write and sum 16 x 9.4 MB per call; measured on the
// 2-core build machine that call took 35-44 ms, against 11 ms for the forward convolution of
// the same size.
//
// Here each piece owns a range of output channels instead: it runs one single-threaded
// oneDNN backward-weights primitive over the whole batch for its channels, so no partials
// exist and each filter is computed by exactly one piece — the result does not depend on the
// thread count. Per call:
//   1. x (plain NCHW, whole batch) is reordered once into the primitive's blocked layout,
//      shared by every piece;
//   2. each piece reorders its slice of dy (channels [o0, o1) of every sample: a strided view
//      of the plain tensor) into a dense blocked buffer, runs the primitive, and reorders
//      its blocked dW slice into rows [o0, o1) of the plain dW (contiguous in OIHW).
// make_conv_weights_by_channels chooses this split when the batch split's partials would
// move more bytes than the activations themselves.
#include <tbb/task_arena.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "runtime/cpu/conv_internal.h"
#include "runtime/cpu/onednn_impl.h"
#include "runtime/cpu/parallel.h"

namespace trainrt::detail::cpu {

namespace {

using dnnl::memory;

/// Output channels come in blocks of 16, the channel block of oneDNN's AVX-512 layouts, so
/// that a piece's slice never splits a block.
constexpr std::int64_t kChannelBlock = 16;

class OneDnnConvWeightsByChannels final : public Kernel {
 public:
  OneDnnConvWeightsByChannels(const KernelEnv& env, const ConvGeometry& s, std::int64_t pieces)
      : s_(s), slots_(std::max(env.threads, 1)) {
    const std::int64_t blocks = (s.o + kChannelBlock - 1) / kChannelBlock;
    piece_channels_ = ((blocks + pieces - 1) / pieces) * kChannelBlock;
    pieces_ = (s.o + piece_channels_ - 1) / piece_channels_;
    onednn_call("creating a convolution weight-gradient primitive", [&] {
      build(env);
      return 0;
    });
  }

  std::size_t scratch_bytes() const override { return scratch_bytes_; }

  void run(const KernelArgs& a) override {
    auto* scratch = static_cast<std::byte*>(a.scratch);
    OneDnn::single_thread();
    if (x_reordered_) {  // once per call: every piece reads all of x
      onednn_bind(x_user_, a.in[1]);
      onednn_bind(x_inner_, scratch);
      onednn_bind(x_scratchpad_, scratch + slots_offset_);  // slot 0, free until the pieces start
      onednn_execute(x_stream_, x_reorder_, x_args_, "reordering a conv input");
    }
    parallel_for(pieces_, 1, [&](std::int64_t lo, std::int64_t hi) {
      OneDnn::single_thread();
      const int slot = tbb::this_task_arena::current_thread_index();
      check_internal(slot >= 0 && slot < slots_, "conv weights: a worker index outside the arena's scratch slots");
      for (std::int64_t p = lo; p < hi; ++p) run_piece(a, scratch, slot, p);
    });
  }

 private:
  /// The primitive and reorders of one slice width (the main width, or the tail's).
  struct Shape {
    std::int64_t channels = 0;
    dnnl::primitive prim;
    dnnl::reorder dy_reorder, dw_reorder;
  };
  /// One worker's memory objects and stream for one Shape.
  struct Runner {
    dnnl::stream stream;
    memory scratchpad, x, dy_user, dy_inner, dw_inner, dw_user;
    OneDnnArgs conv_args, dy_args, dw_args;
  };

  void build(const KernelEnv& env);
  void run_piece(const KernelArgs& a, std::byte* scratch, int slot, std::int64_t p);

  ConvGeometry s_;
  int slots_;
  std::int64_t pieces_ = 1, piece_channels_ = kChannelBlock;
  std::vector<Shape> shapes_;                 // [main] or [main, tail]
  std::vector<std::vector<Runner>> runners_;  // [shape][slot]
  bool x_reordered_ = false;
  memory x_user_, x_inner_, x_scratchpad_;
  dnnl::reorder x_reorder_;
  dnnl::stream x_stream_;
  OneDnnArgs x_args_;
  // Scratch: [x in the primitive's layout | slot 0 | slot 1 | ...], a slot being
  // [scratchpad | dy slice, blocked | dW slice, blocked].
  std::size_t slots_offset_ = 0, slot_bytes_ = 0, dy_offset_ = 0, dw_offset_ = 0, scratch_bytes_ = 0;
};

void OneDnnConvWeightsByChannels::build(const KernelEnv& env) {
  auto& engine = env.dnn.impl().engine;
  const ConvGeometry& s = s_;
  const memory::data_type dt = memory::data_type::f32;
  using tag = memory::format_tag;
  const memory::dims strides{s.stride[0], s.stride[1]}, pad{s.padding[0], s.padding[1]};
  const memory::dims dil{s.dilation[0] - 1, s.dilation[1] - 1};  // oneDNN counts dilation from 0
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  OneDnn::single_thread();  // each piece runs on one thread: see OneDnnConv::build

  const memory::dims x_dims{s.n, s.c, s.h, s.w};
  const memory::desc x_plain(x_dims, dt, tag::nchw);
  const std::int64_t tail = s.o - (pieces_ - 1) * piece_channels_;
  std::vector<std::int64_t> widths{piece_channels_};
  if (tail != piece_channels_) widths.push_back(tail);

  std::size_t scratchpad = 0, dy_bytes = 0, dw_bytes = 0;
  memory::desc x_wanted;
  std::vector<memory::desc> dy_wanted, dw_wanted, dy_plain, dw_plain;
  for (const std::int64_t oc : widths) {
    const memory::dims y_dims{s.n, oc, s.oh, s.ow}, w_dims{oc, s.c, s.kh, s.kw};
    const memory::desc x_any(x_dims, dt, tag::any), y_any(y_dims, dt, tag::any), w_any(w_dims, dt, tag::any);
    using Fwd = dnnl::convolution_forward;
    using Bwd = dnnl::convolution_backward_weights;
    const Fwd::primitive_desc fwd(
        Fwd::desc(dnnl::prop_kind::forward_training, algo, x_any, w_any, y_any, strides, dil, pad, pad), attr, engine);
    const Bwd::primitive_desc pd(Bwd::desc(algo, x_any, w_any, y_any, strides, dil, pad, pad), attr, engine, fwd);
    if (x_wanted.get_size() == 0) {
      x_wanted = pd.src_desc();
    } else if (!(x_wanted == pd.src_desc())) {
      // Both widths must read the one shared reordered x.
      check_internal(false, "conv weights: oneDNN wants different layouts of x for the main and tail slices");
    }
    // dy's slice of channels [o0, o0 + oc) of every sample: the plain tensor's strides.
    const memory::desc dy_view(y_dims, dt, memory::dims{s.o * s.oh * s.ow, s.oh * s.ow, s.ow, 1});
    const memory::desc dw_rows(w_dims, dt, tag::oihw);  // contiguous rows of the plain dW
    Shape shape;
    shape.channels = oc;
    shape.prim = Bwd(pd);
    const dnnl::reorder::primitive_desc dy_r(engine, dy_view, engine, pd.diff_dst_desc(), attr);
    const dnnl::reorder::primitive_desc dw_r(engine, pd.diff_weights_desc(), engine, dw_rows, attr);
    shape.dy_reorder = dnnl::reorder(dy_r);
    shape.dw_reorder = dnnl::reorder(dw_r);
    scratchpad = std::max({scratchpad, pd.scratchpad_desc().get_size(), dy_r.scratchpad_desc().get_size(),
                           dw_r.scratchpad_desc().get_size()});
    dy_bytes = std::max(dy_bytes, pd.diff_dst_desc().get_size());
    dw_bytes = std::max(dw_bytes, pd.diff_weights_desc().get_size());
    dy_wanted.push_back(pd.diff_dst_desc());
    dw_wanted.push_back(pd.diff_weights_desc());
    dy_plain.push_back(dy_view);
    dw_plain.push_back(dw_rows);
    shapes_.push_back(std::move(shape));
  }

  x_reordered_ = !(x_plain == x_wanted);
  std::size_t x_bytes = 0;
  if (x_reordered_) {
    const dnnl::reorder::primitive_desc rpd(engine, x_plain, engine, x_wanted, attr);
    x_reorder_ = dnnl::reorder(rpd);
    scratchpad = std::max(scratchpad, rpd.scratchpad_desc().get_size());
    x_bytes = align64(x_wanted.get_size());
  }
  const memory::desc pad_md({static_cast<memory::dim>(std::max<std::size_t>(scratchpad, 1))}, memory::data_type::u8,
                            tag::x);
  if (x_reordered_) {
    x_user_ = memory(x_plain, engine, DNNL_MEMORY_NONE);
    x_inner_ = memory(x_wanted, engine, DNNL_MEMORY_NONE);
    x_scratchpad_ = memory(pad_md, engine, DNNL_MEMORY_NONE);
    x_stream_ = dnnl::stream(engine);
    x_args_.add(DNNL_ARG_FROM, x_user_);
    x_args_.add(DNNL_ARG_TO, x_inner_);
    x_args_.add(DNNL_ARG_SCRATCHPAD, x_scratchpad_);
  }

  slots_offset_ = x_bytes;
  dy_offset_ = align64(scratchpad);
  dw_offset_ = dy_offset_ + align64(dy_bytes);
  slot_bytes_ = dw_offset_ + align64(dw_bytes);
  scratch_bytes_ = slots_offset_ + static_cast<std::size_t>(slots_) * slot_bytes_;

  runners_.resize(shapes_.size());
  for (std::size_t k = 0; k < shapes_.size(); ++k) {
    for (int w = 0; w < slots_; ++w) {
      Runner r;
      r.stream = dnnl::stream(engine);
      r.scratchpad = memory(pad_md, engine, DNNL_MEMORY_NONE);
      r.x = memory(x_wanted, engine, DNNL_MEMORY_NONE);
      r.dy_user = memory(dy_plain[k], engine, DNNL_MEMORY_NONE);
      r.dy_inner = memory(dy_wanted[k], engine, DNNL_MEMORY_NONE);
      r.dw_inner = memory(dw_wanted[k], engine, DNNL_MEMORY_NONE);
      r.dw_user = memory(dw_plain[k], engine, DNNL_MEMORY_NONE);
      r.dy_args.add(DNNL_ARG_FROM, r.dy_user);
      r.dy_args.add(DNNL_ARG_TO, r.dy_inner);
      r.dy_args.add(DNNL_ARG_SCRATCHPAD, r.scratchpad);
      r.conv_args.add(DNNL_ARG_SRC, r.x);
      r.conv_args.add(DNNL_ARG_DIFF_DST, r.dy_inner);
      r.conv_args.add(DNNL_ARG_DIFF_WEIGHTS, r.dw_inner);
      r.conv_args.add(DNNL_ARG_SCRATCHPAD, r.scratchpad);
      r.dw_args.add(DNNL_ARG_FROM, r.dw_inner);
      r.dw_args.add(DNNL_ARG_TO, r.dw_user);
      r.dw_args.add(DNNL_ARG_SCRATCHPAD, r.scratchpad);
      runners_[k].push_back(std::move(r));
    }
  }
}

void OneDnnConvWeightsByChannels::run_piece(const KernelArgs& a, std::byte* scratch, int slot, std::int64_t p) {
  const std::size_t k = (shapes_.size() > 1 && p == pieces_ - 1) ? 1 : 0;
  Runner& r = runners_[k][static_cast<std::size_t>(slot)];
  std::byte* base = scratch + slots_offset_ + static_cast<std::size_t>(slot) * slot_bytes_;
  const std::int64_t o0 = p * piece_channels_;
  const auto* dy = static_cast<const float*>(a.in[0]);
  auto* dw = static_cast<float*>(a.out[0]);
  onednn_bind(r.scratchpad, base);
  onednn_bind(r.x, x_reordered_ ? static_cast<const void*>(scratch) : a.in[1]);
  onednn_bind(r.dy_user, dy + o0 * s_.oh * s_.ow);
  onednn_bind(r.dy_inner, base + dy_offset_);
  onednn_bind(r.dw_inner, base + dw_offset_);
  onednn_bind(r.dw_user, dw + o0 * s_.c * s_.kh * s_.kw);
  const Shape& shape = shapes_[k];
  onednn_execute(r.stream, shape.dy_reorder, r.dy_args, "reordering a conv output gradient");
  onednn_execute(r.stream, shape.prim, r.conv_args, "running a convolution weight gradient");
  onednn_execute(r.stream, shape.dw_reorder, r.dw_args, "reordering a weight gradient");
}

}  // namespace

std::int64_t conv_weight_channel_pieces(const ConvGeometry& s) {
  if (s.groups != 1 || s.o < 2 * kChannelBlock || s.empty()) return 0;
  const std::int64_t by_channels = pieces_by_work(s, (s.o + kChannelBlock - 1) / kChannelBlock);
  const std::int64_t by_batch = pieces_by_work(s, s.n);
  if (by_channels < 2) return 0;
  // The batch split writes, then reads, one partial dW per piece; the channel split reads x
  // and dy once more than the batch split does (to reorder them). The fewer bytes win.
  const double weight_bytes = 4.0 * static_cast<double>(s.o * s.c * s.kh * s.kw);
  const double activation_bytes = 4.0 * static_cast<double>(s.n * (s.c * s.h * s.w + s.o * s.oh * s.ow));
  return 2.0 * static_cast<double>(by_batch) * weight_bytes > 2.0 * activation_bytes ? by_channels : 0;
}

std::unique_ptr<Kernel> make_conv_weights_by_channels(const KernelEnv& env, const ConvGeometry& s) {
  const std::int64_t pieces = conv_weight_channel_pieces(s);
  if (pieces == 0) return nullptr;
  return std::make_unique<OneDnnConvWeightsByChannels>(env, s, pieces);
}

}  // namespace trainrt::detail::cpu
