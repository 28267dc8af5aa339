// dist/mpi/mpi_env.cpp — MPI initialization, finalization at exit and error text.
#include "dist/mpi/mpi_env.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {

namespace {

// MPI is initialized once per process, so its state is process-wide (guarded by init_mutex;
// mpi_broken is set by any communicator that failed).
// NOLINTBEGIN(cppcoreguidelines-avoid-non-const-global-variables)
std::mutex init_mutex;
bool initialized_by_us = false;
std::atomic<bool> mpi_broken{false};
// NOLINTEND(cppcoreguidelines-avoid-non-const-global-variables)

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
    default: return "an unknown thread level";
  }
}

/// std::atexit handler registered when libtrainrt initialized MPI.
void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (mpi_broken.load()) {
    // A collective is still pending on a dead or stalled peer: MPI_Finalize could wait for it
    // forever. Leaving without it makes the launcher report this rank, which is the truth.
    log().warn("dist::mpi: not finalizing MPI at exit because a collective failed");
    return;
  }
  MPI_Finalize();
}

}  // namespace

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return cat("MPI error code ", code);
  int error_class = code;
  MPI_Error_class(code, &error_class);
  return cat(std::string_view(text, static_cast<std::size_t>(length)), " (MPI error class ", error_class, ")");
}

void check_mpi(int code, std::string_view call, std::string_view context) {
  if (code != MPI_SUCCESS) [[unlikely]]
    fail(ErrorKind::Runtime, cat(context, ": ", call, " failed: ", mpi_error_text(code)));
}

int ensure_mpi_initialized() {
  std::lock_guard lock(init_mutex);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) fail(ErrorKind::Unsupported, "dist::mpi_communicator: MPI has already been finalized in this process");
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    // MPI_Init_thread reports failure through MPI_ERRORS_ARE_FATAL in most implementations;
    // a returned error code is turned into an Error all the same.
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread",
              "dist::mpi_communicator");
    initialized_by_us = true;
    // Functions registered with atexit run in reverse order of registration, interleaved with
    // static destructors: make the logger before registering, so that it outlives the handler.
    log();
    std::atexit(finalize_at_exit);
    log().debug("dist::mpi: initialized MPI, thread level {}", thread_level_name(provided));
  } else {
    check_mpi(MPI_Query_thread(&provided), "MPI_Query_thread", "dist::mpi_communicator");
  }
  if (provided < MPI_THREAD_SERIALIZED)
    fail(ErrorKind::Unsupported,
         cat("dist::mpi_communicator: MPI provides only ", thread_level_name(provided),
             "; libtrainrt needs at least MPI_THREAD_SERIALIZED (its calls come from the executor's threads, one "
             "at a time). ",
             initialized_by_us ? "This MPI library was built without thread support."
                               : "Initialize MPI with MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...)."));
  return provided;
}

void mark_mpi_broken() noexcept { mpi_broken.store(true); }

bool mpi_finalized() noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace trainrt::detail
