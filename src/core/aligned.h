// core/aligned.h — 64-byte aligned host allocations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace trainrt::detail {

inline constexpr std::size_t kAlignment = 64;

/// Rounds `n` up to a multiple of kAlignment.
constexpr std::size_t align_up(std::size_t n) noexcept { return (n + kAlignment - 1) / kAlignment * kAlignment; }

struct AlignedFree {
  void operator()(void* p) const noexcept;
};
using AlignedBuffer = std::unique_ptr<std::byte[], AlignedFree>;

/// At least `bytes` bytes (one alignment unit when 0), 64-byte aligned; throws trainrt::Error
/// (Runtime) when memory runs out.
AlignedBuffer aligned_alloc_bytes(std::size_t bytes);

/// How many aligned_alloc_bytes() calls this process has made (the executor's "allocations
/// inside a step" are differences of this count).
std::int64_t aligned_allocation_count() noexcept;

}  // namespace trainrt::detail
