// dist/mpi/mpi_communicator.h — the MPI implementation of dist::Communicator.
//
// One duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN. Each collective is started with its
// nonblocking MPI call and polled with MPI_Test (a short spin, then sleeps of 50-200 us) until
// it completes or its deadline passes; a timeout or an MPI error breaks the communicator. Calls
// are serialized by a mutex, so MPI_THREAD_SERIALIZED suffices. Messages are split so that no
// MPI call carries more than INT_MAX elements or `max_message_bytes` bytes.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "dist/mpi/mpi_types.h"
#include "trainrt/dist_mpi.hpp"

namespace trainrt::detail {

class MpiCommunicator final : public dist::Communicator {
 public:
  /// The most bytes one MPI call carries by default (1 GiB): far from any int overflow of
  /// byte counts inside MPI implementations.
  static constexpr std::size_t kMaxMessageBytes = std::size_t{1} << 30;

  /// Initializes MPI if needed and duplicates MPI_COMM_WORLD (within options.timeout).
  /// `max_message_bytes` (>= 1) bounds the bytes per MPI call; tests make it small to exercise
  /// the splitting. Throws as dist::mpi_communicator() documents.
  explicit MpiCommunicator(const dist::MpiOptions& options, std::size_t max_message_bytes = kMaxMessageBytes);
  /// Frees the duplicate communicator, unless MPI is finalized or a collective failed (then
  /// its pending operation may still use it, and it is left to process exit).
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  std::string_view backend() const noexcept override { return "mpi"; }
  bool device_memory() const noexcept override { return false; }
  std::chrono::milliseconds default_timeout() const noexcept override { return timeout_; }

  void all_reduce(void* data, std::size_t count, DType dtype, dist::ReduceOp op,
                  std::chrono::milliseconds timeout) override;
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, dist::ReduceOp op,
                      std::chrono::milliseconds timeout) override;
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                  std::chrono::milliseconds timeout) override;
  void broadcast(void* data, std::size_t count, DType dtype, int root, std::chrono::milliseconds timeout) override;
  void barrier(std::chrono::milliseconds timeout) override;
  using dist::Communicator::all_reduce;
  using dist::Communicator::barrier;
  using dist::Communicator::broadcast;

 private:
  using Clock = std::chrono::steady_clock;
  /// One collective call in progress: what it is (for messages) and its deadline.
  struct Call {
    std::string what;  ///< e.g. "all_reduce(sum) of 1000 f32 elements"
    Clock::time_point begin;
    Clock::time_point deadline;
    std::chrono::milliseconds timeout;
  };

  /// Checks the arguments every collective shares and that the communicator is usable;
  /// returns the Call. Throws InvalidArgument or Runtime.
  Call begin_call(std::string what, std::chrono::milliseconds timeout) const;
  /// Polls `request` (started by `mpi_function`, which returned `start_code`; taken by
  /// reference so that it is read after the call that starts it) until it
  /// completes; throws Runtime and breaks the communicator on an MPI error or the deadline.
  void complete(int start_code, MPI_Request& request, const char* mpi_function, const Call& call);
  /// Marks the communicator broken with `message` and throws it (ErrorKind::Runtime).
  [[noreturn]] void break_with(const std::string& message);
  /// Elements of `element_bytes` one MPI call may carry when the message is `parts` blocks of
  /// that many elements.
  std::size_t max_elements(std::size_t element_bytes, std::size_t parts) const noexcept;
  /// "on rank r of n".
  std::string where() const;

  std::mutex mutex_;  // serializes calls: MPI_THREAD_SERIALIZED is enough
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::unique_ptr<MpiReduceOps> ops_;
  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_;
  std::size_t max_message_bytes_;
  // reduce_scatter's packed blocks while a split call runs; kept by a failed call (see ~).
  std::unique_ptr<std::byte[]> scratch_;
  std::string broken_;  // the failure that broke the communicator, empty while usable
};

}  // namespace trainrt::detail
