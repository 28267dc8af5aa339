// runtime/cuda/caching_allocator.h — the caching device allocator behind the CUDA backend's
// planned arenas, parameters and optimizer state.
//
// Memory is planned (DESIGN decision 7): a Program asks for a few large buffers when it is
// built and gives them back when it is destroyed, never inside a step. What is worth caching is
// the device's own allocation: cuMemFree synchronizes the whole device and cuMemAlloc is slow,
// so a second Program (evaluation beside training, a new input shape) or a rebuilt one must
// reuse what an earlier one freed. The allocator takes segments from a RawAllocator (the
// driver on a GPU, a fake in tests), carves blocks out of them, keeps freed blocks (merging
// neighbours in the same segment) and splits a larger free block rather than asking the device
// again. When the device is out of memory, or a set limit would be passed, it returns its fully
// free segments to the device and tries once more before it throws.
//
// Not stream-ordered: a block is freed only when no stream uses it any more (the Program
// synchronizes its streams before it releases its memory). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace trainrt::detail {

/// The device's own allocation calls (cuMemAlloc/cuMemFree on a GPU).
class RawAllocator {
 public:
  virtual ~RawAllocator() = default;
  /// A segment of `bytes` (a multiple of 512) aligned to at least 512 bytes, or 0 when the
  /// device has no memory left. Other failures throw Error.
  virtual std::uint64_t allocate(std::size_t bytes) = 0;
  /// Returns a segment that allocate() gave, whole. May throw Error.
  virtual void release(std::uint64_t address, std::size_t bytes) = 0;
  /// Names the device in error messages ("cuda:0").
  virtual std::string name() const = 0;
};

struct CachingAllocatorStats {
  std::size_t allocated_bytes = 0;  // in blocks handed out (rounded sizes)
  std::size_t reserved_bytes = 0;   // in segments taken from the device
  std::size_t peak_allocated_bytes = 0;
  std::size_t peak_reserved_bytes = 0;
  std::size_t blocks = 0;               // handed out now
  std::size_t segments = 0;             // held now
  std::int64_t device_allocations = 0;  // RawAllocator::allocate calls that succeeded
  std::int64_t device_releases = 0;     // RawAllocator::release calls
  std::int64_t cache_hits = 0;          // allocations served from a cached block
  std::int64_t flushes = 0;             // times the cache was returned to the device to make room
};

class CachingAllocator {
 public:
  /// Sizes at most kSmallLimit are rounded to kAlignment and served from kSmallSegment segments
  /// shared by many blocks; larger ones are rounded to kLargeRound and get segments of their own
  /// size (which later serve smaller requests by splitting).
  static constexpr std::size_t kAlignment = 512;
  static constexpr std::size_t kSmallLimit = std::size_t{1} << 20;
  static constexpr std::size_t kSmallSegment = std::size_t{2} << 20;
  static constexpr std::size_t kLargeRound = std::size_t{2} << 20;

  /// `raw` is borrowed and must outlive the allocator. `limit`: the most bytes of segments held
  /// at once (0: no limit besides the device's).
  explicit CachingAllocator(RawAllocator& raw, std::size_t limit = 0);
  /// Returns every segment to the device; blocks still handed out are released with them (and
  /// logged as leaks).
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// A block of at least `bytes` (> 0), aligned to kAlignment. Throws Error(InvalidArgument)
  /// for 0 bytes, Error(Runtime) "out of memory on <device>" (with what is in use and cached)
  /// when neither the cache nor the device can serve it.
  std::uint64_t allocate(std::size_t bytes);
  /// Gives back a block that allocate() returned. Throws Error(Internal) for an address that
  /// is not a live block (a double free, a foreign pointer).
  void free(std::uint64_t address);
  /// Returns every fully free segment to the device.
  void release_cached();
  /// The rounded size of the live block at `address`; throws Error(Internal) as free() does.
  std::size_t block_size(std::uint64_t address) const;
  CachingAllocatorStats stats() const;

  /// The size allocate(bytes) hands out.
  static std::size_t round(std::size_t bytes);

 private:
  struct Block {
    std::uint64_t address;
    std::size_t size;
    std::uint64_t segment;  // the address of the segment it is carved from
    bool small;             // from the small pool
    bool free;
  };
  using FreeKey = std::pair<std::size_t, std::uint64_t>;  // (size, address): best fit, then lowest

  std::uint64_t allocate_locked(std::size_t size, bool small);
  bool take_segment(std::size_t size, bool small);
  void release_free_segments_locked();
  void insert_free(const Block& b);
  void erase_free(const Block& b);
  [[noreturn]] void fail_bad_address(std::uint64_t address, const char* what) const;

  RawAllocator& raw_;
  std::size_t limit_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Block> blocks_;          // every block by address, free or not
  std::map<std::uint64_t, std::size_t> segments_;  // segment address -> size
  std::set<FreeKey> free_small_, free_large_;
  CachingAllocatorStats stats_;
};

}  // namespace trainrt::detail
