// dist/mpi/mpi_env.h — MPI's process-wide state: initialization, finalization at exit, and
// turning MPI error codes into trainrt::Error.
//
// MPI is one per process, so this is the one place in trainrt::mpi with global state: whether
// libtrainrt initialized MPI (then it finalizes it at exit) and whether any communicator has
// failed (then finalizing is skipped, since MPI_Finalize can wait forever on a dead peer).
#pragma once

#include <mpi.h>

#include <string>
#include <string_view>

namespace trainrt::detail {

/// Initializes MPI with MPI_THREAD_MULTIPLE unless it already is, and registers finalization
/// at exit when it did. Returns the thread level MPI provides. Throws Unsupported when MPI was
/// finalized already or provides less than MPI_THREAD_SERIALIZED; Runtime when MPI fails.
int ensure_mpi_initialized();

/// Records that a communicator failed with pending operations: MPI is not finalized at exit.
void mark_mpi_broken() noexcept;

/// Whether MPI has been finalized (by libtrainrt or the application).
bool mpi_finalized() noexcept;

/// MPI_Error_string of `code` with its error class, e.g. "MPI_ERR_TRUNCATE: message
/// truncated (error class 15)".
std::string mpi_error_text(int code);

/// Throws Runtime "<context>: <call> failed: <mpi_error_text>" when `code` is not MPI_SUCCESS.
void check_mpi(int code, std::string_view call, std::string_view context);

}  // namespace trainrt::detail
