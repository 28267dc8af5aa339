// compile/nvrtc.h — the NVRTC driver: CUDA C++ source to CUBIN (or PTX) at run time.
//
// NVRTC is loaded with dlopen on first use (DESIGN decisions 2 and 11): the library links no
// CUDA library and needs no CUDA header to build. Without NVRTC, get() returns nullptr and
// unavailable_reason() says what was tried; that is an ordinary condition, not an error.
//
// Where things come from (see search_order() and header_search_order()):
//   - libnvrtc: $TRAINRT_NVRTC, then the loader's search for libnvrtc.so.13, .so.12, .so,
//     then /usr/local/cuda/lib64/libnvrtc.so*, then $CUDA_HOME/lib64/libnvrtc.so*.
//   - libnvrtc-builtins.so.<major>.<minor>: NVRTC 13 opens it by its bare name on the
//     loader's path, never next to itself, so a libnvrtc outside that path would fail every
//     compile; open() therefore loads the builtins next to libnvrtc first (by full path),
//     and NVRTC's own lookup then finds that copy by its soname.
//   - cuda_fp16.h / cuda_bf16.h: NVRTC 13.0 does NOT provide them as built-in headers
//     ("could not open source file "cuda_fp16.h" (no directories in search list)"), so
//     every compile passes -I<the CUDA include directory next to libnvrtc>.
//
// Compile options, and why (NvrtcOptions::extra is appended after them):
//   --gpu-architecture=sm_XX   a CUBIN for the device present; compute_XX for PTX
//   -std=c++20                 the emitter's language (NVRTC 13's default is C++17); an -std
//                              in `extra` replaces it
//   -default-device            the emitted element functions are device-agnostic C++ with no
//                              __device__ (decision 2): everything not __global__/__host__ is
//                              compiled for the device
//   -I<CUDA include dir>       cuda_fp16.h, cuda_bf16.h (above)
// Left out on purpose: --use_fast_math (approximate exp/div/sqrt would part GPU from CPU
// results), --restrict (the memory plan runs ops in place, so kernel pointers may alias),
// -G/-lineinfo (release kernels), --extra-device-vectorization (it changed no instruction
// of grid-stride f16/f32 elementwise kernels here: the emitter vectorizes loads itself), and
// -pch (it writes files under /tmp). NVRTC's defaults stay: -dopt on, --fmad=true.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trainrt::detail {

/// What to compile for.
struct NvrtcOptions {
  int arch = 90;                   // compute capability major*10+minor (80 = sm_80, 90 = sm_90)
  bool ptx_fallback = true;        // if NVRTC cannot emit a CUBIN for `arch`, emit PTX (see compile())
  bool force_ptx = false;          // emit PTX even where a CUBIN is possible (a portable image)
  std::vector<std::string> extra;  // extra options ("-use_fast_math" etc.), after the defaults
};

/// One compiled translation unit.
struct NvrtcResult {
  std::string image;  // CUBIN (ELF) bytes, or PTX text (no trailing NUL)
  bool is_cubin = true;
  int arch = 0;        // what the image targets: sm_<arch> for a CUBIN, compute_<arch> for PTX
  std::string log;     // the compiler log (warnings); empty when there were none
  double seconds = 0;  // wall time of the compile
};

/// A loaded NVRTC library. Immutable once loaded, so every member is safe to call from
/// several threads at once; independent programs compile in parallel.
class Nvrtc {
 public:
  /// The process-wide NVRTC, loaded on first call from the first usable entry of
  /// search_order(); nullptr when there is none (see unavailable_reason()). Never throws.
  static Nvrtc* get();
  /// Why get() returned nullptr: every place tried and what went wrong there; empty when
  /// NVRTC is loaded.
  static const std::string& unavailable_reason();

  /// The libraries get() tries, in order: $TRAINRT_NVRTC (a path) when set, the bare names
  /// libnvrtc.so.13, libnvrtc.so.12 and libnvrtc.so (the loader's search), then the
  /// libnvrtc.so* files of /usr/local/cuda/lib64 and of $CUDA_HOME/lib64, newest version
  /// first. Reads the environment on each call; never throws.
  static std::vector<std::string> search_order();
  /// The directories open() looks in for cuda_fp16.h and cuda_bf16.h, for the library at
  /// `library_path`, in order: $TRAINRT_CUDA_INCLUDE when set, <lib>/../include (toolkit and
  /// CUDA 13 wheel layouts), <lib>/../../cuda_runtime/include (CUDA 12 wheels),
  /// $CUDA_HOME/include, $CUDA_PATH/include, /usr/local/cuda/include, /usr/include. Never throws.
  static std::vector<std::string> header_search_order(const std::string& library_path);

