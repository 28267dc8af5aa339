// dist/nccl/nccl_communicator.cpp — the NCCL communicator: joining a job over a bootstrap
// communicator, issuing collectives, waiting with a timeout, aborting, and tearing down.
#include "dist/nccl/nccl_communicator.h"

#include <cuda.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "dist/nccl/nccl_api.h"
#include "runtime/cuda/driver.h"
#include "trainrt/dist_nccl.hpp"

namespace trainrt::detail {

namespace {

using std::chrono::milliseconds;

// The unique id travels over the bootstrap communicator as i32 elements (any Communicator
// broadcasts i32 bit for bit).
static_assert(sizeof(ncclUniqueId) % sizeof(std::int32_t) == 0);
constexpr std::size_t kUniqueIdWords = sizeof(ncclUniqueId) / sizeof(std::int32_t);

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::shared_ptr<NcclCommunicator> NcclCommunicator::create(dist::Communicator& bootstrap, int device, void* stream,
                                                           milliseconds timeout) {
  const int rank = bootstrap.rank(), size = bootstrap.size();
  const std::string where = cat("nccl_communicator (rank ", rank, " of ", size, ", device ", device, ")");
  if (timeout.count() <= 0)
    fail(ErrorKind::InvalidArgument, cat(where, ": the timeout must be positive, got ", timeout.count(), " ms"));
  if (device < 0) fail(ErrorKind::InvalidArgument, cat(where, ": the device must be a CUDA device ordinal >= 0"));
  if (size < 1 || rank < 0 || rank >= size)
    fail(ErrorKind::InvalidArgument, cat(where, ": the bootstrap communicator reports an impossible rank/size"));
  if (bootstrap.device_memory())
    fail(ErrorKind::InvalidArgument, cat(where, ": the bootstrap communicator (", bootstrap.backend(),
                                         ") must take host memory, to send NCCL's unique id"));

  std::shared_ptr<NcclCommunicator> comm(new NcclCommunicator());
  comm->rank_ = rank;
  comm->size_ = size;
  comm->device_ = device;
  comm->default_timeout_ = timeout;

  // What a rank can do alone; a failure is kept until the ranks have compared notes, so that
  // no rank waits out its timeout for one that already gave up.
  std::int32_t id[kUniqueIdWords] = {};
  std::exception_ptr local_failure;
  try {
    comm->set_up(stream);
    if (rank == 0) {
      const ncclResult_t st = comm->nccl_->api().get_unique_id(reinterpret_cast<ncclUniqueId*>(id));
      if (st != ncclSuccess)
        fail(ErrorKind::Runtime, cat("ncclGetUniqueId failed: ", comm->nccl_->describe(st), comm->last_error()));
    }
  } catch (const Error& e) {
    local_failure = std::make_exception_ptr(Error(e.kind(), cat(where, ": ", e.what())));
  }
  if (size > 1) {
    std::int32_t failed = local_failure ? 1 : 0;
    bootstrap.all_reduce(&failed, 1, DType::i32, dist::ReduceOp::max, timeout);
    if (local_failure) std::rethrow_exception(local_failure);
    if (failed != 0)
      fail(ErrorKind::Runtime, cat(where,
                                   ": another rank could not set up NCCL (its own error says why); this rank "
                                   "was ready"));
    bootstrap.broadcast(id, kUniqueIdWords, DType::i32, 0, timeout);
  } else if (local_failure) {
    std::rethrow_exception(local_failure);
  }
  comm->join(id, timeout);
  log().info("nccl: rank {} of {} joined on device {} (NCCL {})", rank, size, device, comm->nccl_->version_string());
  return comm;
}

void NcclCommunicator::set_up(void* stream) {
  nccl_ = &NcclLibrary::get();
  driver_ = &CudaDriver::get();
  const CudaDriver& d = *driver_;
  if (device_ >= d.device_count)
    fail(ErrorKind::InvalidArgument,
         cat("device ", device_, " does not exist: the CUDA driver reports ", d.device_count, " device(s)"));
  int dev = 0;
  d.check(d.device_get(&dev, device_), cat("cuDeviceGet(", device_, ")"));
  void* ctx = nullptr;
  d.check(d.primary_ctx_retain(&ctx, dev), cat("cuDevicePrimaryCtxRetain(device ", device_, ")"));
  ctx_ = ctx;  // from here on the destructor releases it
  const ScopedContext scope(d, ctx_);
  if (stream != nullptr) {
    stream_ = stream;
  } else {
    // Non-blocking: the collectives must not wait for work on the legacy default stream.
    d.check(d.stream_create(&stream_, kCudaStreamNonBlocking), "cuStreamCreate");
    own_stream_ = true;
  }
  d.check(d.event_create(&event_, kCudaEventDisableTiming), "cuEventCreate");
  CuDevicePtr word = 0;
  d.check(d.mem_alloc(&word, sizeof(std::int32_t)), "cuMemAlloc (barrier word)");
  barrier_word_ = word;
  d.check(d.memset_d8(word, 0, sizeof(std::int32_t)), "cuMemsetD8 (barrier word)");
}

void NcclCommunicator::join(const void* unique_id, milliseconds timeout) {
  const auto start = Clock::now();
  const ScopedContext scope(*driver_, ctx_);
  ncclUniqueId id;
  std::memcpy(&id, unique_id, sizeof(id));
  // Non-blocking, so that joining (which waits for every rank) can time out and be aborted.
  // NCCL reads only the fields its own version knows (the struct carries size and version).
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const ncclResult_t st = nccl_->api().comm_init_rank_config(&comm, size_, id, rank_, &config);
  comm_ = comm;
  const std::string what = cat("joining a communicator of ", size_, " rank(s)");
  if (comm_ == nullptr)
    fail(ErrorKind::Runtime, cat("nccl ", what, " on rank ", rank_, " (device ", device_,
                                 "): ncclCommInitRankConfig failed: ", nccl_->describe(st), last_error()));
  settle(st, what, start, timeout);
}

NcclCommunicator::~NcclCommunicator() {
  if (driver_ == nullptr || ctx_ == nullptr) return;
  const CudaDriver& d = *driver_;
  try {
    const ScopedContext scope(d, ctx_);
    if (comm_ != nullptr) {
      // Finalize flushes what was issued and waits for the peers to be done with this rank;
      // a peer that never gets there must not hang the destructor: abort after the timeout.
      const NcclLibrary::Api& api = nccl_->api();
      ncclResult_t state = api.comm_finalize(comm_);
      const auto deadline = Clock::now() + default_timeout_;
      while (state == ncclInProgress && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (api.comm_get_async_error(comm_, &state) != ncclSuccess) state = ncclInternalError;
      }
      if (state == ncclSuccess) {
        if (const ncclResult_t st = api.comm_destroy(comm_); st != ncclSuccess && st != ncclInProgress)
          log().warn("nccl: ncclCommDestroy (rank {}) failed: {}", rank_, nccl_->describe(st));
      } else {
        log().warn("nccl: finalizing rank {} of {} ended in {}; aborting it", rank_, size_,
                   state == ncclInProgress ? std::string("a timeout") : nccl_->describe(state));
        (void)api.comm_abort(comm_);
      }
      comm_ = nullptr;
    }
    if (barrier_word_ != 0) (void)d.mem_free(barrier_word_);
    if (event_ != nullptr) (void)d.event_destroy(event_);
    if (own_stream_ && stream_ != nullptr) (void)d.stream_destroy(stream_);
  } catch (const std::exception& e) {
    log().warn("nccl: tearing down rank {} of {}: {}", rank_, size_, e.what());
  }
  (void)d.primary_ctx_release(device_);
}

void NcclCommunicator::check_usable() const {
  if (!broken_.empty())
    fail(ErrorKind::Runtime,
         cat("the NCCL communicator (rank ", rank_, " of ", size_, ") is broken by an earlier failure: ", broken_));
}

std::string NcclCommunicator::last_error() const {
  if (nccl_ == nullptr || nccl_->api().get_last_error == nullptr) return {};
  const char* text = nccl_->api().get_last_error(comm_);
  return text != nullptr && *text != '\0' ? cat(" (NCCL: ", text, ")") : std::string();
}

void NcclCommunicator::check_device_pointer(const void* ptr, const char* role, const std::string& what) const {
  const CudaDriver& d = *driver_;
  const auto address = static_cast<CuDevicePtr>(reinterpret_cast<std::uintptr_t>(ptr));
  unsigned int type = 0;  // CUmemorytype
  const int st = d.pointer_get_attribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, address);
  if (st == CUDA_ERROR_INVALID_VALUE)
    fail(ErrorKind::InvalidArgument,
         cat("nccl ", what, " on rank ", rank_, ": the ", role, " buffer ", ptr,
             " is not memory the CUDA driver knows (host memory goes to a host communicator such as MPI)"));
  d.check(st, cat("cuPointerGetAttribute(", role, " buffer ", ptr, ")"));
  if (type != CU_MEMORYTYPE_DEVICE) return;  // pinned host memory the device can reach
  int ordinal = -1;
  d.check(d.pointer_get_attribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, address),
          cat("cuPointerGetAttribute(", role, " buffer ", ptr, ")"));
  if (ordinal != device_)
    fail(ErrorKind::InvalidArgument, cat("nccl ", what, " on rank ", rank_, ": the ", role, " buffer ", ptr,
                                         " is memory of device ", ordinal, ", this communicator's is ", device_));
}

