// ir/attrs.cpp — equality and hashing of node attributes (see attrs.h).
//
// Each of AttrsEqual and AttrsHash has one overload per alternative of Attrs and a template
// catch-all whose static_assert fires for any alternative without its own overload (a new
// alternative such as FusedAttrs). Non-template overloads win over the template for the
// types they name, so the catch-all is only ever chosen for a missing case.
#include "ir/attrs.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "core/hash.h"

namespace trainrt::detail {

namespace {

// maybe_unused: clang counts a use inside a discarded `if constexpr` branch as no use.
template <class T>
[[maybe_unused]] inline constexpr bool kMissingCase = false;

/// Floating fields compare and hash by their bits: -0.0 and +0.0 differ (x + -0.0 and
/// x + +0.0 are different functions), a NaN equals itself.
std::uint64_t bits(double v) noexcept { return std::bit_cast<std::uint64_t>(v); }
bool same(double a, double b) noexcept { return bits(a) == bits(b); }

bool same_init(const Init& a, const Init& b) noexcept {
  return a.kind == b.kind && same(a.a, b.a) && same(a.b, b.b) && a.mode == b.mode && a.nonlinearity == b.nonlinearity;
}

struct AttrsEqual {
  bool operator()(const NoAttrs&, const NoAttrs&) const noexcept { return true; }
  bool operator()(const VariableAttrs& a, const VariableAttrs& b) const noexcept {
    return a.kind == b.kind && same_init(a.init, b.init);
  }
  bool operator()(const ConstantAttrs& a, const ConstantAttrs& b) const noexcept {
    if (a.value == b.value) return true;
    if (!a.value || !b.value) return false;
    return tensor_bytes_equal(*a.value, *b.value);
  }
  bool operator()(const ScalarAttrs& a, const ScalarAttrs& b) const noexcept { return same(a.value, b.value); }
  bool operator()(const GeluAttrs& a, const GeluAttrs& b) const noexcept {
    return a.tanh_approximation == b.tanh_approximation;
  }
  bool operator()(const PermAttrs& a, const PermAttrs& b) const noexcept { return a.perm == b.perm; }
  bool operator()(const SliceAttrs& a, const SliceAttrs& b) const noexcept {
    return a.axis == b.axis && a.start == b.start && a.step == b.step;
  }
  bool operator()(const AxisAttrs& a, const AxisAttrs& b) const noexcept { return a.axis == b.axis; }
  bool operator()(const ReduceAttrs& a, const ReduceAttrs& b) const noexcept {
    return a.axes == b.axes && a.keepdims == b.keepdims;
  }
  bool operator()(const MatmulAttrs& a, const MatmulAttrs& b) const noexcept {
    return a.transpose_a == b.transpose_a && a.transpose_b == b.transpose_b;
  }
  bool operator()(const Conv2dAttrs& a, const Conv2dAttrs& b) const noexcept {
    return a.stride == b.stride && a.padding == b.padding && a.dilation == b.dilation && a.groups == b.groups;
  }
  bool operator()(const Pool2dAttrs& a, const Pool2dAttrs& b) const noexcept {
    return a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding && a.ceil_mode == b.ceil_mode &&
           a.count_include_pad == b.count_include_pad;
  }
  bool operator()(const CrossEntropyAttrs& a, const CrossEntropyAttrs& b) const noexcept {
    return a.ignore_index == b.ignore_index && same(a.label_smoothing, b.label_smoothing);
  }
  bool operator()(const NormAttrs& a, const NormAttrs& b) const noexcept {
    return same(a.momentum, b.momentum) && same(a.eps, b.eps) && a.normalized_axes == b.normalized_axes;
  }
  bool operator()(const DropoutAttrs& a, const DropoutAttrs& b) const noexcept {
    return same(a.p, b.p) && a.key == b.key;
  }
  bool operator()(const AttentionAttrs& a, const AttentionAttrs& b) const noexcept {
    return a.causal == b.causal && same(a.scale, b.scale);
  }
  // Fused bodies compare by identity: the passes that compare attributes (CSE) run before
  // fusion, so two fused nodes are equal only when they share one body.
  bool operator()(const FusedAttrs& a, const FusedAttrs& b) const noexcept { return a.body == b.body; }
  bool operator()(const CollectiveAttrs& a, const CollectiveAttrs& b) const noexcept {
    return a.bucket == b.bucket && a.world == b.world && same(a.scale, b.scale);
  }
  template <class T>
  bool operator()(const T&, const T&) const noexcept {
    static_assert(kMissingCase<T>, "attrs_equal: an alternative of Attrs has no case in ir/attrs.cpp (AttrsEqual)");
    return false;
  }
};

/// Hashes fields in order, starting from the alternative's index (mixed in by attrs_hash).
class Hasher {
 public:
  explicit Hasher(std::uint64_t seed) : h_(seed) {}
  Hasher& add(std::uint64_t v) noexcept {
    h_ = hash_combine(h_, v);
    return *this;
  }
  Hasher& add(double v) noexcept { return add(bits(v)); }
  Hasher& add(std::int64_t v) noexcept { return add(static_cast<std::uint64_t>(v)); }
  Hasher& add(bool v) noexcept { return add(std::uint64_t{v}); }
  Hasher& add(const std::vector<std::int64_t>& v) noexcept {
    add(static_cast<std::uint64_t>(v.size()));
    for (std::int64_t x : v) add(x);
    return *this;
  }
  Hasher& add(const Pair2& p) noexcept { return add(p[0]).add(p[1]); }
  std::uint64_t value() const noexcept { return h_; }

