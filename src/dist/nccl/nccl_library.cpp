// dist/nccl/nccl_library.cpp — finding, loading and checking libnccl.
#include "dist/nccl/nccl_library.h"

#include <map>
#include <mutex>

#include "core/dynamic_library.h"
#include "core/error.h"
#include "core/logging.h"
#include "dist/nccl/nccl_api.h"
#include "runtime/cuda/emulated/config.h"

namespace trainrt::detail {

namespace {}  // namespace

std::string nccl_version_string(int code) {
  if (code >= 10000) return cat(code / 10000, ".", code % 10000 / 100, ".", code % 100);
  return cat(code / 1000, ".", code % 1000 / 100, ".", code % 100);
}

NcclLibrary::~NcclLibrary() = default;

std::string NcclLibrary::version_string() const { return nccl_version_string(version_); }

std::string NcclLibrary::describe(int result) const {
  const char* text = api_->get_error_string ? api_->get_error_string(static_cast<ncclResult_t>(result)) : nullptr;
  return cat(text ? text : "NCCL error", " (", result, ")");
}

std::vector<std::string> NcclLibrary::search_order() {
  if (const std::string path = env_string("TRAINRT_NCCL"); !path.empty()) return {path};
  std::vector<std::string> out = {"libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2"};
  if (const std::string home = env_string("CUDA_HOME"); !home.empty()) out.push_back(home + "/lib64/libnccl.so.2");
  return out;
}

std::unique_ptr<NcclLibrary> NcclLibrary::open(const std::string& library) {
  void* handle = open_library(library, "NCCL");
  std::unique_ptr<NcclLibrary> lib(new NcclLibrary());
  lib->api_ = std::make_unique<Api>();
  Api& api = *lib->api_;
  api.handle = handle;
  lib->path_ = loaded_path(handle, library);

  std::vector<std::string> missing;
  bind_symbol(handle, "ncclGetVersion", api.get_version, missing);
  bind_symbol(handle, "ncclGetErrorString", api.get_error_string, missing);
  bind_symbol(handle, "ncclGetUniqueId", api.get_unique_id, missing);
  bind_symbol(handle, "ncclCommInitRankConfig", api.comm_init_rank_config, missing);
  bind_symbol(handle, "ncclCommGetAsyncError", api.comm_get_async_error, missing);
  bind_symbol(handle, "ncclCommFinalize", api.comm_finalize, missing);
  bind_symbol(handle, "ncclCommAbort", api.comm_abort, missing);
  bind_symbol(handle, "ncclCommDestroy", api.comm_destroy, missing);
  bind_symbol(handle, "ncclAllReduce", api.all_reduce, missing);
  bind_symbol(handle, "ncclReduceScatter", api.reduce_scatter, missing);
  bind_symbol(handle, "ncclAllGather", api.all_gather, missing);
  bind_symbol(handle, "ncclBroadcast", api.broadcast, missing);
  bind_symbol(handle, "ncclGroupStart", api.group_start, missing);
  bind_symbol(handle, "ncclGroupEnd", api.group_end, missing);
  if (!missing.empty())
    fail(ErrorKind::Unsupported, cat(lib->path_, " is not a usable NCCL (NCCL ", nccl_version_string(kMinVersion),
                                     " or newer is needed): it lacks ", join(missing, ", ")));
  std::vector<std::string> optional;
  bind_symbol(handle, "ncclGetLastError", api.get_last_error, optional);

  if (const ncclResult_t st = api.get_version(&lib->version_); st != ncclSuccess)
    fail(ErrorKind::Unsupported, cat("ncclGetVersion failed in ", lib->path_, ": ", lib->describe(st)));
  if (lib->version_ < kMinVersion)
    fail(ErrorKind::Unsupported,
         cat("NCCL ", lib->version_string(), " at ", lib->path_, " is too old: NCCL ", nccl_version_string(kMinVersion),
             " or newer is needed (non-blocking communicators, so that joining can time out)"));
  return lib;
}

const NcclLibrary& NcclLibrary::get() {
  if (emulator_config().requested) {
    static const std::unique_ptr<NcclLibrary> emulated_nccl = emulated();
    return *emulated_nccl;
  }
  // Libraries that loaded, by the name they were asked for; never erased, so references stay.
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<NcclLibrary>> libraries;
  const std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> tried;
  for (const std::string& candidate : search_order()) {
    if (const auto it = libraries.find(candidate); it != libraries.end()) return *it->second;
    try {
      auto lib = open(candidate);
      log().info("nccl: loaded NCCL {} from {}", lib->version_string(), lib->path());
      return *libraries.emplace(candidate, std::move(lib)).first->second;
    } catch (const Error& e) {
      tried.emplace_back(e.what());
    }
  }
  const bool pinned = !env_string("TRAINRT_NCCL").empty();
  fail(ErrorKind::Unsupported, cat("NCCL could not be loaded (",
                                   pinned ? "TRAINRT_NCCL names the library to use"
                                          : "set TRAINRT_NCCL to the path of libnccl.so.2, or CUDA_HOME",
                                   "); tried:\n  ", join(tried, "\n  ")));
}

}  // namespace trainrt::detail
