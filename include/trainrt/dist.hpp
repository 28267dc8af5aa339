// trainrt/dist.hpp — collective communication for data-parallel training.
//
// A Communicator joins the ranks of one job. libtrainrt ships two: MPI for tensors in host
// memory (trainrt/dist_mpi.hpp, in the separate library trainrt::mpi so that a
// single-process application needs no MPI) and NCCL for tensors in device memory (loaded at
// run time like the rest of CUDA). Ranks are started by a launcher (`mpirun`, `srun`);
// launch_info() reads rank, size and local rank from its environment.
//
//   auto comm = trainrt::dist::mpi_communicator();
//   auto program = trainrt::compile(graph, loss, trainrt::optim::SGD{.lr = 0.1},
//                                   {.data_parallel = {.communicator = comm}});
//
// Every operation takes a timeout: a peer that died or stopped answering makes the call
// throw trainrt::Error (ErrorKind::Runtime) naming the operation, the rank and the time
// waited, never hang. After such an error the communicator is broken: every later call
// throws at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "trainrt/dtype.hpp"

namespace trainrt::dist {

/// How all_reduce and reduce_scatter combine the ranks' elements.
enum class ReduceOp {
  sum,  ///< the sum of the ranks' elements (logical or for boolean)
  max,  ///< the largest element (logical or for boolean)
  min,  ///< the smallest element (logical and for boolean)
};

/// Where this process stands in its job, as the launcher tells it.
struct LaunchInfo {
  int rank = 0;                   ///< this process among all ranks, 0 <= rank < size
  int size = 1;                   ///< ranks in the job
  int local_rank = 0;             ///< this process among the ranks of its machine (picks its GPU)
  int local_size = 1;             ///< ranks on this machine
  std::string launcher = "none";  ///< "openmpi", "mpich", "slurm" or "none" (one process)
};

/// Reads the launcher's environment: OpenMPI (OMPI_COMM_WORLD_*), MPICH/Hydra (PMI_*,
/// MPI_LOCALRANKID), Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID), else one process.
/// Throws InvalidArgument naming the variable when one is set but malformed or out of range.
LaunchInfo launch_info();

/// The collectives data-parallel training needs. Buffers live where the implementation
/// says (host memory for MPI, device memory for NCCL); counts are elements of `dtype`.
/// Every rank must call the same operations in the same order with the same counts.
/// Implementations are safe to call from one thread at a time.
class Communicator {
 public:
  /// Leaves the job: frees the implementation's resources (kept after a failure, since an
  /// abandoned operation may still use them). It does not finalize MPI.
  virtual ~Communicator() = default;
  /// For implementations.
  Communicator() = default;
  /// Not copyable: a communicator is one rank's membership of a job (share it by shared_ptr).
  Communicator(const Communicator&) = delete;
  /// Not copyable, as above.
  Communicator& operator=(const Communicator&) = delete;

  /// This process's rank, 0 <= rank() < size().
  virtual int rank() const noexcept = 0;
  /// The number of ranks joined by this communicator.
  virtual int size() const noexcept = 0;
  /// The implementation's name: "mpi", "nccl", "local" (local_communicators()).
  virtual std::string_view backend() const noexcept = 0;
  /// Whether buffers are device pointers (NCCL) rather than host memory (MPI).
  virtual bool device_memory() const noexcept = 0;
  /// The timeout of calls made without one.
  virtual std::chrono::milliseconds default_timeout() const noexcept = 0;

  /// Combines `count` elements of every rank's `data` in place: afterwards every rank holds
  /// the combination. The virtual collectives throw trainrt::Error (Runtime) naming the
  /// operation, this rank and the time waited when the other ranks do not all join within
  /// `timeout` or the transport fails; the communicator is then broken and every later call
  /// throws at once.
  /// InvalidArgument for a broadcast root that is not a rank (MPI also for a timeout <= 0).
  virtual void all_reduce(void* data, std::size_t count, DType dtype, ReduceOp op,
                          std::chrono::milliseconds timeout) = 0;
  /// Rank r receives in `recv` (recv_count elements) block r of the combination of every
  /// rank's `send` (size() * recv_count elements).
  virtual void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, ReduceOp op,
                              std::chrono::milliseconds timeout) = 0;
  /// `recv` (size() * send_count elements) receives every rank's `send`, in rank order.
  virtual void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                          std::chrono::milliseconds timeout) = 0;
  /// Copies `root`'s `data` to every rank.
  virtual void broadcast(void* data, std::size_t count, DType dtype, int root, std::chrono::milliseconds timeout) = 0;
  /// Returns when every rank has called it.
  virtual void barrier(std::chrono::milliseconds timeout) = 0;

  // The same, with the default timeout. (An implementation that overrides the virtual
  // functions brings these back into its scope with `using Communicator::all_reduce;` etc.)

  /// all_reduce() with default_timeout(); `op` defaults to a sum. Throws as all_reduce().
  void all_reduce(void* data, std::size_t count, DType dtype, ReduceOp op = ReduceOp::sum) {
    all_reduce(data, count, dtype, op, default_timeout());
  }
  /// reduce_scatter() with default_timeout(); `op` defaults to a sum. Throws as all_reduce().
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, ReduceOp op = ReduceOp::sum) {
    reduce_scatter(send, recv, recv_count, dtype, op, default_timeout());
  }
  /// all_gather() with default_timeout(). Throws as all_reduce().
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
    all_gather(send, recv, send_count, dtype, default_timeout());
  }
  /// broadcast() with default_timeout(), from rank 0 unless `root` says otherwise. Throws as
  /// all_reduce().
  void broadcast(void* data, std::size_t count, DType dtype, int root = 0) {
    broadcast(data, count, dtype, root, default_timeout());
  }
  /// barrier() with default_timeout(). Throws as all_reduce().
  void barrier() { barrier(default_timeout()); }
};

/// `size` communicators joined inside this process (element r is rank r), over host memory:
/// for tests, and for running data-parallel replicas as threads (each thread steps its own
/// Program). Throws InvalidArgument for size < 1 or a non-positive timeout.
std::vector<std::shared_ptr<Communicator>> local_communicators(
    int size, std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace trainrt::dist
