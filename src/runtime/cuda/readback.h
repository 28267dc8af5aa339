// runtime/cuda/readback.h — reading a device value back without stopping the step: the copy
// goes into pinned host memory on a stream, an event marks its end, and the host looks only
// when asked (DESIGN decision 5: step() returns at once; the loss comes back through a handle).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/cuda/device_memory.h"

namespace trainrt::detail {

/// Page-locked host memory (cuMemHostAlloc), so that device-to-host copies are asynchronous.
class PinnedBuffer {
 public:
  /// Throws Error(Runtime) when the driver cannot lock `bytes` (> 0) of host memory.
  PinnedBuffer(const CudaDevice& device, std::size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return bytes_; }

 private:
  const CudaDevice& device_;
  void* data_ = nullptr;
  std::size_t bytes_;
};

/// One value (a step's loss, a flag) on its way back to the host.
class AsyncReadback {
 public:
  /// `device` is borrowed and must outlive this; `waits` counts blocking host waits (the
  /// executor's counter, DESIGN decision 5) and must outlive it too.
  AsyncReadback(const CudaDevice& device, std::size_t bytes, std::atomic<std::int64_t>& waits);
  ~AsyncReadback();
  AsyncReadback(const AsyncReadback&) = delete;
  AsyncReadback& operator=(const AsyncReadback&) = delete;

  /// Enqueues the copy of size() bytes from device address `src` on `stream` and records the
  /// event after it (also inside a CUDA graph capture). Returns at once.
  void enqueue(std::uint64_t src, void* stream);
  /// Whether the copy has landed (cuEventQuery: never blocks, counts nothing).
  bool ready() const;
  /// The bytes, once they have landed: returns at once when ready(), else blocks on the event
  /// and counts one blocking wait. Throws Error(Runtime) for a device error (the step failed).
  const void* get() const;
  std::size_t size() const noexcept { return buffer_.size(); }

 private:
  const CudaDevice& device_;
  PinnedBuffer buffer_;
  std::atomic<std::int64_t>& waits_;
  void* event_ = nullptr;
  bool enqueued_ = false;
};

}  // namespace trainrt::detail
