// runtime/cpu/conv_internal.h — what the convolution kernels (conv.cpp, conv_weights.cpp) share.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "runtime/cpu/kernel.h"

namespace trainrt::detail::cpu {

/// Sizes of one convolution, whatever the op's operand order.
struct ConvGeometry {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // input x[N, C, H, W]
  std::int64_t o = 0, kh = 0, kw = 0;       // weight w[O, C/groups, KH, KW]
  std::int64_t oh = 0, ow = 0;              // output y[N, O, OH, OW]
  std::int64_t groups = 1;
  std::array<std::int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};

  std::int64_t cg() const { return c / groups; }  // input channels per group
  std::int64_t og() const { return o / groups; }  // output channels per group
  bool empty() const { return n * c * h * w == 0 || o * kh * kw == 0 || oh * ow == 0; }
  /// Multiply-adds times two: the work of any of the three ops.
  double flops() const { return 2.0 * static_cast<double>(n * o * oh * ow * cg() * kh * kw); }
};

/// Pieces of one call, whichever way it is split: as many as give each piece at least 4e6
/// flops (~0.04 ms on one AVX-512 core at the ~100 GFLOP/s measured for these kernels, far
/// above the microsecond a TBB task costs), at most 16 and at most `limit`, at least 1. The
/// count depends on the shape alone.
inline std::int64_t pieces_by_work(const ConvGeometry& s, std::int64_t limit) {
  constexpr double kMinPieceFlops = 4e6;
  constexpr std::int64_t kMaxPieces = 16;
  const auto by_work = static_cast<std::int64_t>(s.flops() / kMinPieceFlops);
  return std::clamp<std::int64_t>(by_work, 1, std::min(kMaxPieces, limit));
}

inline std::size_t align64(std::size_t bytes) { return (bytes + 63) & ~std::size_t{63}; }

/// Pieces of the f32 weight gradient split by output channels (conv_weights.cpp), or 0 when
/// conv.cpp's batch split moves fewer bytes for `s`. Depends on the shape alone.
std::int64_t conv_weight_channel_pieces(const ConvGeometry& s);

/// The f32 weight gradient split by output channels (conv_weights.cpp), or nullptr when the
/// batch split of conv.cpp suits `s` better: see that file for the choice.
std::unique_ptr<Kernel> make_conv_weights_by_channels(const KernelEnv& env, const ConvGeometry& s);

}  // namespace trainrt::detail::cpu
