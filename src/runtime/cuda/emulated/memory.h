// runtime/cuda/emulated/memory.h — the emulated device's memory: host memory with red zones
// (DESIGN decision 12).
//
// Every device allocation is host memory between two red zones: kRedZone bytes before it, and
// after it the padding up to the next 512-byte boundary plus kRedZone bytes, all filled with a
// pattern that verify() checks (at free, at every synchronize, and in checking mode after every
// operation), so a write one element past an allocation is found and named. Freed memory is
// poisoned (0xFF: a NaN in every float format, -1 in every integer) and kept in a quarantine
// (up to 256 MiB or 4096 allocations) before it is returned to the host, so that a use after
// free reads poison and the pointer is recognized as freed. Device pointers are host
// addresses: a kernel dereferences them directly. Page-locked host memory (cuMemHostAlloc) is
// tracked too, so copies and kernels may use it. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace trainrt::detail {

/// The host address a device pointer of the emulated device stands for (they are the same
/// bits: device memory is host memory).
inline void* host_address(std::uint64_t device_pointer) {
  return reinterpret_cast<void*>(device_pointer);  // NOLINT(performance-no-int-to-ptr): that is the emulation
}

class EmulatedMemory {
 public:
  // cuMemAlloc promises 256-byte alignment and gives 512 in practice, which the caching
  // allocator relies on.
  static constexpr std::size_t kRedZone = 512;
  static constexpr std::size_t kAlignment = 512;

  /// `capacity` bytes per device (devices 0 .. capacity.size()-1); `poison_new`: fill new
  /// allocations with 0xFF (checking mode: uninitialized reads show as NaN).
  EmulatedMemory(std::vector<std::uint64_t> capacity, bool poison_new);
  ~EmulatedMemory();
  EmulatedMemory(const EmulatedMemory&) = delete;
  EmulatedMemory& operator=(const EmulatedMemory&) = delete;

  /// cuMemAlloc: a CUDA status (0, CUDA_ERROR_OUT_OF_MEMORY past the device's capacity,
  /// CUDA_ERROR_INVALID_VALUE for 0 bytes).
  int allocate(int device, std::size_t bytes, std::uint64_t& out);
  /// cuMemFree: 0, or CUDA_ERROR_INVALID_VALUE with `error` saying why (not an allocation's
  /// start, freed twice) or CUDA_ERROR_ILLEGAL_ADDRESS when its red zones were overwritten
  /// (freed all the same). `span`: the bytes it covered (its size rounded up to kAlignment).
  int free(std::uint64_t ptr, std::string& error, std::size_t& span);
  /// cuMemHostAlloc / cuMemFreeHost.
  int host_allocate(std::size_t bytes, void*& out);
  int host_free(void* ptr, std::string& error);

  /// "" when [ptr, ptr + bytes) lies inside one live device allocation (or, with
  /// `host_ok`, page-locked host allocation); else what is wrong, starting "<what> ...".
  std::string check_range(std::uint64_t ptr, std::size_t bytes, bool host_ok, const std::string& what) const;
  /// The device of the live allocation holding `ptr`: its ordinal, -1 for page-locked host
  /// memory, -2 for none.
  int owner(std::uint64_t ptr) const;
  /// Whether `ptr` lies in page-locked host memory of ours.
  bool is_pinned(std::uint64_t ptr, std::size_t bytes) const;
  /// "" when every live allocation's red zones are intact; else the first damaged one (its
  /// address, size and how many bytes before or after it were written), starting with `after`
  /// ("after kernel axpy"). A damaged zone is reported once and then repaired.
  std::string verify(const std::string& after);
  /// Bytes allocated on `device`, and its capacity.
  std::uint64_t used(int device) const;
  std::uint64_t capacity(int device) const;

 private:
  struct Block {
    std::uint64_t base = 0;  // what the caller got
    std::size_t bytes = 0;   // what the caller asked for
    std::size_t span = 0;    // bytes rounded up to kAlignment
    int device = -1;         // -1: page-locked host memory
    unsigned char* raw = nullptr;
  };
  static std::string describe(const Block& b);
  static std::string check_zones(const Block& b);  // "" when intact
  void release_oldest();

  mutable std::mutex mutex_;
  std::vector<std::uint64_t> capacity_, used_;
  bool poison_new_;
  std::map<std::uint64_t, Block> live_;   // by base
  std::map<std::uint64_t, Block> freed_;  // in quarantine, by base
  std::deque<std::uint64_t> quarantine_;  // bases, oldest first
  std::size_t quarantine_bytes_ = 0;
};

}  // namespace trainrt::detail