  /// Loads NVRTC from `library` (a path, or a bare file name for the loader's search), loads
  /// its builtins library from the same directory when it is there, finds the CUDA headers
  /// in `header_dirs` (default: header_search_order() of the loaded file) and compiles an
  /// empty probe kernel, so a library that loads but cannot compile is refused here.
  /// Throws Error(NotFound) when dlopen fails (with the loader's message), and
  /// Error(Unsupported) when the library lacks an NVRTC entry point or fails the probe
  /// (with NVRTC's message and log). A loaded library stays loaded for the life of the
  /// process (NVRTC is not made to be unloaded).
  static std::unique_ptr<Nvrtc> open(const std::string& library,
                                     const std::optional<std::vector<std::string>>& header_dirs = std::nullopt);

  ~Nvrtc();
  Nvrtc(const Nvrtc&) = delete;
  Nvrtc& operator=(const Nvrtc&) = delete;

  /// NVRTC's version as major*1000 + minor*10 (13000 for 13.0).
  int version() const { return version_; }
  /// The real architectures NVRTC can emit CUBINs for (nvrtcGetSupportedArchs), ascending,
  /// as major*10+minor.
  std::vector<int> supported_archs() const { return archs_; }
  /// A string that changes whenever NVRTC's output may change, for cache keys: version, the
  /// toolkit release and compiler build read from a probe compile, and the version of the
  /// CUDA headers used ("nvrtc 13.0 (V13.0.88, CL-36424714); headers 13000").
  std::string version_string() const { return version_string_; }
  /// The file the library was loaded from.
  const std::string& library_path() const { return path_; }
  /// The directory passed as -I for cuda_fp16.h / cuda_bf16.h; empty when none was found.
  const std::string& include_dir() const { return include_dir_; }

  /// Compiles `source` (one translation unit; `name`, e.g. "fused_3.cu", names it in NVRTC's
  /// log and in errors). The target: sm_<arch> CUBIN when NVRTC supports `arch` (PTX for
  /// compute_<arch> with force_ptx); for an architecture newer than NVRTC knows, with
  /// ptx_fallback, PTX for the newest supported architecture below it, which the driver
  /// compiles for the device (PTX runs on any later architecture). Thread-safe.
  /// Throws Error(InvalidArgument) for an arch <= 0, a source holding a NUL byte, an
  /// architecture option in `extra` (set `arch` instead) or an option NVRTC rejects;
  /// Error(Unsupported) for an architecture NVRTC cannot serve (older than its oldest, or
  /// newer without ptx_fallback), listing the supported ones; Error(Runtime) when the source
  /// does not compile, with `name`, the target, the options and NVRTC's log (and, for a
  /// missing cuda_fp16.h/cuda_bf16.h, where the headers were looked for).
  NvrtcResult compile(const std::string& source, const std::string& name, const NvrtcOptions& options) const;

 private:
  struct Api;  // NVRTC's entry points, declared in nvrtc.cpp without the CUDA headers
  Nvrtc() = default;
  // Compiles with exactly `options` and returns the CUBIN or PTX; `target` ("sm_90") and
  // `label` name it in errors; the log goes to `log`. Throws as compile() does.
  std::string run(const std::string& source, const std::string& label, const std::string& target,
                  const std::vector<std::string>& options, bool cubin, std::string& log) const;

  std::unique_ptr<Api> api_;
  std::string path_;
  int version_ = 0;
  std::vector<int> archs_;
  std::string include_dir_;
  std::vector<std::string> header_dirs_;  // where include_dir_ was looked for
  std::string version_string_;
};

/// The SM a CUBIN was built for (90 for sm_90), read from its ELF header; 0 when `image` is
/// not a CUDA ELF (too short, wrong magic, class or machine). Reads both the e_flags layout
/// of CUDA 12 (ELF ABI version 7: SM in bits 0-7) and of CUDA 13 (ABI 8: bits 8-15).
int cubin_arch(std::string_view image);

}  // namespace trainrt::detail
