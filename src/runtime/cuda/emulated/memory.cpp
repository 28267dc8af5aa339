// runtime/cuda/emulated/memory.cpp — red-zoned allocations, poison and quarantine.
#include "runtime/cuda/emulated/memory.h"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "runtime/cuda/driver.h"

namespace trainrt::detail {

namespace {

constexpr unsigned char kZonePattern = 0xA5;
constexpr unsigned char kFreedPoison = 0xFF;
constexpr std::size_t kQuarantineBytes = std::size_t{256} << 20;
constexpr std::size_t kQuarantineCount = 4096;

std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

}  // namespace

EmulatedMemory::EmulatedMemory(std::vector<std::uint64_t> capacity, bool poison_new)
    : capacity_(std::move(capacity)), used_(capacity_.size(), 0), poison_new_(poison_new) {}

EmulatedMemory::~EmulatedMemory() {
  for (auto& [base, b] : live_) std::free(b.raw);   // NOLINT(cppcoreguidelines-no-malloc): aligned_alloc'd
  for (auto& [base, b] : freed_) std::free(b.raw);  // NOLINT(cppcoreguidelines-no-malloc)
}

std::string EmulatedMemory::describe(const Block& b) {
  return cat(b.device < 0 ? "page-locked host allocation" : cat("allocation on emulated device ", b.device), " of ",
             b.bytes, " bytes at ", hex(b.base));
}

int EmulatedMemory::allocate(int device, std::size_t bytes, std::uint64_t& out) {
  out = 0;
  if (bytes == 0) return kCudaErrorInvalidValue;
  const std::size_t span = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  std::lock_guard lock(mutex_);
  const auto d = static_cast<std::size_t>(device);
  if (d >= capacity_.size()) return kCudaErrorInvalidValue;
  if (span > capacity_[d] - used_[d]) return kCudaErrorOutOfMemory;
  // NOLINTNEXTLINE(cppcoreguidelines-no-malloc): raw host memory that stands for device memory
  auto* raw = static_cast<unsigned char*>(std::aligned_alloc(kAlignment, kRedZone + span + kRedZone));
  if (raw == nullptr) return kCudaErrorOutOfMemory;
  Block b{reinterpret_cast<std::uint64_t>(raw + kRedZone), bytes, span, device, raw};
  std::memset(raw, kZonePattern, kRedZone);
  std::memset(raw + kRedZone + bytes, kZonePattern, span - bytes + kRedZone);
  if (poison_new_) std::memset(raw + kRedZone, kFreedPoison, bytes);
  used_[d] += span;
  live_.emplace(b.base, b);
  out = b.base;
  return kCudaSuccess;
}

std::string EmulatedMemory::check_zones(const Block& b) {
  const unsigned char* raw = b.raw;
  std::size_t before = 0, after = 0;
  for (std::size_t i = 0; i < kRedZone; ++i)
    if (raw[i] != kZonePattern) {
      before = kRedZone - i;
      break;
    }
  const unsigned char* tail = raw + kRedZone + b.bytes;
  for (std::size_t i = b.span - b.bytes + kRedZone; i-- > 0;)
    if (tail[i] != kZonePattern) {
      after = i + 1;
      break;
    }
  if (before == 0 && after == 0) return {};
  std::string where;
  if (after) where = cat(after, " byte(s) past its end were written");
  if (before) where = cat(where.empty() ? "" : where + " and ", before, " byte(s) before its start were written");
  return cat("the ", describe(b), ": ", where);
}

int EmulatedMemory::free(std::uint64_t ptr, std::string& error, std::size_t& span) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  if (it == live_.end() || it->second.device < 0) {
    if (freed_.contains(ptr)) error = cat("cuMemFree of ", hex(ptr), ", which was freed already");
    else error = cat("cuMemFree of ", hex(ptr), ", which is not the start of a device allocation");
    return kCudaErrorInvalidValue;
  }
  Block b = it->second;
  span = b.span;
  live_.erase(it);
  used_[static_cast<std::size_t>(b.device)] -= b.span;
  std::string damaged = check_zones(b);
  std::memset(b.raw + kRedZone, kFreedPoison, b.bytes);
  freed_.emplace(b.base, b);
  quarantine_.push_back(b.base);
  quarantine_bytes_ += b.span;
  while (quarantine_bytes_ > kQuarantineBytes || quarantine_.size() > kQuarantineCount) release_oldest();
  if (!damaged.empty()) {
    error = cat("at cuMemFree: ", damaged);
    return kCudaErrorIllegalAddress;
  }
  return kCudaSuccess;
}

void EmulatedMemory::release_oldest() {
  const std::uint64_t base = quarantine_.front();
  quarantine_.pop_front();
  auto it = freed_.find(base);
  quarantine_bytes_ -= it->second.span;
  std::free(it->second.raw);  // NOLINT(cppcoreguidelines-no-malloc)
  freed_.erase(it);
}