int NcclCommunicator::launch(const CollectiveCall& call, int dtype, void* stream) const {
  const NcclLibrary::Api& api = nccl_->api();
  const auto type = static_cast<ncclDataType_t>(dtype);
  const auto op = static_cast<ncclRedOp_t>(nccl_reduce_op(call.op));
  auto* const s = static_cast<cudaStream_t>(stream);
  switch (call.kind) {
    case CollectiveKind::AllReduce: return api.all_reduce(call.send, call.recv, call.count, type, op, comm_, s);
    case CollectiveKind::ReduceScatter: return api.reduce_scatter(call.send, call.recv, call.count, type, op, comm_, s);
    case CollectiveKind::AllGather: return api.all_gather(call.send, call.recv, call.count, type, comm_, s);
    case CollectiveKind::Broadcast: return api.broadcast(call.send, call.recv, call.count, type, call.root, comm_, s);
  }
  return ncclInvalidArgument;
}

bool NcclCommunicator::issue(const CollectiveCall& call, void* stream, Clock::time_point start, milliseconds timeout) {
  check_usable();
  const int dtype = check_call(call, rank_, size_, timeout);
  if (call.count == 0) return false;
  const std::string what = describe(call, size_);
  const ScopedContext scope(*driver_, ctx_);
  check_device_pointer(call.send, "send", what);
  if (call.recv != call.send) check_device_pointer(call.recv, "receive", what);
  settle(launch(call, dtype, stream != nullptr ? stream : stream_), what, start, timeout);
  return true;
}

