// dist/nccl/nccl_api.h — NCCL's entry points as resolved from a loaded libnccl. Includes
// nccl.h (from the CUDA toolkit, used for its types only): only the files compiled with
// TRAINRT_WITH_CUDA include this header.
#pragma once

#include <nccl.h>

#include "dist/nccl/nccl_library.h"

namespace trainrt::detail {

/// Each member has the exact type of the function nccl.h declares.
struct NcclLibrary::Api {
  void* handle = nullptr;
  decltype(&::ncclGetVersion) get_version = nullptr;
  decltype(&::ncclGetErrorString) get_error_string = nullptr;
  decltype(&::ncclGetLastError) get_last_error = nullptr;  // optional (NCCL 2.13+)
  decltype(&::ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&::ncclCommInitRankConfig) comm_init_rank_config = nullptr;
  decltype(&::ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&::ncclCommFinalize) comm_finalize = nullptr;
  decltype(&::ncclCommAbort) comm_abort = nullptr;
  decltype(&::ncclCommDestroy) comm_destroy = nullptr;
  decltype(&::ncclAllReduce) all_reduce = nullptr;
  decltype(&::ncclReduceScatter) reduce_scatter = nullptr;
  decltype(&::ncclAllGather) all_gather = nullptr;
  decltype(&::ncclBroadcast) broadcast = nullptr;
  decltype(&::ncclGroupStart) group_start = nullptr;
  decltype(&::ncclGroupEnd) group_end = nullptr;
};

}  // namespace trainrt::detail
