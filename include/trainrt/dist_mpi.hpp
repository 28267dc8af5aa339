// trainrt/dist_mpi.hpp — the MPI Communicator for tensors in host memory (library trainrt::mpi).
//
// Link trainrt::mpi (built when CMake finds MPI, see TRAINRT_MPI) and start the ranks with
// the launcher: `mpirun -np 4 ./app` on one machine, `srun -N 2 --ntasks-per-node 8 ./app`
// under Slurm. A program started without a launcher is a world of one rank (MPI's
// singleton mode). Usage: tests/dist_mpi_test.cpp.
//
// MPI itself: mpi_communicator() initializes MPI (MPI_Init_thread asking for
// MPI_THREAD_MULTIPLE) unless the application already did; it needs at least
// MPI_THREAD_SERIALIZED. When libtrainrt initialized MPI it also finalizes it at process exit
// (std::atexit), unless a communicator failed: finalizing with a dead or stalled peer can
// hang, so it is skipped then. An application that initialized MPI finalizes it itself, after
// dropping its communicators. Each communicator works on its own duplicate of MPI_COMM_WORLD
// with MPI_ERRORS_RETURN, so MPI errors become trainrt::Error instead of aborting.
//
// Timeouts. Every collective is started nonblocking and polled until done or until its
// timeout; then the call throws trainrt::Error (ErrorKind::Runtime) naming the operation, the
// count and dtype, this rank, the time waited and the likely cause, and the communicator is
// broken: later calls throw at once. The abandoned operation may still hold the buffers it
// was given, so after such an error the process should report and exit (non-zero) rather
// than reuse them. What happens to the other ranks when one fails, with Open MPI 4.1
// (tests/dist_mpi_fault_test.sh checks each case):
//   - A rank that stalls (a deadlock, a long pause, a different collective): the others
//     throw the timeout Error. By default, the first rank to exit non-zero makes mpirun kill
//     the whole job (the stalled rank too) and exit non-zero.
//   - A rank that dies (a signal): by default mpirun kills the whole job at once and reports
//     the dead rank and its signal; nobody waits for the timeout.
//   - Under `mpirun --enable-recovery` the survivors keep running: a collective that needs
//     the dead or stalled rank never completes (shared memory gives no notice of a dead
//     peer), so it ends with the timeout Error on every survivor. mpirun then exits 0 even
//     though ranks exited non-zero: check the ranks' own reports.
//   - Avoid `--mca orte_abort_on_non_zero_status 0`: after a rank is killed, every survivor
//     ends with the timeout Error, but Open MPI 4.1.4's mpirun never exits.
//
// Element types and operations: all trainrt::DType values. f16 and bf16 are combined by
// user-defined MPI operations computing in f32 and rounding to nearest even at each step.
// For boolean, sum and max are logical or, min is logical and. Integer sums are not checked
// for overflow (as in MPI).
// Counts above INT_MAX (or 1 GiB per message) are split into several MPI calls.
#pragma once

#include <chrono>
#include <memory>

#include "trainrt/dist.hpp"

namespace trainrt::dist {

/// The default timeout of MPI collectives: TRAINRT_DIST_TIMEOUT_MS (milliseconds, > 0) when
/// set, else 5 minutes. Throws InvalidArgument naming the variable when it is malformed.
std::chrono::milliseconds mpi_default_timeout();

/// Options of mpi_communicator().
struct MpiOptions {
  /// The timeout of calls made without one (Communicator::default_timeout()); must be > 0.
  std::chrono::milliseconds timeout = mpi_default_timeout();
};

/// A Communicator over every rank of the job (a duplicate of MPI_COMM_WORLD); buffers are
/// host memory. Initializes MPI when the application has not. Collective: every rank must
/// call it. Throws InvalidArgument for a timeout <= 0; Unsupported when MPI was initialized
/// with less than MPI_THREAD_SERIALIZED or was already finalized; Runtime when an MPI call
/// fails or when MPI's rank and size disagree with launch_info() (a program started by
/// another MPI implementation's launcher).
std::shared_ptr<Communicator> mpi_communicator(const MpiOptions& options = {});

}  // namespace trainrt::dist
