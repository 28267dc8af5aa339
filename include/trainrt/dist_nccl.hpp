// trainrt/dist_nccl.hpp — the NCCL communicator: collectives over tensors in device memory.
//
// NCCL and the CUDA driver are loaded at run time on first use (nothing CUDA is linked), so
// this header and the function below exist in every build; without NCCL, a driver or a
// device, the function throws trainrt::Error saying which is missing.
//
//   auto host = trainrt::dist::mpi_communicator();  // or any Communicator over host memory
//   auto gpu = trainrt::dist::nccl_communicator(*host, trainrt::dist::launch_info().local_rank);
//   gpu->all_reduce(device_ptr, count, trainrt::f32);
//
// Library lookup: $TRAINRT_NCCL (a path to libnccl.so.2) when set, else the loader's search
// for libnccl.so.2, then /usr/local/cuda/lib64 and $CUDA_HOME/lib64. NCCL 2.14 or newer.
#pragma once

#include <chrono>
#include <memory>

#include "trainrt/dist.hpp"

namespace trainrt::dist {

/// Creates this process's rank of an NCCL communicator over the ranks of `bootstrap`, on CUDA
/// device `device` (usually launch_info().local_rank). Collective: every rank of `bootstrap`
/// calls it at the same time. Rank 0 makes NCCL's unique id and sends it to the others with
/// bootstrap.broadcast (host memory: `bootstrap` is typically the MPI communicator; it is used
/// only during this call). The new communicator has the rank and size of `bootstrap`, takes
/// device pointers of `device` (backend() "nccl", device_memory() true), issues its work on a
/// CUDA stream of its own, and uses `timeout` both for joining and as its default_timeout().
/// Each blocking call enqueues the collective and waits for it on the host, polling the
/// stream and NCCL's asynchronous error state; a call that fails or outlasts its timeout
/// aborts the communicator, which is broken from then on (every later call throws at once).
/// Throws trainrt::Error: Unsupported when libnccl, the CUDA driver or any device is missing
/// (with the loader's message), or when libtrainrt was built without the CUDA headers;
/// InvalidArgument for a device that does not exist, a timeout that is not positive or a
/// bootstrap communicator over device memory; Runtime when a rank could not set up, or
/// joining failed or timed out (naming rank, device and time waited).
std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device,
                                                std::chrono::milliseconds timeout = std::chrono::minutes(5));

/// The same, issuing the collectives on `stream` (a CUstream of `device`'s primary context,
/// passed as void*; the caller keeps it alive as long as the communicator) instead of a
/// stream of the communicator's own; nullptr means a stream of its own. The blocking calls
/// then wait for everything enqueued on `stream` before they return.
std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, void* stream,
                                                std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace trainrt::dist
