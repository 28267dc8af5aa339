// runtime/cpu/shape_ops.cpp — permute, slice (and its backward), concat and broadcast_to.
//
// All five are one strided copy: dims with a source and a destination stride per axis.
// Axes are merged where both sides allow; the innermost axis runs as memcpy when both are
// contiguous, as a fill when the source is broadcast, and element by element otherwise.
// Kernels are dtype-agnostic: they move 1, 2, 4 or 8-byte elements.
#include <cstring>

#include "runtime/cpu/elementwise.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"

namespace trainrt::detail::cpu {

namespace {

struct StridedCopy {
  std::vector<std::int64_t> dims, src, dst;  // strides in elements
  std::int64_t src_offset = 0, dst_offset = 0;

  /// Drops size-1 axes and merges neighbours that are contiguous on both sides.
  void simplify() {
    std::vector<std::int64_t> d, s, t;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] == 1) continue;
      if (!d.empty() && s.back() == src[i] * dims[i] && t.back() == dst[i] * dims[i]) {
        d.back() *= dims[i];
        s.back() = src[i];
        t.back() = dst[i];
      } else {
        d.push_back(dims[i]);
        s.push_back(src[i]);
        t.push_back(dst[i]);
      }
    }
    if (d.empty()) d = {1}, s = {1}, t = {1};
    dims = d, src = s, dst = t;
  }

  template <class E>
  void run(const E* from, E* to) const {
    const std::size_t rank = dims.size();
    const std::int64_t inner = dims[rank - 1], si = src[rank - 1], di = dst[rank - 1];
    std::int64_t rows = 1;
    for (std::size_t i = 0; i + 1 < rank; ++i) rows *= dims[i];
    parallel_for(rows, grain_for(inner), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        std::int64_t so = src_offset, dof = dst_offset, rest = r;
        for (std::size_t i = rank - 1; i-- > 0;) {
          const std::int64_t idx = rest % dims[i];
          rest /= dims[i];
          so += idx * src[i];
          dof += idx * dst[i];
        }
        const E* s = from + so;
        E* d = to + dof;
        if (si == 1 && di == 1) {
          std::memcpy(d, s, static_cast<std::size_t>(inner) * sizeof(E));
        } else if (si == 0) {
          for (std::int64_t i = 0; i < inner; ++i) d[i * di] = s[0];
        } else {
          for (std::int64_t i = 0; i < inner; ++i) d[i * di] = s[i * si];
        }
      }
    });
  }

  void run_bytes(const void* from, void* to, std::size_t element) const {
    switch (element) {
      case 1: return run(static_cast<const std::uint8_t*>(from), static_cast<std::uint8_t*>(to));
      case 2: return run(static_cast<const std::uint16_t*>(from), static_cast<std::uint16_t*>(to));
      case 4: return run(static_cast<const std::uint32_t*>(from), static_cast<std::uint32_t*>(to));
      default: return run(static_cast<const std::uint64_t*>(from), static_cast<std::uint64_t*>(to));
    }
  }
};

std::vector<std::int64_t> dense_strides(const Shape& s) {
  std::vector<std::int64_t> st(static_cast<std::size_t>(s.rank()));
  std::int64_t acc = 1;
  for (std::int64_t d = s.rank() - 1; d >= 0; --d) {
    st[static_cast<std::size_t>(d)] = acc;
    acc *= s[d];
  }
  return st;
}

/// One or more strided copies; slice_backward first zeroes its output.
class CopyKernel final : public Kernel {
 public:
  CopyKernel(std::vector<StridedCopy> copies, std::size_t element, std::size_t zero_bytes)
      : copies_(std::move(copies)), element_(element), zero_bytes_(zero_bytes) {}
  void run(const KernelArgs& a) override {
    if (zero_bytes_) std::memset(a.out[0], 0, zero_bytes_);
    for (std::size_t i = 0; i < copies_.size(); ++i)
      copies_[i].run_bytes(a.in[copies_.size() == 1 ? 0 : i], a.out[0], element_);
  }

 private:
  std::vector<StridedCopy> copies_;
  std::size_t element_;
  std::size_t zero_bytes_;
};

}  // namespace

std::unique_ptr<Kernel> make_shape_kernel(const KernelEnv& env) {
  const Node& n = env.n();
  const Shape& xs = env.in(0).shape;
  const Shape& ys = env.out(0).shape;
  const std::size_t element = size_of(env.out(0).dtype);
  std::vector<StridedCopy> copies;
  std::size_t zero = 0;
  switch (n.kind) {
    case OpKind::Permute: {
      const auto& perm = std::get<PermAttrs>(n.attrs).perm;
      const auto xst = dense_strides(xs);
      StridedCopy c{ys.dims(), {}, dense_strides(ys)};
      for (std::int64_t p : perm) c.src.push_back(xst[static_cast<std::size_t>(p)]);
      copies.push_back(c);
      break;
    }
    case OpKind::Slice:
    case OpKind::SliceBackward: {
      const auto& s = std::get<SliceAttrs>(n.attrs);
      const bool forward = n.kind == OpKind::Slice;
      const Shape& full = forward ? xs : ys;  // the unsliced shape
      const Shape& part = forward ? ys : xs;
      auto fst = dense_strides(full);
      const std::int64_t base = s.start * fst[static_cast<std::size_t>(s.axis)];
      fst[static_cast<std::size_t>(s.axis)] *= s.step;
      StridedCopy c{part.dims(), {}, {}};
      if (forward) c.src = fst, c.dst = dense_strides(part), c.src_offset = base;
      else
        c.src = dense_strides(part), c.dst = fst, c.dst_offset = base,
        zero = static_cast<std::size_t>(ys.numel()) * element;
      copies.push_back(c);
      break;
    }
    case OpKind::Concat: {
      const std::int64_t axis = std::get<AxisAttrs>(n.attrs).axis;
      const auto yst = dense_strides(ys);
      std::int64_t at = 0;
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        const Shape& s = env.in(i).shape;
        copies.push_back({s.dims(), dense_strides(s), yst, 0, at * yst[static_cast<std::size_t>(axis)]});
        at += s[axis];
      }
      break;
    }
    case OpKind::BroadcastTo: {
      const BroadcastPlan p = make_broadcast_plan(ys, {xs});
      StridedCopy c;
      std::int64_t acc = 1;
      c.dims.assign(p.dims, p.dims + p.rank);
      c.dst.resize(static_cast<std::size_t>(p.rank));
      for (int d = p.rank - 1; d >= 0; --d) c.dst[static_cast<std::size_t>(d)] = acc, acc *= p.dims[d];
      c.src.assign(p.stride[0], p.stride[0] + p.rank);
      copies.push_back(c);
      break;
    }
    default: unsupported_dtype(env, env.out(0).dtype);
  }
  for (StridedCopy& c : copies) c.simplify();
  return std::make_unique<CopyKernel>(std::move(copies), element, zero);
}

}  // namespace trainrt::detail::cpu
