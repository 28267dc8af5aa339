// The caching device allocator (runtime/cuda/caching_allocator.h) over a fake device that
// counts its calls, runs out of memory on demand and checks what it is given back.
#include "runtime/cuda/caching_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "trainrt/errors.hpp"

namespace trainrt::detail {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

/// A device of `capacity` bytes whose segments never overlap and must be returned whole.
class FakeDevice : public RawAllocator {
 public:
  explicit FakeDevice(std::size_t capacity = std::size_t{1} << 40) : capacity_(capacity) {}
  std::uint64_t allocate(std::size_t bytes) override {
    std::lock_guard lock(mutex_);
    EXPECT_EQ(bytes % CachingAllocator::kAlignment, 0u);
    if (live_bytes_ + bytes > capacity_) return 0;
    const std::uint64_t address = next_;
    next_ += bytes + 4096;  // a gap: neighbouring segments are not contiguous by accident
    live_.emplace(address, bytes);
    live_bytes_ += bytes;
    return address;
  }
  void release(std::uint64_t address, std::size_t bytes) override {
    std::lock_guard lock(mutex_);
    auto it = live_.find(address);
    ASSERT_NE(it, live_.end()) << "released a segment the device never gave";
    EXPECT_EQ(it->second, bytes) << "a segment must be released whole";
    live_bytes_ -= it->second;
    live_.erase(it);
  }
  std::string name() const override { return "fake:0"; }
  std::size_t live_bytes() const {
    std::lock_guard lock(mutex_);
    return live_bytes_;
  }
  std::size_t live_segments() const {
    std::lock_guard lock(mutex_);
    return live_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::size_t capacity_;
  std::uint64_t next_ = std::uint64_t{1} << 32;
  std::map<std::uint64_t, std::size_t> live_;
  std::size_t live_bytes_ = 0;
};

template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no trainrt::Error was thrown";
  return {ErrorKind::Internal, "none"};
}

TEST(CachingAllocator, RoundsSmallSizesTo512AndLargeOnesTo2MiB) {
  EXPECT_EQ(CachingAllocator::round(1), 512u);
  EXPECT_EQ(CachingAllocator::round(512), 512u);
  EXPECT_EQ(CachingAllocator::round(513), 1024u);
  EXPECT_EQ(CachingAllocator::round(kMiB), kMiB);
  EXPECT_EQ(CachingAllocator::round(kMiB + 1), 2 * kMiB);
  EXPECT_EQ(CachingAllocator::round(3 * kMiB), 4 * kMiB);
}

TEST(CachingAllocator, SmallBlocksShareOneSegment) {
  FakeDevice device;
  CachingAllocator a(device);
  std::vector<std::uint64_t> blocks;
  blocks.reserve(100);
  for (int i = 0; i < 100; ++i) blocks.push_back(a.allocate(1000));
  const CachingAllocatorStats s = a.stats();
  EXPECT_EQ(s.device_allocations, 1);
  EXPECT_EQ(s.reserved_bytes, CachingAllocator::kSmallSegment);
  EXPECT_EQ(s.allocated_bytes, 100u * 1024u);
  std::sort(blocks.begin(), blocks.end());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(blocks[i] % CachingAllocator::kAlignment, 0u);
    if (i > 0) {
      EXPECT_GE(blocks[i] - blocks[i - 1], 1024u) << "blocks overlap";
    }
    EXPECT_EQ(a.block_size(blocks[i]), 1024u);
  }
  for (std::uint64_t b : blocks) a.free(b);
  EXPECT_EQ(a.stats().allocated_bytes, 0u);
  EXPECT_EQ(device.live_segments(), 1u) << "freeing keeps the segment cached";
}

TEST(CachingAllocator, AFreedBlockIsReusedWithoutTheDevice) {
  FakeDevice device;
  CachingAllocator a(device);
  const std::uint64_t first = a.allocate(64 * kMiB);
  a.free(first);
  const std::uint64_t second = a.allocate(64 * kMiB);
  EXPECT_EQ(second, first);
  const CachingAllocatorStats s = a.stats();
  EXPECT_EQ(s.device_allocations, 1);
  EXPECT_EQ(s.device_releases, 0);
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(s.peak_reserved_bytes, 64 * kMiB);
}