void NcclCommunicator::enqueue(const CollectiveCall& call, void* stream, milliseconds timeout) {
  issue(call, stream, Clock::now(), timeout);
}

void NcclCommunicator::enqueue_all_reduce_group(std::span<const AllReduceItem> items, dist::ReduceOp op, void* stream,
                                                milliseconds timeout) {
  const auto start = Clock::now();
  check_usable();
  std::vector<int> dtypes;
  std::vector<CollectiveCall> calls;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const CollectiveCall call{.kind = CollectiveKind::AllReduce,
                              .send = items[i].data,
                              .recv = items[i].data,
                              .count = items[i].count,
                              .dtype = items[i].dtype,
                              .op = op};
    try {
      dtypes.push_back(check_call(call, rank_, size_, timeout));
    } catch (const Error& e) {
      fail(e.kind(), cat("grouped all_reduce, item ", i, " of ", items.size(), ": ", e.what()));
    }
    calls.push_back(call);
  }
  const std::string what = cat("grouped all_reduce of ", items.size(), " buffer(s)");
  const ScopedContext scope(*driver_, ctx_);
  for (std::size_t i = 0; i < calls.size(); ++i)
    if (calls[i].count > 0) check_device_pointer(calls[i].recv, cat("item ", i, "'s").c_str(), what);
  const NcclLibrary::Api& api = nccl_->api();
  if (const ncclResult_t st = api.group_start(); st != ncclSuccess)
    fail(ErrorKind::Runtime, cat("nccl ", what, ": ncclGroupStart failed: ", nccl_->describe(st)));
  // Inside a group NCCL only records the calls; an error in one still needs ncclGroupEnd.
  int first_error = ncclSuccess;
  std::size_t failed_item = 0;
  for (std::size_t i = 0; i < calls.size() && first_error == ncclSuccess; ++i) {
    if (calls[i].count == 0) continue;
    first_error = launch(calls[i], dtypes[i], stream != nullptr ? stream : stream_);
    failed_item = i;
  }
  const ncclResult_t end = api.group_end();
  if (first_error != ncclSuccess && first_error != ncclInProgress)
    break_with(what, cat("item ", failed_item, ": ", nccl_->describe(first_error), last_error()), start);
  settle(end, what, start, timeout);
}

void NcclCommunicator::settle(int result, const std::string& what, Clock::time_point start, milliseconds timeout) {
  if (result == ncclSuccess) return;
  if (result != ncclInProgress) break_with(what, cat(nccl_->describe(result), last_error()), start);
  poll(what, start, timeout, {});
}