int EmulatedMemory::host_allocate(std::size_t bytes, void*& out) {
  out = nullptr;
  if (bytes == 0) return kCudaErrorInvalidValue;
  const std::size_t span = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  // NOLINTNEXTLINE(cppcoreguidelines-no-malloc): page-locked memory's stand-in
  auto* raw = static_cast<unsigned char*>(std::aligned_alloc(kAlignment, kRedZone + span + kRedZone));
  if (raw == nullptr) return kCudaErrorOutOfMemory;
  std::memset(raw, kZonePattern, kRedZone);
  std::memset(raw + kRedZone + bytes, kZonePattern, span - bytes + kRedZone);
  Block b{reinterpret_cast<std::uint64_t>(raw + kRedZone), bytes, span, -1, raw};
  std::lock_guard lock(mutex_);
  live_.emplace(b.base, b);
  out = raw + kRedZone;
  return kCudaSuccess;
}

int EmulatedMemory::host_free(void* ptr, std::string& error) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(reinterpret_cast<std::uint64_t>(ptr));
  if (it == live_.end() || it->second.device >= 0) {
    error = cat("cuMemFreeHost of ", hex(reinterpret_cast<std::uint64_t>(ptr)),
                ", which is not page-locked memory from cuMemHostAlloc");
    return kCudaErrorInvalidValue;
  }
  const std::string damaged = check_zones(it->second);
  std::free(it->second.raw);  // NOLINT(cppcoreguidelines-no-malloc)
  live_.erase(it);
  if (!damaged.empty()) {
    error = cat("at cuMemFreeHost: ", damaged);
    return kCudaErrorIllegalAddress;
  }
  return kCudaSuccess;
}

std::string EmulatedMemory::check_range(std::uint64_t ptr, std::size_t bytes, bool host_ok,
                                        const std::string& what) const {
  std::lock_guard lock(mutex_);
  auto inside = [&](const std::map<std::uint64_t, Block>& m) -> const Block* {
    auto it = m.upper_bound(ptr);
    if (it == m.begin()) return nullptr;
    --it;
    const Block& b = it->second;
    // A pointer may sit one past the end when nothing is read (bytes == 0).
    if (ptr >= b.base && ptr <= b.base + b.bytes) return &b;
    return nullptr;
  };
  if (const Block* b = inside(live_)) {
    if (b->device < 0 && !host_ok)
      return cat(what, " is page-locked host memory at ", hex(ptr), " where device memory is needed");
    if (ptr + bytes > b->base + b->bytes)
      return cat(what, " [", hex(ptr), ", +", bytes, ") runs ", ptr + bytes - (b->base + b->bytes),
                 " byte(s) past the end of the ", describe(*b));
    return {};
  }
  if (const Block* b = inside(freed_)) return cat(what, " points into freed memory: the ", describe(*b), " was freed");
  // Inside a red zone, or nowhere.
  for (const auto* m : {&live_, &freed_}) {
    auto it = m->upper_bound(ptr + kRedZone);
    if (it != m->begin()) {
      --it;
      const Block& b = it->second;
      if (ptr + kRedZone >= b.base && ptr < b.base + b.span + kRedZone)
        return cat(what, " at ", hex(ptr), " is outside the ", m == &freed_ ? "freed " : "", describe(b),
                   " (in its red zone)");
    }
  }
  return cat(what, " at ", hex(ptr), " is not in any allocation of the emulated device");
}

int EmulatedMemory::owner(std::uint64_t ptr) const {
  std::lock_guard lock(mutex_);
  auto it = live_.upper_bound(ptr);
  if (it == live_.begin()) return -2;
  --it;
  return ptr >= it->second.base && ptr < it->second.base + it->second.bytes ? it->second.device : -2;
}

bool EmulatedMemory::is_pinned(std::uint64_t ptr, std::size_t bytes) const {
  std::lock_guard lock(mutex_);
  auto it = live_.upper_bound(ptr);
  if (it == live_.begin()) return false;
  --it;
  return it->second.device < 0 && ptr >= it->second.base && ptr + bytes <= it->second.base + it->second.bytes;
}

std::string EmulatedMemory::verify(const std::string& after) {
  std::lock_guard lock(mutex_);
  for (auto& [base, b] : live_) {
    std::string damaged = check_zones(b);
    if (damaged.empty()) continue;
    // Repaired, so that one overflow is reported once.
    std::memset(b.raw, kZonePattern, kRedZone);
    std::memset(b.raw + kRedZone + b.bytes, kZonePattern, b.span - b.bytes + kRedZone);
    return cat(after, ": ", damaged);
  }
  return {};
}

std::uint64_t EmulatedMemory::used(int device) const {
  std::lock_guard lock(mutex_);
  return used_.at(static_cast<std::size_t>(device));
}

std::uint64_t EmulatedMemory::capacity(int device) const {
  std::lock_guard lock(mutex_);
  return capacity_.at(static_cast<std::size_t>(device));
}

}  // namespace trainrt::detail