TEST(CachingAllocator, ALargerFreeBlockIsSplitAndMergedBack) {
  FakeDevice device;
  CachingAllocator a(device);
  const std::uint64_t big = a.allocate(64 * kMiB);
  a.free(big);
  const std::uint64_t x = a.allocate(16 * kMiB);
  const std::uint64_t y = a.allocate(32 * kMiB);
  EXPECT_EQ(a.stats().device_allocations, 1) << "both came out of the cached 64 MiB";
  EXPECT_EQ(x, big);
  EXPECT_EQ(y, big + 16 * kMiB);
  // The rest (16 MiB) is still free: a 16 MiB request fits, a 32 MiB one needs the device.
  const std::uint64_t z = a.allocate(16 * kMiB);
  EXPECT_EQ(z, big + 48 * kMiB);
  EXPECT_EQ(a.stats().device_allocations, 1);
  a.free(y);
  a.free(x);
  a.free(z);
  // Merged into one free block again: the whole segment serves 64 MiB and can be released.
  const std::uint64_t again = a.allocate(64 * kMiB);
  EXPECT_EQ(again, big);
  a.free(again);
  a.release_cached();
  EXPECT_EQ(device.live_segments(), 0u);
  EXPECT_EQ(a.stats().reserved_bytes, 0u);
  EXPECT_EQ(a.stats().device_releases, 1);
}

TEST(CachingAllocator, ASegmentReturnsOnlyWhenAllItsBlocksAreFree) {
  FakeDevice device;
  CachingAllocator a(device);
  const std::uint64_t p = a.allocate(4096), q = a.allocate(4096), r = a.allocate(4096);
  a.free(p);
  a.free(r);
  a.release_cached();
  EXPECT_EQ(device.live_segments(), 1u) << "q still lives in the segment";
  a.free(q);
  a.release_cached();
  EXPECT_EQ(device.live_segments(), 0u);
}

TEST(CachingAllocator, OutOfMemoryReturnsTheCacheAndRetries) {
  FakeDevice device(100 * kMiB);
  CachingAllocator a(device);
  a.free(a.allocate(60 * kMiB));  // cached, still held from the device
  const std::uint64_t big = a.allocate(80 * kMiB);
  EXPECT_NE(big, 0u);
  const CachingAllocatorStats s = a.stats();
  EXPECT_EQ(s.flushes, 1);
  EXPECT_EQ(s.device_releases, 1);
  EXPECT_EQ(s.reserved_bytes, 80 * kMiB);
  EXPECT_EQ(device.live_bytes(), 80 * kMiB);
}

TEST(CachingAllocator, OutOfMemoryIsARuntimeErrorThatSaysWhatIsHeld) {
  FakeDevice device(100 * kMiB);
  CachingAllocator a(device);
  const std::uint64_t kept = a.allocate(60 * kMiB);
  const Error e = error_of([&] { a.allocate(60 * kMiB); });
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
  const std::string m = e.what();
  EXPECT_NE(m.find("out of memory on fake:0"), std::string::npos) << m;
  EXPECT_NE(m.find("asked for 60.0 MiB"), std::string::npos) << m;
  EXPECT_NE(m.find("60.0 MiB of it in use"), std::string::npos) << m;
  // Nothing broke: the live block is intact and smaller requests still succeed.
  EXPECT_EQ(a.block_size(kept), 60 * kMiB);
  EXPECT_NO_THROW(a.free(a.allocate(30 * kMiB)));
  EXPECT_EQ(a.stats().allocated_bytes, 60 * kMiB);
}

TEST(CachingAllocator, HonoursItsLimit) {
  FakeDevice device;
  CachingAllocator a(device, 8 * kMiB);
  const std::uint64_t six = a.allocate(6 * kMiB);
  const Error e = error_of([&] { a.allocate(4 * kMiB); });
  EXPECT_EQ(e.kind(), ErrorKind::Runtime);
  EXPECT_NE(std::string(e.what()).find("limit 8.0 MiB"), std::string::npos) << e.what();
  a.free(six);
  EXPECT_NO_THROW(a.allocate(8 * kMiB)) << "after a flush the limit leaves room for 8 MiB";
  EXPECT_LE(device.live_bytes(), 8 * kMiB);
}

TEST(CachingAllocator, BadCallsAreErrorsNotCrashes) {
  FakeDevice device;
  CachingAllocator a(device);
  EXPECT_EQ(error_of([&] { a.allocate(0); }).kind(), ErrorKind::InvalidArgument);
  EXPECT_EQ(error_of([&] { a.allocate(~std::size_t{0}); }).kind(), ErrorKind::Runtime);
  const std::uint64_t b = a.allocate(100);
  EXPECT_EQ(error_of([&] { a.free(b + 512); }).kind(), ErrorKind::Internal);
  a.free(b);
  const Error twice = error_of([&] { a.free(b); });
  EXPECT_EQ(twice.kind(), ErrorKind::Internal);
  EXPECT_NE(std::string(twice.what()).find("freed twice"), std::string::npos) << twice.what();
  EXPECT_EQ(error_of([&] { a.block_size(b); }).kind(), ErrorKind::Internal);
}

