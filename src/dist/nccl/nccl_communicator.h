// dist/nccl/nccl_communicator.h — the NCCL implementation of dist::Communicator, with the
// non-blocking interface the CUDA executor uses: enqueue a collective on one of its streams
// and return, then wait for a stream when (if ever) the host must.
//
// How a call runs: arguments are checked (nccl_call.h, and that the buffers are device memory
// of this communicator's device), the device's primary context is made current for the call,
// the NCCL call enqueues the work; the communicator is non-blocking (created with
// ncclConfig_t.blocking = 0), so NCCL may answer ncclInProgress, and then the call polls
// ncclCommGetAsyncError until NCCL has put the work on the stream. A blocking call then polls
// the stream (cuStreamQuery) and NCCL's asynchronous error until the work is done. A CUDA or
// NCCL error, or the timeout running out, aborts the communicator (ncclCommAbort) and marks
// it broken; the Error names the operation, counts, dtype, rank, device and time waited.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "dist/nccl/nccl_call.h"
#include "trainrt/dist.hpp"

struct ncclComm;  // nccl.h's communicator (ncclComm_t is ncclComm*)

namespace trainrt::detail {

class NcclLibrary;
struct CudaDriver;

/// One buffer of a grouped all-reduce (in place, device memory).
struct AllReduceItem {
  void* data = nullptr;
  std::size_t count = 0;
  DType dtype = DType::f32;
};

class NcclCommunicator final : public dist::Communicator {
 public:
  /// Joins the ranks of `bootstrap` as described for dist::nccl_communicator() (the public
  /// factory calls this). `stream`: a CUstream of `device` to issue on, or nullptr for a
  /// stream of its own. Throws as dist::nccl_communicator() does.
  static std::shared_ptr<NcclCommunicator> create(dist::Communicator& bootstrap, int device, void* stream,
                                                  std::chrono::milliseconds timeout);
  /// Finalizes the NCCL communicator (waiting at most default_timeout() for outstanding work,
  /// then aborting it), frees what it made and releases the device's primary context. Never
  /// throws; problems are logged.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  std::string_view backend() const noexcept override { return "nccl"; }
  bool device_memory() const noexcept override { return true; }
  std::chrono::milliseconds default_timeout() const noexcept override { return default_timeout_; }

  // dist::Communicator: enqueue on stream(), then wait for it (see the file comment).
  void all_reduce(void* data, std::size_t count, DType dtype, dist::ReduceOp op,
                  std::chrono::milliseconds timeout) override;
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, dist::ReduceOp op,
                      std::chrono::milliseconds timeout) override;
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                  std::chrono::milliseconds timeout) override;
  void broadcast(void* data, std::size_t count, DType dtype, int root, std::chrono::milliseconds timeout) override;
  /// An all_reduce of one i32 held by the communicator, waited for.
  void barrier(std::chrono::milliseconds timeout) override;
  using dist::Communicator::all_reduce;
  using dist::Communicator::barrier;
  using dist::Communicator::broadcast;

  /// Enqueues `call` on `stream` (a CUstream of device(); nullptr: stream()) and returns once
  /// NCCL has put it there, normally at once (the first call of a kind may wait for NCCL to
  /// connect to its peers, at most `timeout`). Nothing waits for the work itself. Throws as
  /// check_call() does, InvalidArgument for a buffer that is not device memory of device(),
  /// Runtime (and breaks the communicator) when NCCL fails or does not enqueue in time, and
  /// Runtime at once when the communicator is broken.
  void enqueue(const CollectiveCall& call, void* stream, std::chrono::milliseconds timeout);
  /// Enqueues one all-reduce per item as one NCCL group (one launch: gradient buckets), in
  /// place, combined with `op`. Throws as enqueue() does, naming the item at fault.
  void enqueue_all_reduce_group(std::span<const AllReduceItem> items, dist::ReduceOp op, void* stream,
                                std::chrono::milliseconds timeout);
  /// Waits on the host until everything enqueued on `stream` so far (nullptr: stream()) has
  /// finished, watching NCCL's asynchronous error. Throws Runtime (and breaks the
  /// communicator) on a CUDA or NCCL error or when `timeout` runs out; InvalidArgument for a
  /// timeout that is not positive; Runtime at once when the communicator is broken.
  void wait(void* stream, std::chrono::milliseconds timeout);

  /// The CUDA device of this rank.
  int device() const noexcept { return device_; }
  /// The CUstream the blocking calls use (the caller's, or the communicator's own).
  void* stream() const noexcept { return stream_; }
  /// The device's primary CUcontext (retained for the communicator's life).
  void* context() const noexcept { return ctx_; }
  /// Why the communicator is broken; empty while it is usable.
  const std::string& broken_reason() const noexcept { return broken_; }

 private:
  using Clock = std::chrono::steady_clock;
  NcclCommunicator() = default;

  // ncclCommInitRankConfig with the job's unique id (128 bytes), and waiting for it.
  void join(const void* unique_id, std::chrono::milliseconds timeout);
  // Throws Runtime when broken.
  void check_usable() const;
  // Loads NCCL and the driver, retains the device's context, makes the stream, event and
  // barrier word: everything a rank can do before it meets the others.
  void set_up(void* stream);
  // Throws InvalidArgument when `ptr` is not device memory of device_ (`role`: "send").
  void check_device_pointer(const void* ptr, const char* role, const std::string& what) const;
  // Checks `call` and issues it on `stream` (nullptr: stream_), settling NCCL's answer within
  // `timeout` of `start`; returns false when there was nothing to issue (count 0).
  bool issue(const CollectiveCall& call, void* stream, Clock::time_point start, std::chrono::milliseconds timeout);
  // Issues `call` (already checked, its ncclDataType_t `dtype`) without waiting; returns NCCL's result.
  int launch(const CollectiveCall& call, int dtype, void* stream) const;
  // After an NCCL call returned `result`: returns when NCCL has done it (polling while it is
  // in progress); breaks and throws on an error or after `timeout` since `start`.
  void settle(int result, const std::string& what, Clock::time_point start, std::chrono::milliseconds timeout);
  // Polls NCCL's asynchronous error, and `query` (a CUDA status: success when the device is
  // done, CUDA_ERROR_NOT_READY while it is not) once NCCL reports no work in progress, until
  // both are done; breaks and throws on an error or after `timeout` since `start`.
  void poll(const std::string& what, Clock::time_point start, std::chrono::milliseconds timeout,
            const std::function<int()>& query);
  // Aborts the NCCL communicator, records `reason` and throws Runtime with it.
  [[noreturn]] void break_with(const std::string& what, const std::string& reason, Clock::time_point start);
  // NCCL's last error message, or empty.
  std::string last_error() const;
  // Blocking call: enqueue on stream_ and wait for it.
  void run(const CollectiveCall& call, std::chrono::milliseconds timeout);

  const NcclLibrary* nccl_ = nullptr;
  const CudaDriver* driver_ = nullptr;
  ncclComm* comm_ = nullptr;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  void* ctx_ = nullptr;     // the device's primary context, retained
  void* stream_ = nullptr;  // where the blocking calls run
  bool own_stream_ = false;
  void* event_ = nullptr;           // recorded by wait() on a stream other than stream_
  std::uint64_t barrier_word_ = 0;  // CUdeviceptr of the i32 barrier() reduces
  std::chrono::milliseconds default_timeout_{0};
  std::string broken_;
};

}  // namespace trainrt::detail
