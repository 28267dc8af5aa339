// runtime/cuda/emulated/happens_before.h — the emulated device's check that every two
// conflicting accesses on different streams are ordered (DESIGN decision 12).
//
// Each stream (and each stream a captured graph was recorded from, when the graph replays) is
// a component of a vector clock. An operation enqueued on component c ticks c; waiting on an
// event joins the clock the event recorded; a host synchronize joins the stream's clock into
// the host's, which every later enqueue joins. The check runs when an operation is enqueued,
// so it does not depend on how the streams' worker threads happened to interleave: access A
// by an operation with clock V is ordered after an earlier access P by component p at tick t
// exactly when V[p] >= t. Two accesses conflict when their byte ranges overlap and one
// writes. Memory keeps, per byte range, the last write and the last read of each component
// (a later read on the same component is ordered after an earlier one, so it stands for it).
// Not thread-safe: the emulator calls it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cuda/driver.h"

namespace trainrt::detail {

using VectorClock = std::vector<std::uint64_t>;

/// into[i] = max(into[i], other[i]), growing `into` as needed.
void join(VectorClock& into, const VectorClock& other);

/// Who made an access, for reports.
struct AccessSource {
  std::string operation;  // "kernel axpy", "cuMemcpyHtoDAsync of 4096 bytes"
  std::string stream;     // "stream 2", "stream 1 (replaying a graph captured from stream 3)"
};

class HappensBefore {
 public:
  /// A fresh component (a stream, or a graph lane), numbered from 0.
  int add_component();

  /// Checks the accesses of one operation, enqueued on `component` with clock `clock` (whose
  /// own entry was just ticked), against earlier ones, then records them. Returns "" or, for
  /// the first conflict, a message naming both operations, their streams and the bytes.
  std::string access(const VectorClock& clock, int component, const std::shared_ptr<const AccessSource>& source,
                     const std::vector<CudaAccess>& accesses);

  /// Forgets what is known of [begin, end): freed memory, which a new allocation may reuse.
  void forget(std::uint64_t begin, std::uint64_t end);

  /// Byte ranges tracked (for tests).
  std::size_t segments() const noexcept { return memory_.size(); }

 private:
  struct Access {
    int component = -1;
    std::uint64_t tick = 0;
    std::shared_ptr<const AccessSource> source;
  };
  struct Segment {
    std::uint64_t end = 0;
    Access write;               // component -1: none
    std::vector<Access> reads;  // at most one per component
  };
  // Splits the segment containing `at` so that one starts there.
  void split(std::uint64_t at);

  int components_ = 0;
  std::map<std::uint64_t, Segment> memory_;  // disjoint, by start
};

}  // namespace trainrt::detail