TEST(CachingAllocator, DestructionReturnsEverySegmentEvenWithLiveBlocks) {
  FakeDevice device;
  {
    CachingAllocator a(device);
    a.allocate(3 * kMiB);
    a.allocate(2000);
    a.free(a.allocate(10 * kMiB));
    EXPECT_EQ(device.live_segments(), 3u);
  }
  EXPECT_EQ(device.live_segments(), 0u);
  EXPECT_EQ(device.live_bytes(), 0u);
}

/// Live blocks as intervals; inserting one that overlaps another fails the test.
struct Intervals {
  std::mutex mutex;
  std::map<std::uint64_t, std::size_t> live;
  void add(std::uint64_t at, std::size_t size) {
    std::lock_guard lock(mutex);
    auto next = live.lower_bound(at);
    if (next != live.end()) {
      ASSERT_GE(next->first, at + size) << "overlaps the next block";
    }
    if (next != live.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + prev->second, at) << "overlaps the previous block";
    }
    live.emplace(at, size);
  }
  void remove(std::uint64_t at) {
    std::lock_guard lock(mutex);
    live.erase(at);
  }
};

TEST(CachingAllocator, RandomTrafficKeepsBlocksDisjointAndCountsRight) {
  FakeDevice device(512 * kMiB);
  CachingAllocator a(device);
  Intervals live;
  std::map<std::uint64_t, std::size_t> sizes;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> coin(0, 99);
  std::uniform_int_distribution<std::size_t> small(1, std::size_t{64} * 1024), large(kMiB, 24 * kMiB);
  for (int i = 0; i < 3000; ++i) {
    if (!sizes.empty() && coin(rng) < 45) {
      auto it = sizes.begin();
      std::advance(it, static_cast<long>(rng() % sizes.size()));
      a.free(it->first);
      live.remove(it->first);
      sizes.erase(it);
    } else {
      const std::size_t want = coin(rng) < 80 ? small(rng) : large(rng);
      std::uint64_t at = 0;
      try {
        at = a.allocate(want);
      } catch (const Error& e) {
        ASSERT_EQ(e.kind(), ErrorKind::Runtime) << e.what();
        continue;  // the fake device is full; the allocator must stay consistent
      }
      ASSERT_EQ(at % CachingAllocator::kAlignment, 0u);
      ASSERT_GE(a.block_size(at), want);
      live.add(at, a.block_size(at));
      sizes.emplace(at, a.block_size(at));
    }
    if (i % 100 == 0) {
      const CachingAllocatorStats s = a.stats();
      std::size_t sum = 0;
      for (const auto& [at, size] : sizes) sum += size;
      ASSERT_EQ(s.allocated_bytes, sum);
      ASSERT_EQ(s.blocks, sizes.size());
      ASSERT_EQ(s.reserved_bytes, device.live_bytes());
      ASSERT_LE(s.allocated_bytes, s.reserved_bytes);
    }
  }
  EXPECT_GT(a.stats().cache_hits, 500) << "most allocations come from the cache";
  for (const auto& [at, size] : sizes) a.free(at);
  a.release_cached();
  EXPECT_EQ(device.live_bytes(), 0u) << "every segment merged back whole and went home";
}

TEST(CachingAllocator, ThreadsAllocateAndFreeAtOnce) {
  FakeDevice device;
  CachingAllocator a(device);
  Intervals live;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::uint64_t> mine;
      for (int i = 0; i < 400; ++i) {
        if (!mine.empty() && rng() % 2 == 0) {
          live.remove(mine.back());
          a.free(mine.back());
          mine.pop_back();
        } else {
          const std::uint64_t at = a.allocate(1 + rng() % (3 * kMiB));
          live.add(at, a.block_size(at));
          mine.push_back(at);
        }
      }
      for (std::uint64_t at : mine) {
        live.remove(at);
        a.free(at);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(a.stats().blocks, 0u);
  a.release_cached();
  EXPECT_EQ(device.live_segments(), 0u);
}

}  // namespace
}  // namespace trainrt::detail