void NcclCommunicator::poll(const std::string& what, Clock::time_point start, milliseconds timeout,
                            const std::function<int()>& query) {
  const NcclLibrary::Api& api = nccl_->api();
  auto pause = std::chrono::microseconds(0);
  for (int round = 0;; ++round) {
    ncclResult_t state = ncclSuccess;
    if (const ncclResult_t st = api.comm_get_async_error(comm_, &state); st != ncclSuccess)
      break_with(what, cat("ncclCommGetAsyncError failed: ", nccl_->describe(st)), start);
    if (state != ncclSuccess && state != ncclInProgress)
      break_with(what, cat("NCCL reported ", nccl_->describe(state), last_error()), start);
    if (state == ncclSuccess) {
      if (!query) return;
      const int done = query();
      if (done == kCudaSuccess) {
        // The work may have failed just before it finished (after the state above was read):
        // look once more, or a rank whose collective was refused would report success.
        if (api.comm_get_async_error(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
          break_with(what, cat("NCCL reported ", nccl_->describe(state), last_error()), start);
        return;
      }
      if (done != kCudaErrorNotReady) break_with(what, cat("the device reported ", driver_->describe(done)), start);
    }
    if (Clock::now() - start >= timeout)
      break_with(what,
                 cat("it did not finish within the timeout of ", timeout.count(),
                     " ms (a peer may have died, hung, or be calling a different operation or count)"),
                 start);
    // Spin briefly (a small collective takes microseconds), then back off to at most 1 ms.
    if (round < 64) {
      std::this_thread::yield();
    } else {
      pause = std::min(std::max(pause * 2, std::chrono::microseconds(10)), std::chrono::microseconds(1000));
      std::this_thread::sleep_for(pause);
    }
  }
}

void NcclCommunicator::break_with(const std::string& what, const std::string& reason, Clock::time_point start) {
  const long long waited = ms_since(start);
  if (comm_ != nullptr) {
    // Abort stops the kernels still waiting for peers and frees the communicator.
    if (const ncclResult_t st = nccl_->api().comm_abort(comm_); st != ncclSuccess)
      log().warn("nccl: ncclCommAbort (rank {}) failed: {}", rank_, nccl_->describe(st));
    comm_ = nullptr;
  }
  broken_ = cat("nccl ", what, " on rank ", rank_, " of ", size_, " (device ", device_, ") failed after ", waited,
                " ms: ", reason);
  fail(ErrorKind::Runtime, cat(broken_, "; the communicator was aborted and is broken"));
}

void NcclCommunicator::wait(void* stream, milliseconds timeout) {
  const auto start = Clock::now();
  check_usable();
  if (timeout.count() <= 0)
    fail(ErrorKind::InvalidArgument,
         cat("nccl wait on rank ", rank_, ": the timeout must be positive, got ", timeout.count(), " ms"));
  const CudaDriver& d = *driver_;
  const ScopedContext scope(d, ctx_);
  if (stream == nullptr || stream == stream_) {
    poll("wait for its stream", start, timeout, [&] { return d.stream_query(stream_); });
    return;
  }
  // The event marks the work on `stream` so far; later work does not prolong the wait.
  d.check(d.event_record(event_, stream), "cuEventRecord (nccl wait)");
  poll("wait for a stream", start, timeout, [&] { return d.event_query(event_); });
}

void NcclCommunicator::run(const CollectiveCall& call, milliseconds timeout) {
  const auto start = Clock::now();
  if (!issue(call, stream_, start, timeout)) return;
  const CudaDriver& d = *driver_;
  const ScopedContext scope(d, ctx_);
  poll(describe(call, size_), start, timeout, [&] { return d.stream_query(stream_); });
}

void NcclCommunicator::all_reduce(void* data, std::size_t count, DType dtype, dist::ReduceOp op, milliseconds timeout) {
  run({.kind = CollectiveKind::AllReduce, .send = data, .recv = data, .count = count, .dtype = dtype, .op = op},
      timeout);
}

void NcclCommunicator::reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                      dist::ReduceOp op, milliseconds timeout) {
  run({.kind = CollectiveKind::ReduceScatter,
       .send = send,
       .recv = recv,
       .count = recv_count,
       .dtype = dtype,
       .op = op},
      timeout);
}

void NcclCommunicator::all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                                  milliseconds timeout) {
  run({.kind = CollectiveKind::AllGather, .send = send, .recv = recv, .count = send_count, .dtype = dtype}, timeout);
}

void NcclCommunicator::broadcast(void* data, std::size_t count, DType dtype, int root, milliseconds timeout) {
  run({.kind = CollectiveKind::Broadcast, .send = data, .recv = data, .count = count, .dtype = dtype, .root = root},
      timeout);
}

void NcclCommunicator::barrier(milliseconds timeout) {
  // A device address held as an integer (CUdeviceptr), as the driver API gives it.
  // NOLINTNEXTLINE(performance-no-int-to-ptr)
  auto* word = reinterpret_cast<void*>(static_cast<std::uintptr_t>(barrier_word_));
  run({.kind = CollectiveKind::AllReduce, .send = word, .recv = word, .count = 1, .dtype = DType::i32}, timeout);
}

}  // namespace trainrt::detail

namespace trainrt::dist {

std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device,
                                                std::chrono::milliseconds timeout) {
  return detail::NcclCommunicator::create(bootstrap, device, nullptr, timeout);
}

std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, void* stream,
                                                std::chrono::milliseconds timeout) {
  return detail::NcclCommunicator::create(bootstrap, device, stream, timeout);
}

}  // namespace trainrt::dist
