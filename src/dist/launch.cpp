// dist/launch.cpp — where this process stands in its job, from the launcher's environment.
#include <cerrno>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "trainrt/dist.hpp"

namespace trainrt::dist {

namespace {

/// The integer in environment variable `name`, or `fallback` when it is unset.
int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0 || value > (1 << 24))
    detail::fail(ErrorKind::InvalidArgument, detail::cat("dist::launch_info: environment variable ", name, "='", text,
                                                         "' is not a non-negative integer"));
  return static_cast<int>(value);
}

bool has(const char* name) { return std::getenv(name) != nullptr; }

/// The leading integer of a Slurm task list such as "4(x2),3" (tasks on the first nodes),
/// or `fallback` when unset or unreadable.
int leading_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr) return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  return end == text || value < 1 ? fallback : static_cast<int>(value);
}

}  // namespace

LaunchInfo launch_info() {
  LaunchInfo info;
  if (has("OMPI_COMM_WORLD_SIZE")) {
    info = {env_int("OMPI_COMM_WORLD_RANK", 0), env_int("OMPI_COMM_WORLD_SIZE", 1),
            env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0), env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1), "openmpi"};
  } else if (has("PMI_SIZE")) {
    info = {env_int("PMI_RANK", 0), env_int("PMI_SIZE", 1), env_int("MPI_LOCALRANKID", 0),
            env_int("MPI_LOCALNRANKS", 1), "mpich"};
  } else if (has("SLURM_NTASKS") && has("SLURM_PROCID")) {
    info = {env_int("SLURM_PROCID", 0), env_int("SLURM_NTASKS", 1), env_int("SLURM_LOCALID", 0),
            leading_int("SLURM_TASKS_PER_NODE", 1), "slurm"};
    if (info.local_rank >= info.local_size) info.local_size = info.local_rank + 1;  // uneven task lists
  }
  if (info.size < 1 || info.rank >= info.size || info.local_size < 1 || info.local_rank >= info.local_size)
    detail::fail(ErrorKind::InvalidArgument,
                 detail::cat("dist::launch_info: the ", info.launcher, " launcher's environment is inconsistent: rank ",
                             info.rank, " of ", info.size, ", local rank ", info.local_rank, " of ", info.local_size));
  return info;
}

}  // namespace trainrt::dist
