// dist/mpi/mpi_communicator.cpp — MPI collectives with timeouts, and mpi_communicator().
#include "dist/mpi/mpi_communicator.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "dist/mpi/mpi_env.h"

namespace trainrt::detail {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Polling: MPI_Test in a tight loop for the first kSpin (a fast collective finishes here
// without a context switch), then sleeps doubling from kMinSleep to kMaxSleep so that a rank
// waiting for a slow peer leaves the core to the peer's threads.
constexpr microseconds kSpin{100};
constexpr microseconds kMinSleep{50};
constexpr microseconds kMaxSleep{200};

const std::byte* bytes_of(const void* p) { return static_cast<const std::byte*>(p); }
std::byte* bytes_of(void* p) { return static_cast<std::byte*>(p); }

/// Whether [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes != 0 && b_bytes != 0 && x < y + b_bytes && y < x + a_bytes;
}

std::string elements(std::size_t count, DType dtype) { return cat(count, " ", name(dtype), " elements"); }

long long elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

MpiCommunicator::MpiCommunicator(const dist::MpiOptions& options, std::size_t max_message_bytes)
    : timeout_(options.timeout), max_message_bytes_(max_message_bytes) {
  if (options.timeout.count() <= 0)
    fail(ErrorKind::InvalidArgument,
         cat("dist::mpi_communicator: MpiOptions::timeout is ", options.timeout.count(), " ms; it must be > 0"));
  check_internal(max_message_bytes >= 1, "MpiCommunicator: max_message_bytes >= 1");
  const dist::LaunchInfo launch = dist::launch_info();  // the launcher's view, before MPI's
  ensure_mpi_initialized();

  // MPI_Comm_idup rather than MPI_Comm_dup: duplicating is collective, and a rank that never
  // arrives must end in an Error, not a hang.
  const auto begin = Clock::now();
  Call call{"creating the communicator (MPI_Comm_idup of MPI_COMM_WORLD)", begin, begin + timeout_, timeout_};
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  rank_ = world_rank;
  size_ = world_size;
  MPI_Request request = MPI_REQUEST_NULL;
  complete(MPI_Comm_idup(MPI_COMM_WORLD, &comm_, &request), request, "MPI_Comm_idup", call);
  try {
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", "dist::mpi_communicator");
    ops_ = std::make_unique<MpiReduceOps>();
    if (launch.rank != rank_ || launch.size != size_)
      fail(ErrorKind::Runtime,
           cat("dist::mpi_communicator: MPI says this process is rank ", rank_, " of ", size_, " but the ",
               launch.launcher == "none"
                   ? std::string("environment names no launcher (one process)")
                   : cat(launch.launcher, " launcher's environment says rank ", launch.rank, " of ", launch.size),
               ". Start the program with the launcher of the MPI it was built with (its mpirun/mpiexec, or srun "
               "with that MPI's plugin, e.g. --mpi=pmix)."));
  } catch (...) {
    ops_.reset();
    MPI_Comm_free(&comm_);
    throw;
  }
  log().debug("dist::mpi: communicator ready, rank {} of {} ({} launcher, local rank {} of {}), timeout {} ms", rank_,
              size_, launch.launcher, launch.local_rank, launch.local_size, timeout_.count());
}

MpiCommunicator::~MpiCommunicator() {
  if (!broken_.empty()) {
    // A collective that will never complete may still read or write these: leave them.
    if (ops_) ops_->release();
    static_cast<void>(ops_.release());
    static_cast<void>(scratch_.release());
    return;
  }
  if (mpi_finalized()) {
    if (ops_) ops_->release();
    return;
  }
  ops_.reset();
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::string MpiCommunicator::where() const { return cat("on rank ", rank_, " of ", size_); }

MpiCommunicator::Call MpiCommunicator::begin_call(std::string what, milliseconds timeout) const {
  if (!broken_.empty())
    fail(ErrorKind::Runtime,
         cat("dist::mpi ", what, " ", where(),
             ": the communicator is broken by an earlier failure, so nothing more can be sent: ", broken_));
  if (timeout.count() <= 0)
    fail(ErrorKind::InvalidArgument,
         cat("dist::mpi ", what, " ", where(), ": timeout is ", timeout.count(), " ms; it must be > 0"));
  if (mpi_finalized())
    fail(ErrorKind::Runtime, cat("dist::mpi ", what, " ", where(), ": MPI has been finalized in this process"));
  const auto begin = Clock::now();
  return Call{std::move(what), begin, begin + timeout, timeout};
}

void MpiCommunicator::break_with(const std::string& message) {
  broken_ = message;
  mark_mpi_broken();
  if (ops_) ops_->release();
  log().error("{}", message);
  fail(ErrorKind::Runtime, message);
}

void MpiCommunicator::complete(int start_code, MPI_Request& request, const char* mpi_function, const Call& call) {
  if (start_code != MPI_SUCCESS)
    break_with(cat("dist::mpi ", call.what, " ", where(), ": ", mpi_function, " failed: ", mpi_error_text(start_code)));
  auto sleep = kMinSleep;
  for (;;) {
    int done = 0;
    const int code = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS)
      break_with(cat("dist::mpi ", call.what, " ", where(), ": ", mpi_function, " failed after ",
                     elapsed_ms(call.begin), " ms: ", mpi_error_text(code),
                     " (a peer rank may have died or called a different collective)"));
    if (done) return;
    const auto now = Clock::now();
    if (now >= call.deadline)
      break_with(cat("dist::mpi ", call.what, " ", where(), " timed out after ", elapsed_ms(call.begin),
                     " ms (timeout ", call.timeout.count(),
                     " ms): a peer rank died, stalled, or called a different collective (every rank must call the "
                     "same collectives in the same order with the same counts). The communicator is broken; the "
                     "process should exit."));
    if (now - call.begin >= kSpin) {
      std::this_thread::sleep_for(std::min<Clock::duration>(sleep, call.deadline - now));
      sleep = std::min(sleep * 2, kMaxSleep);
    }
  }
}

std::size_t MpiCommunicator::max_elements(std::size_t element_bytes, std::size_t parts) const noexcept {
  const std::size_t by_bytes = max_message_bytes_ / element_bytes / parts;
  return std::clamp<std::size_t>(by_bytes, 1, INT_MAX);
}

void MpiCommunicator::all_reduce(void* data, std::size_t count, DType dtype, dist::ReduceOp op, milliseconds timeout) {
  std::lock_guard lock(mutex_);
  MPI_Datatype type = mpi_datatype(dtype);
  const Call call = begin_call(cat("all_reduce(", reduce_op_name(op), ") of ", elements(count, dtype)), timeout);
  MPI_Op mpi_op = ops_->get(dtype, op);
  if (count != 0 && data == nullptr)
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": data is null"));
  const std::size_t e = size_of(dtype), chunk = max_elements(e, 1);
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(chunk, count - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    void* at = data == nullptr ? nullptr : bytes_of(data) + offset * e;
    complete(MPI_Iallreduce(MPI_IN_PLACE, at, static_cast<int>(n), type, mpi_op, comm_, &request), request,
             "MPI_Iallreduce", call);
    offset += n;
  } while (offset < count);
}