 private:
  std::uint64_t h_;
};

struct AttrsHash {
  std::uint64_t seed;
  std::uint64_t operator()(const NoAttrs&) const noexcept { return seed; }
  std::uint64_t operator()(const VariableAttrs& a) const noexcept {
    return Hasher(seed)
        .add(static_cast<std::uint64_t>(a.kind))
        .add(static_cast<std::uint64_t>(a.init.kind))
        .add(a.init.a)
        .add(a.init.b)
        .add(static_cast<std::uint64_t>(a.init.mode))
        .add(static_cast<std::uint64_t>(a.init.nonlinearity))
        .value();
  }
  std::uint64_t operator()(const ConstantAttrs& a) const noexcept {
    return Hasher(seed).add(a.value ? tensor_hash(*a.value) : std::uint64_t{0}).value();
  }
  std::uint64_t operator()(const ScalarAttrs& a) const noexcept { return Hasher(seed).add(a.value).value(); }
  std::uint64_t operator()(const GeluAttrs& a) const noexcept { return Hasher(seed).add(a.tanh_approximation).value(); }
  std::uint64_t operator()(const PermAttrs& a) const noexcept { return Hasher(seed).add(a.perm).value(); }
  std::uint64_t operator()(const SliceAttrs& a) const noexcept {
    return Hasher(seed).add(a.axis).add(a.start).add(a.step).value();
  }
  std::uint64_t operator()(const AxisAttrs& a) const noexcept { return Hasher(seed).add(a.axis).value(); }
  std::uint64_t operator()(const ReduceAttrs& a) const noexcept {
    return Hasher(seed).add(a.axes).add(a.keepdims).value();
  }
  std::uint64_t operator()(const MatmulAttrs& a) const noexcept {
    return Hasher(seed).add(a.transpose_a).add(a.transpose_b).value();
  }
  std::uint64_t operator()(const Conv2dAttrs& a) const noexcept {
    return Hasher(seed).add(a.stride).add(a.padding).add(a.dilation).add(a.groups).value();
  }
  std::uint64_t operator()(const Pool2dAttrs& a) const noexcept {
    return Hasher(seed).add(a.kernel).add(a.stride).add(a.padding).add(a.ceil_mode).add(a.count_include_pad).value();
  }
  std::uint64_t operator()(const CrossEntropyAttrs& a) const noexcept {
    return Hasher(seed).add(a.ignore_index).add(a.label_smoothing).value();
  }
  std::uint64_t operator()(const NormAttrs& a) const noexcept {
    return Hasher(seed).add(a.momentum).add(a.eps).add(a.normalized_axes).value();
  }
  std::uint64_t operator()(const DropoutAttrs& a) const noexcept { return Hasher(seed).add(a.p).add(a.key).value(); }
  std::uint64_t operator()(const AttentionAttrs& a) const noexcept {
    return Hasher(seed).add(a.causal).add(a.scale).value();
  }
  std::uint64_t operator()(const CollectiveAttrs& a) const noexcept {
    return Hasher(seed).add(a.bucket).add(a.world).add(a.scale).value();
  }
  std::uint64_t operator()(const FusedAttrs& a) const noexcept {
    return Hasher(seed).add(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(a.body.get()))).value();
  }
  template <class T>
  std::uint64_t operator()(const T&) const noexcept {
    static_assert(kMissingCase<T>, "attrs_hash: an alternative of Attrs has no case in ir/attrs.cpp (AttrsHash)");
    return 0;
  }
};

}  // namespace

bool tensor_bytes_equal(const Tensor& a, const Tensor& b) noexcept {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  return a.raw_data() == b.raw_data() || a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

std::uint64_t tensor_hash(const Tensor& t) noexcept {
  if (!t.defined()) return 0;
  std::uint64_t h = hash_combine(0x636f6e7374616e74ull, static_cast<std::uint64_t>(t.dtype()));
  for (std::int64_t d : t.shape()) h = hash_combine(h, static_cast<std::uint64_t>(d));
  // Eight bytes at a time through an FNV-style multiply, the tail byte by byte: a constant
  // of a few MB hashes in about a millisecond.
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  const std::size_t n = t.nbytes();
  std::uint64_t acc = 0xcbf29ce484222325ull;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, 8);
    acc = (acc ^ w) * 0x100000001b3ull;
    acc ^= acc >> 29;
  }
  for (; i < n; ++i) acc = (acc ^ p[i]) * 0x100000001b3ull;
  return hash_combine(h, acc);
}

// NOLINTNEXTLINE(bugprone-exception-escape): std::visit throws only for a valueless Attrs, which none is
bool attrs_equal(const Attrs& a, const Attrs& b) noexcept {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        return AttrsEqual{}(x, *std::get_if<T>(&b));
      },
      a);
}

// NOLINTNEXTLINE(bugprone-exception-escape): std::visit throws only for a valueless Attrs, which none is
std::uint64_t attrs_hash(const Attrs& a) noexcept {
  return std::visit(AttrsHash{hash_combine(0x6174747273ull, static_cast<std::uint64_t>(a.index()))}, a);
}

}  // namespace trainrt::detail
