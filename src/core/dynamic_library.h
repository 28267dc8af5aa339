// core/dynamic_library.h — small helpers for libraries opened with dlopen (CUDA is loaded, not
// linked: DESIGN decision 11). Shared by the NVRTC driver and the NCCL communicator.
#pragma once

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>

#include <string>
#include <vector>

#include "core/error.h"

namespace trainrt::detail {

/// An environment variable that names where a library is ($TRAINRT_NVRTC, $CUDA_HOME ...);
/// "" when unset.
inline std::string env_string(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once per library load
  return v ? std::string(v) : std::string();
}

/// `parts` joined by `sep`: the entry points a library lacks, the places tried.
inline std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? "" : sep) + parts[i];
  return out;
}

/// Looks `symbol` up in the dlopen handle `handle` and stores it in `fn` (a function pointer of
/// the entry point's C signature); when the library lacks it, sets `fn` to nullptr and appends
/// the name to `missing`, so that a caller can name every absent entry point at once.
/// Never throws (beyond std::bad_alloc).
template <class Fn>
void bind_symbol(void* handle, const char* symbol, Fn& fn, std::vector<std::string>& missing) {
  fn = reinterpret_cast<Fn>(dlsym(handle, symbol));
  if (fn == nullptr) missing.emplace_back(symbol);
}

/// dlopen(library, RTLD_NOW | RTLD_LOCAL), or throws NotFound "could not load <what> from
/// '<library>': <the loader's message>".
inline void* open_library(const std::string& library, const char* what) {
  dlerror();
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    fail(ErrorKind::NotFound, cat("could not load ", what, " from '", library, "': ", err ? err : "unknown error"));
  }
  return handle;
}

/// The file a dlopen handle was loaded from (what the loader's search made of a bare name
/// such as "libnccl.so.2"); `fallback` when the loader cannot say. Never throws.
inline std::string loaded_path(void* handle, const std::string& fallback) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr && *map->l_name != '\0')
    return map->l_name;
  return fallback;
}

}  // namespace trainrt::detail
