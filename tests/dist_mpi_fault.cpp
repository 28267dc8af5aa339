// tests/dist_mpi_fault.cpp — a job with a failing rank, for tests/dist_mpi_fault_test.sh.
//
//   dist_mpi_fault <stall|kill> <timeout_ms> [stall_ms]
//
// Every rank creates the communicator and passes a barrier. Then rank 1 fails: `stall` sleeps
// stall_ms before joining the all_reduce, `kill` raises SIGKILL. Each rank reports one line:
//   "rank R: error after T ms: <message>"         the all_reduce threw (exit 3), then
//   "rank R: later call: <message>"               what the next call (a barrier) threw
//   "rank R: all_reduce completed after T ms"     it did not (exit 0)
// The script checks the lines, the exit status and the time the job took.
//
//   dist_mpi_fault single
//
// One process that initializes MPI itself with MPI_THREAD_SINGLE: mpi_communicator() must
// refuse it ("rank -1: unexpected error: ..." naming the thread level, exit 4).
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "trainrt/dist_mpi.hpp"
#include "trainrt/errors.hpp"

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "single") {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided);
    int status = 0;
    try {
      trainrt::dist::mpi_communicator();
      std::printf("rank 0: the communicator was created\n");
    } catch (const trainrt::Error& e) {
      std::printf("rank -1: unexpected error (kind %s): %s\n", trainrt::to_string(e.kind()), e.what());
      status = 4;
    }
    MPI_Finalize();
    return status;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <stall|kill> <timeout_ms> [stall_ms] | single\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const auto timeout = std::chrono::milliseconds(std::atoll(argv[2]));
  const auto stall = std::chrono::milliseconds(argc > 3 ? std::atoll(argv[3]) : 0);
  int rank = -1;
  try {
    auto comm = trainrt::dist::mpi_communicator({.timeout = timeout});
    rank = comm->rank();
    comm->barrier();
    if (rank == 1) {
      if (mode == "kill") std::raise(SIGKILL);
      std::this_thread::sleep_for(stall);
    }
    std::vector<float> data(1000, 1.0f);
    const auto begin = std::chrono::steady_clock::now();
    try {
      comm->all_reduce(data.data(), data.size(), trainrt::f32);
    } catch (const trainrt::Error& e) {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin).count();
      std::printf("rank %d: error after %lld ms: %s\n", rank, static_cast<long long>(ms), e.what());
      try {
        comm->barrier();
        std::printf("rank %d: later call: returned\n", rank);
      } catch (const trainrt::Error& later) {
        std::printf("rank %d: later call: %s\n", rank, later.what());
      }
      std::fflush(stdout);
      return 3;
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin).count();
    std::printf("rank %d: all_reduce completed after %lld ms\n", rank, static_cast<long long>(ms));
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& e) {
    std::printf("rank %d: unexpected error: %s\n", rank, e.what());
    std::fflush(stdout);
    return 4;
  }
}
