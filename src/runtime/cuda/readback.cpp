// runtime/cuda/readback.cpp — pinned host memory and event-marked copies back to it.
#include "runtime/cuda/readback.h"

#include "core/error.h"

namespace trainrt::detail {

PinnedBuffer::PinnedBuffer(const CudaDevice& device, std::size_t bytes) : device_(device), bytes_(bytes) {
  check_internal(bytes > 0, "a pinned buffer holds something");
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  d.check(d.mem_host_alloc(&data_, bytes, kCudaHostAllocPortable), cat("cuMemHostAlloc(", bytes, " bytes)"));
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) release_in_context(device_, [&](const CudaDriver& d) { (void)d.mem_free_host(data_); });
}

AsyncReadback::AsyncReadback(const CudaDevice& device, std::size_t bytes, std::atomic<std::int64_t>& waits)
    : device_(device), buffer_(device, bytes), waits_(waits) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  d.check(d.event_create(&event_, kCudaEventDisableTiming), "cuEventCreate");
}

AsyncReadback::~AsyncReadback() {
  if (event_ == nullptr) return;
  release_in_context(device_, [&](const CudaDriver& d) {
    (void)d.event_synchronize(event_);  // the copy must land before the buffer goes
    (void)d.event_destroy(event_);
  });
}

void AsyncReadback::enqueue(std::uint64_t src, void* stream) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  d.check(d.memcpy_dtoh_async(buffer_.data(), src, buffer_.size(), stream), "cuMemcpyDtoHAsync");
  d.check(d.event_record(event_, stream), "cuEventRecord");
  enqueued_ = true;
}

bool AsyncReadback::ready() const {
  if (!enqueued_) return false;
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  const int status = d.event_query(event_);
  if (status == kCudaErrorNotReady) return false;
  d.check(status, "cuEventQuery");
  return true;
}

const void* AsyncReadback::get() const {
  check_internal(enqueued_, "a read-back is enqueued before it is read");
  if (!ready()) {
    waits_.fetch_add(1, std::memory_order_relaxed);
    const CudaDriver& d = device_.driver();
    const ScopedContext scope(d, device_.context());
    d.check(d.event_synchronize(event_), cat("waiting for a read-back on ", device_.name()));
  }
  return buffer_.data();
}

}  // namespace trainrt::detail
