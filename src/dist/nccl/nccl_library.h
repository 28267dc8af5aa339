// dist/nccl/nccl_library.h — libnccl loaded with dlopen on first use (DESIGN decision 11).
//
// Where it comes from (search_order()): $TRAINRT_NCCL (a path) when set, and then nothing
// else, so that a deployment (or a test) pins the library it means; otherwise the loader's
// search for libnccl.so.2, then /usr/local/cuda/lib64/libnccl.so.2 and
// $CUDA_HOME/lib64/libnccl.so.2. NCCL 2.14 or newer is required: the communicator is
// created non-blocking (ncclConfig_t.blocking = 0) so that joining a job can time out.
//
// This header needs no CUDA header; the entry points themselves (NcclLibrary::Api) are in
// nccl_api.h, which includes nccl.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace trainrt::detail {

/// One loaded NCCL library (or the emulated device's stand-in for it). Immutable once loaded: every member is safe to
/// call from several threads. A loaded library stays loaded for the life of the process.
class NcclLibrary {
 public:
  struct Api;  // the entry points (nccl_api.h)

  /// The oldest NCCL accepted, as ncclGetVersion encodes it (2.14.0).
  static constexpr int kMinVersion = 21400;

  /// The NCCL of the first usable entry of search_order(), loaded on first use (a library that
  /// loaded once is reused; a failure is retried on the next call). Throws
  /// Error(Unsupported) naming every place tried and why it failed (the loader's message, a
  /// missing entry point, a version too old). Thread-safe.
  static const NcclLibrary& get();
  /// The libraries get() tries, in order (see the file comment). Reads the environment on
  /// each call; never throws.
  static std::vector<std::string> search_order();
  /// Loads NCCL from `library` (a path, or a bare name for the loader's search) and checks it:
  /// Error(NotFound) when dlopen fails (with the loader's message), Error(Unsupported) when
  /// the library lacks an NCCL entry point (named) or is older than kMinVersion.
  static std::unique_ptr<NcclLibrary> open(const std::string& library);
  /// The emulated device's NCCL (dist/nccl/emulated_nccl.cpp): in-process ranks, collectives
  /// as host functions on the emulated streams. get() returns it when TRAINRT_CUDA_DEVICE
  /// names the emulator.
  static std::unique_ptr<NcclLibrary> emulated();

  ~NcclLibrary();
  NcclLibrary(const NcclLibrary&) = delete;
  NcclLibrary& operator=(const NcclLibrary&) = delete;

  /// ncclGetVersion's code: major*10000 + minor*100 + patch (22809 for 2.28.9).
  int version() const { return version_; }
  /// "2.28.9".
  std::string version_string() const;
  /// The file the library was loaded from.
  const std::string& path() const { return path_; }
  /// The entry points.
  const Api& api() const { return *api_; }
  /// "unhandled cuda error (1)" for an ncclResult_t; never throws.
  std::string describe(int result) const;

 private:
  NcclLibrary() = default;
  std::unique_ptr<Api> api_;
  std::string path_;
  int version_ = 0;
};

/// "2.28.9" for a version code of ncclGetVersion (major*10000+minor*100+patch since 2.9,
/// major*1000+minor*100+patch before).
std::string nccl_version_string(int code);

}  // namespace trainrt::detail