void MpiCommunicator::broadcast(void* data, std::size_t count, DType dtype, int root, milliseconds timeout) {
  std::lock_guard lock(mutex_);
  MPI_Datatype type = mpi_datatype(dtype);
  const Call call = begin_call(cat("broadcast from rank ", root, " of ", elements(count, dtype)), timeout);
  if (root < 0 || root >= size_)
    fail(ErrorKind::InvalidArgument,
         cat("dist::mpi ", call.what, " ", where(), ": root ", root, " is not a rank (0 <= root < ", size_, ")"));
  if (count != 0 && data == nullptr)
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": data is null"));
  const std::size_t e = size_of(dtype), chunk = max_elements(e, 1);
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(chunk, count - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    void* at = data == nullptr ? nullptr : bytes_of(data) + offset * e;
    complete(MPI_Ibcast(at, static_cast<int>(n), type, root, comm_, &request), request, "MPI_Ibcast", call);
    offset += n;
  } while (offset < count);
}

void MpiCommunicator::all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                                 milliseconds timeout) {
  std::lock_guard lock(mutex_);
  MPI_Datatype type = mpi_datatype(dtype);
  const Call call = begin_call(cat("all_gather of ", elements(send_count, dtype), " per rank"), timeout);
  const std::size_t e = size_of(dtype), ranks = static_cast<std::size_t>(size_);
  if (send_count > SIZE_MAX / e / ranks)
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": the result's size overflows"));
  const std::size_t block = send_count * e;
  if (send_count != 0 && (send == nullptr || recv == nullptr))
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": a buffer is null"));
  // `send` may be this rank's own block of `recv` (MPI_IN_PLACE); any other overlap is an error.
  const bool in_place = send_count != 0 && send == bytes_of(recv) + static_cast<std::size_t>(rank_) * block;
  if (!in_place && overlaps(send, block, recv, block * ranks))
    fail(ErrorKind::InvalidArgument,
         cat("dist::mpi ", call.what, " ", where(),
             ": send overlaps recv; it may only be this rank's own block of recv (in place)"));

  const std::size_t chunk = max_elements(e, ranks);
  if (send_count <= chunk) {
    MPI_Request request = MPI_REQUEST_NULL;
    const int n = static_cast<int>(send_count);
    complete(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, n, type, recv, n, type, comm_, &request), request,
             "MPI_Iallgather", call);
    return;
  }
  // Split: chunk [offset, offset + n) of every rank's block, received through a datatype of
  // n elements whose extent is a whole block, so that rank r's piece lands in block r.
  for (std::size_t offset = 0; offset < send_count; offset += chunk) {
    const std::size_t n = std::min(chunk, send_count - offset);
    MPI_Datatype piece = MPI_DATATYPE_NULL, strided = MPI_DATATYPE_NULL;
    check_mpi(MPI_Type_contiguous(static_cast<int>(n), type, &piece), "MPI_Type_contiguous", "dist::mpi " + call.what);
    const int resized = MPI_Type_create_resized(piece, 0, static_cast<MPI_Aint>(block), &strided);
    MPI_Type_free(&piece);
    check_mpi(resized, "MPI_Type_create_resized", "dist::mpi " + call.what);
    const int committed = MPI_Type_commit(&strided);
    if (committed != MPI_SUCCESS) MPI_Type_free(&strided);
    check_mpi(committed, "MPI_Type_commit", "dist::mpi " + call.what);
    MPI_Request request = MPI_REQUEST_NULL;
    const int code = MPI_Iallgather(in_place ? MPI_IN_PLACE : bytes_of(send) + offset * e, static_cast<int>(n), type,
                                    bytes_of(recv) + offset * e, 1, strided, comm_, &request);
    MPI_Type_free(&strided);  // MPI keeps it alive until the pending operation completes
    complete(code, request, "MPI_Iallgather", call);
  }
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                     dist::ReduceOp op, milliseconds timeout) {
  std::lock_guard lock(mutex_);
  MPI_Datatype type = mpi_datatype(dtype);
  const Call call = begin_call(
      cat("reduce_scatter(", reduce_op_name(op), ") of ", elements(recv_count, dtype), " per rank"), timeout);
  MPI_Op mpi_op = ops_->get(dtype, op);
  const std::size_t e = size_of(dtype), ranks = static_cast<std::size_t>(size_);
  if (recv_count > SIZE_MAX / e / ranks)
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": the input's size overflows"));
  const std::size_t block = recv_count * e;
  if (recv_count != 0 && (send == nullptr || recv == nullptr))
    fail(ErrorKind::InvalidArgument, cat("dist::mpi ", call.what, " ", where(), ": a buffer is null"));
  if (overlaps(send, block * ranks, recv, block))
    fail(ErrorKind::InvalidArgument,
         cat("dist::mpi ", call.what, " ", where(), ": recv overlaps send; give reduce_scatter separate buffers"));

  const std::size_t chunk = max_elements(e, ranks);
  if (recv_count <= chunk) {
    MPI_Request request = MPI_REQUEST_NULL;
    complete(MPI_Ireduce_scatter_block(send, recv, static_cast<int>(recv_count), type, mpi_op, comm_, &request),
             request, "MPI_Ireduce_scatter_block", call);
    return;
  }
  // Split: gather piece [offset, offset + n) of every block into `scratch_` (rank order), then
  // reduce-scatter that; the scratch buffer outlives a failed call (see the destructor).
  scratch_ = std::make_unique_for_overwrite<std::byte[]>(chunk * e * ranks);
  for (std::size_t offset = 0; offset < recv_count; offset += chunk) {
    const std::size_t n = std::min(chunk, recv_count - offset);
    for (std::size_t r = 0; r < ranks; ++r)
      std::memcpy(scratch_.get() + r * n * e, bytes_of(send) + r * block + offset * e, n * e);
    MPI_Request request = MPI_REQUEST_NULL;
    complete(MPI_Ireduce_scatter_block(scratch_.get(), bytes_of(recv) + offset * e, static_cast<int>(n), type, mpi_op,
                                       comm_, &request),
             request, "MPI_Ireduce_scatter_block", call);
  }
  scratch_.reset();  // up to 1 GiB: not kept between calls
}

void MpiCommunicator::barrier(milliseconds timeout) {
  std::lock_guard lock(mutex_);
  const Call call = begin_call("barrier", timeout);
  MPI_Request request = MPI_REQUEST_NULL;
  complete(MPI_Ibarrier(comm_, &request), request, "MPI_Ibarrier", call);
}

}  // namespace trainrt::detail

namespace trainrt::dist {

std::chrono::milliseconds mpi_default_timeout() {
  constexpr std::chrono::milliseconds kDefault = std::chrono::minutes(5);
  const char* text = std::getenv("TRAINRT_DIST_TIMEOUT_MS");
  if (text == nullptr || *text == '\0') return kDefault;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value <= 0)
    detail::fail(ErrorKind::InvalidArgument, detail::cat("dist: environment variable TRAINRT_DIST_TIMEOUT_MS='", text,
                                                         "' is not a positive number of milliseconds"));
  return std::chrono::milliseconds(value);
}

std::shared_ptr<Communicator> mpi_communicator(const MpiOptions& options) {
  return std::make_shared<detail::MpiCommunicator>(options);
}

}  // namespace trainrt::dist
