// runtime/cuda/caching_allocator.cpp — best-fit blocks carved from cached device segments.
#include "runtime/cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {

namespace {

std::string mib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

std::size_t round_up(std::size_t bytes, std::size_t multiple) { return (bytes + multiple - 1) / multiple * multiple; }

}  // namespace

CachingAllocator::CachingAllocator(RawAllocator& raw, std::size_t limit) : raw_(raw), limit_(limit) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard lock(mutex_);
  if (stats_.blocks > 0)
    log().warn("caching allocator on {}: {} blocks ({}) were never freed; releasing their segments", raw_.name(),
               stats_.blocks, mib(stats_.allocated_bytes));
  for (const auto& [address, size] : segments_) {
    try {
      raw_.release(address, size);
    } catch (const std::exception& e) {
      log().warn("caching allocator on {}: releasing a segment of {} failed: {}", raw_.name(), mib(size), e.what());
    }
  }
}

std::size_t CachingAllocator::round(std::size_t bytes) {
  return bytes <= kSmallLimit ? round_up(std::max<std::size_t>(bytes, 1), kAlignment) : round_up(bytes, kLargeRound);
}

std::uint64_t CachingAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) fail(ErrorKind::InvalidArgument, cat("device allocation on ", raw_.name(), ": asked for 0 bytes"));
  if (bytes > std::numeric_limits<std::size_t>::max() / 2)
    fail(ErrorKind::Runtime, cat("out of memory on ", raw_.name(), ": asked for ", bytes, " bytes"));
  std::lock_guard lock(mutex_);
  return allocate_locked(round(bytes), bytes <= kSmallLimit);
}

std::uint64_t CachingAllocator::allocate_locked(std::size_t size, bool small) {
  std::set<FreeKey>& pool = small ? free_small_ : free_large_;
  auto fit = pool.lower_bound(FreeKey{size, 0});
  if (fit == pool.end()) {
    // The cache cannot serve it: a new segment, else return the cache to the device and retry.
    const std::size_t segment = small ? kSmallSegment : size;
    if (!take_segment(segment, small)) {
      release_free_segments_locked();
      ++stats_.flushes;
      if (!take_segment(segment, small))
        fail(ErrorKind::Runtime,
             cat("out of memory on ", raw_.name(), ": asked for ", mib(size), "; libtrainrt holds ",
                 mib(stats_.reserved_bytes), " in ", stats_.segments, " segments, ", mib(stats_.allocated_bytes),
                 " of it in use", limit_ ? cat(" (limit ", mib(limit_), ")") : std::string(),
                 ". Lower the batch size, set a memory budget (activation recomputation), or free other Programs"));
    }
    fit = pool.lower_bound(FreeKey{size, 0});
    check_internal(fit != pool.end(), "a new segment serves the allocation");
  } else {
    ++stats_.cache_hits;
  }
  Block& b = blocks_.at(fit->second);
  pool.erase(fit);
  if (b.size > size) {  // split: the rest stays free
    const Block rest{b.address + size, b.size - size, b.segment, b.small, true};
    blocks_.emplace(rest.address, rest);
    insert_free(rest);
    b.size = size;
  }
  b.free = false;
  stats_.allocated_bytes += b.size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  ++stats_.blocks;
  return b.address;
}

bool CachingAllocator::take_segment(std::size_t size, bool small) {
  if (limit_ != 0 && stats_.reserved_bytes + size > limit_) return false;
  const std::uint64_t address = raw_.allocate(size);
  if (address == 0) return false;
  check_internal(address % kAlignment == 0 && !segments_.contains(address), "the device gives aligned, new segments");
  segments_.emplace(address, size);
  const Block b{address, size, address, small, true};
  blocks_.emplace(address, b);
  insert_free(b);
  stats_.reserved_bytes += size;
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  ++stats_.segments;
  ++stats_.device_allocations;
  return true;
}

void CachingAllocator::free(std::uint64_t address) {
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(address);
  if (it == blocks_.end() || it->second.free) fail_bad_address(address, "free");
  Block& b = it->second;
  b.free = true;
  stats_.allocated_bytes -= b.size;
  --stats_.blocks;
  // Merge with the free neighbours of the same segment, so that a whole segment can become one
  // free block again.
  if (auto next = std::next(it); next != blocks_.end() && next->second.free && next->second.segment == b.segment) {
    erase_free(next->second);
    b.size += next->second.size;
    blocks_.erase(next);
  }
  if (it != blocks_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free && prev->second.segment == b.segment) {
      erase_free(prev->second);
      prev->second.size += b.size;
      blocks_.erase(it);
      it = prev;
    }
  }
  insert_free(it->second);
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  release_free_segments_locked();
}

void CachingAllocator::release_free_segments_locked() {
  for (auto seg = segments_.begin(); seg != segments_.end();) {
    auto it = blocks_.find(seg->first);
    check_internal(it != blocks_.end(), "every segment starts with a block");
    const Block b = it->second;
    if (!b.free || b.size != seg->second) {
      ++seg;
      continue;
    }
    erase_free(b);
    blocks_.erase(it);
    const std::size_t size = seg->second;
    seg = segments_.erase(seg);
    stats_.reserved_bytes -= size;
    --stats_.segments;
    ++stats_.device_releases;
    raw_.release(b.address, size);
  }
}

std::size_t CachingAllocator::block_size(std::uint64_t address) const {
  std::lock_guard lock(mutex_);
  auto it = blocks_.find(address);
  if (it == blocks_.end() || it->second.free) fail_bad_address(address, "block_size");
  return it->second.size;
}

CachingAllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::insert_free(const Block& b) { (b.small ? free_small_ : free_large_).emplace(b.size, b.address); }

void CachingAllocator::erase_free(const Block& b) {
  (b.small ? free_small_ : free_large_).erase(FreeKey{b.size, b.address});
}

void CachingAllocator::fail_bad_address(std::uint64_t address, const char* what) const {
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(address));
  fail(ErrorKind::Internal, cat("caching allocator on ", raw_.name(), ": ", what, "(", hex,
                                ") names no live block (freed twice, or not from this allocator)"));
}

}  // namespace trainrt::detail
