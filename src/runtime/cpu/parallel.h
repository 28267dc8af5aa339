// runtime/cpu/parallel.h — loop splitting for kernels.
//
// Chunks are fixed by the problem size and grain alone (simple_partitioner over a blocked
// range), never by the thread count, so any reduction done per chunk and combined in chunk
// order gives the same bits with 1 or 64 threads. Small loops run inline: a task costs
// about a microsecond, more than 16k float additions.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstdint>

namespace trainrt::detail::cpu {

/// Elements below which a memory-bound loop is not worth splitting.
inline constexpr std::int64_t kSerialElements = 1 << 15;

/// Calls fn(begin, end) over [0, n) in chunks of at least `grain` (in parallel when
/// n >= 2 * grain).
template <class Fn>
void parallel_for(std::int64_t n, std::int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  if (n < 2 * grain) {
    fn(std::int64_t{0}, n);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, n, grain),
      [&](const tbb::blocked_range<std::int64_t>& r) { fn(r.begin(), r.end()); }, tbb::simple_partitioner());
}

/// The grain for a loop over n items that each cost about `work` element operations.
inline std::int64_t grain_for(std::int64_t work_per_item) {
  return std::max<std::int64_t>(1, kSerialElements / std::max<std::int64_t>(work_per_item, 1));
}

}  // namespace trainrt::detail::cpu
