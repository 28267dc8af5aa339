// runtime/cuda/emulated/happens_before.cpp — vector clocks over byte ranges.
#include "runtime/cuda/emulated/happens_before.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace trainrt::detail {

namespace {

std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

bool ordered(const VectorClock& clock, int component, std::uint64_t tick) {
  const auto c = static_cast<std::size_t>(component);
  return c < clock.size() && clock[c] >= tick;
}

}  // namespace

void join(VectorClock& into, const VectorClock& other) {
  if (into.size() < other.size()) into.resize(other.size(), 0);
  for (std::size_t i = 0; i < other.size(); ++i) into[i] = std::max(into[i], other[i]);
}

int HappensBefore::add_component() { return components_++; }

void HappensBefore::split(std::uint64_t at) {
  auto it = memory_.upper_bound(at);
  if (it == memory_.begin()) return;
  --it;
  if (it->first == at || it->second.end <= at) return;
  Segment tail = it->second;
  it->second.end = at;
  memory_.emplace(at, std::move(tail));
}

std::string HappensBefore::access(const VectorClock& clock, int component,
                                  const std::shared_ptr<const AccessSource>& source,
                                  const std::vector<CudaAccess>& accesses) {
  const std::uint64_t tick = clock.at(static_cast<std::size_t>(component));
  const Access mine{component, tick, source};
  auto conflict = [&](const Access& earlier, bool earlier_writes, bool writes, std::uint64_t from, std::uint64_t to) {
    return cat("unordered accesses on the emulated device: ", source->operation, " on ", source->stream,
               writes ? " writes" : " reads", " [", hex(from), ", ", hex(to), ") which ", earlier.source->operation,
               " on ", earlier.source->stream, earlier_writes ? " wrote" : " read",
               ", with no stream order or event between them");
  };
  std::string report;
  for (const CudaAccess& a : accesses) {
    if (a.bytes == 0) continue;
    const std::uint64_t begin = a.address, end = a.address + a.bytes;
    split(begin);
    split(end);
    // Fill the gaps of [begin, end) with empty segments, so that each byte has one.
    std::uint64_t at = begin;
    auto it = memory_.lower_bound(begin);
    while (at < end) {
      if (it == memory_.end() || it->first > at) {
        const std::uint64_t gap_end = it == memory_.end() ? end : std::min(end, it->first);
        it = memory_.emplace_hint(it, at, Segment{gap_end, {}, {}});
      }
      Segment& s = it->second;
      if (report.empty()) {
        if (s.write.component >= 0 && s.write.component != component &&
            !ordered(clock, s.write.component, s.write.tick))
          report = conflict(s.write, true, a.write, it->first, s.end);
        if (a.write)
          for (const Access& r : s.reads)
            if (report.empty() && r.component != component && !ordered(clock, r.component, r.tick))
              report = conflict(r, false, true, it->first, s.end);
      }
      if (a.write) {
        s.write = mine;
        s.reads.clear();
      } else {
        auto same =
            std::find_if(s.reads.begin(), s.reads.end(), [&](const Access& r) { return r.component == component; });
        if (same != s.reads.end()) *same = mine;
        else s.reads.push_back(mine);
      }
      at = s.end;
      ++it;
    }
  }
  return report;
}

void HappensBefore::forget(std::uint64_t begin, std::uint64_t end) {
  split(begin);
  split(end);
  memory_.erase(memory_.lower_bound(begin), memory_.lower_bound(end));
}

}  // namespace trainrt::detail
