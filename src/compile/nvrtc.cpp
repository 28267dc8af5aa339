// compile/nvrtc.cpp — NVRTC through dlopen: finding the library, its builtins and the CUDA
// headers; compiling one translation unit to CUBIN or PTX; reading a CUBIN's SM.
#include "compile/nvrtc.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/dynamic_library.h"
#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {

namespace {

namespace fs = std::filesystem;

// NVRTC's C API as in nvrtc.h, declared here so that the build needs no CUDA header:
// nvrtcResult is an int-sized enum (0 = NVRTC_SUCCESS), nvrtcProgram an opaque pointer.
using ProgramHandle = void*;
using GetErrorStringFn = const char* (*)(int);
using VersionFn = int (*)(int*, int*);
using GetNumSupportedArchsFn = int (*)(int*);
using GetSupportedArchsFn = int (*)(int*);
using CreateProgramFn = int (*)(ProgramHandle*, const char*, const char*, int, const char* const*, const char* const*);
using DestroyProgramFn = int (*)(ProgramHandle*);
using CompileProgramFn = int (*)(ProgramHandle, int, const char* const*);
using GetSizeFn = int (*)(ProgramHandle, std::size_t*);
using GetBytesFn = int (*)(ProgramHandle, char*);

// The nvrtcResult codes this file tells apart.
constexpr int kSuccess = 0;
constexpr int kInvalidOption = 5;
constexpr int kBuiltinOperationFailure = 7;

std::string join_archs(const std::vector<int>& archs) {
  std::vector<std::string> parts;
  parts.reserve(archs.size());
  for (int a : archs) parts.push_back(std::to_string(a));
  return join(parts, " ");
}

// NVRTC ends its log and PTX with a NUL and its log with a newline; neither belongs in a string.
std::string trim_end(std::string s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// The libnvrtc.so* files of `dir`: versioned names (libnvrtc.so.13, libnvrtc.so.12.4) newest
// first, then the unversioned libnvrtc.so. Anything else (libnvrtc-builtins, libnvrtc.alt,
// libnvrtc_static.a) is not a candidate.
std::vector<std::string> libraries_in(const std::string& dir) {
  constexpr std::string_view kStem = "libnvrtc.so";
  std::vector<std::pair<std::vector<int>, std::string>> versioned;
  std::vector<std::string> plain;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (file.rfind(kStem, 0) != 0) continue;
    const std::string rest = file.substr(kStem.size());
    if (rest.empty()) {
      plain.push_back(it->path().string());
      continue;
    }
    // ".13" or ".12.4": dot-separated numbers.
    std::vector<int> numbers;
    bool ok = rest.size() > 1;
    for (std::size_t i = 0; ok && i < rest.size();) {
      if (rest[i] != '.' || i + 1 >= rest.size() || !std::isdigit(static_cast<unsigned char>(rest[i + 1]))) {
        ok = false;
        break;
      }
      std::size_t j = i + 1;
      int n = 0;
      while (j < rest.size() && std::isdigit(static_cast<unsigned char>(rest[j]))) n = n * 10 + (rest[j++] - '0');
      numbers.push_back(n);
      i = j;
    }
    if (ok) versioned.emplace_back(numbers, it->path().string());
  }
  std::sort(versioned.begin(), versioned.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  out.reserve(versioned.size());
  for (const auto& v : versioned) out.push_back(v.second);
  out.insert(out.end(), plain.begin(), plain.end());
  return out;
}

// The CUDA version of the headers in `dir` ("13000" from "#define CUDA_VERSION 13000" in
// cuda.h, else CUDART_VERSION of cuda_runtime_api.h); empty when neither says.
std::string header_version(const std::string& dir) {
  const std::pair<const char*, const char*> probes[] = {{"cuda.h", "#define CUDA_VERSION "},
                                                        {"cuda_runtime_api.h", "#define CUDART_VERSION "}};
  for (const auto& [file, macro] : probes) {
    std::ifstream in(fs::path(dir) / file);
    for (std::string line; in && std::getline(in, line);) {
      if (line.rfind(macro, 0) != 0) continue;
      std::string value = line.substr(std::strlen(macro));
      value.erase(0, value.find_first_not_of(' '));
      value = value.substr(0, value.find_first_of(" \t/"));
      if (!value.empty()) return value;
    }
  }
  return {};
}

// "V13.0.88, CL-36424714" from the comment block that opens NVRTC's PTX ("// Cuda
// compilation tools, release 13.0, V13.0.88" and "// Compiler Build ID: CL-36424714");
// nvrtcVersion() alone does not tell patch releases apart.
std::string compiler_build(const std::string& ptx) {
  std::vector<std::string> found;
  std::size_t pos = 0;
  while (pos < ptx.size() && ptx.compare(pos, 2, "//") == 0) {
    const std::size_t eol = std::min(ptx.find('\n', pos), ptx.size());
    const std::string line = ptx.substr(pos, eol - pos);
    if (const auto v = line.find(", V"); v != std::string::npos && line.find("release") != std::string::npos)
      found.insert(found.begin(), trim_end(line.substr(v + 2)));
    if (const auto id = line.find("Build ID: "); id != std::string::npos)
      found.push_back(trim_end(line.substr(id + 10)));
    pos = eol + 1;
  }
  return join(found, ", ");
}

}  // namespace

// NVRTC's entry points in one loaded library.
struct Nvrtc::Api {
  void* handle = nullptr;
  GetErrorStringFn get_error_string = nullptr;
  VersionFn version = nullptr;
  GetNumSupportedArchsFn get_num_supported_archs = nullptr;
  GetSupportedArchsFn get_supported_archs = nullptr;
  CreateProgramFn create_program = nullptr;
  DestroyProgramFn destroy_program = nullptr;
  CompileProgramFn compile_program = nullptr;
  GetSizeFn get_program_log_size = nullptr;
  GetBytesFn get_program_log = nullptr;
  GetSizeFn get_ptx_size = nullptr;
  GetBytesFn get_ptx = nullptr;
  GetSizeFn get_cubin_size = nullptr;
  GetBytesFn get_cubin = nullptr;

  // "NVRTC_ERROR_COMPILATION (6)".
  std::string describe(int status) const {
    const char* text = get_error_string ? get_error_string(status) : nullptr;
    return cat(text ? text : "NVRTC error", " (", status, ")");
  }
};

namespace {

// Destroys an nvrtcProgram on every way out of a compile.
class ProgramGuard {
 public:
  ProgramGuard(DestroyProgramFn destroy, ProgramHandle program) : destroy_(destroy), program_(program) {}
  ~ProgramGuard() {
    if (program_ != nullptr) destroy_(&program_);
  }
  ProgramGuard(const ProgramGuard&) = delete;
  ProgramGuard& operator=(const ProgramGuard&) = delete;

 private:
  DestroyProgramFn destroy_;
  ProgramHandle program_;
};

// NVRTC 13 dlopens "libnvrtc-builtins.so.<major>.<minor>" (".alt" in the name for
// libnvrtc.alt) by bare name, so the loader looks on its own path and never beside libnvrtc.
// Loading the copy beside it first makes NVRTC's lookup find that one by soname.
void preload_builtins(const std::string& library, int major, int minor) {
  const fs::path lib(library);
  const bool alt = lib.filename().string().find(".alt.") != std::string::npos;
  const fs::path builtins = lib.parent_path() / cat("libnvrtc-builtins", alt ? ".alt" : "", ".so.", major, ".", minor);
  std::error_code ec;
  if (!fs::exists(builtins, ec)) {
    log().debug("nvrtc: no {} beside {}; NVRTC looks for it on the loader's path", builtins.filename().string(),
                library);
    return;
  }
  if (dlopen(builtins.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr) {
    const char* err = dlerror();
    log().warn("nvrtc: could not load {} ({}); NVRTC looks for it on the loader's path", builtins.string(),
               err ? err : "unknown error");
    return;
  }
  log().debug("nvrtc: loaded {}", builtins.string());
}

}  // namespace

Nvrtc::~Nvrtc() = default;

std::vector<std::string> Nvrtc::search_order() {
  std::vector<std::string> out;
  if (const std::string path = env_string("TRAINRT_NVRTC"); !path.empty()) out.push_back(path);
  for (const char* name : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}) out.emplace_back(name);
  const std::string cuda_home = env_string("CUDA_HOME");
  for (const std::string& dir :
       {std::string("/usr/local/cuda/lib64"), cuda_home.empty() ? cuda_home : cuda_home + "/lib64"}) {
    if (dir.empty()) continue;
    for (std::string& file : libraries_in(dir))
      if (std::find(out.begin(), out.end(), file) == out.end()) out.push_back(std::move(file));
  }
  return out;
}

std::vector<std::string> Nvrtc::header_search_order(const std::string& library_path) {
  std::vector<std::string> out;
  auto add = [&](const fs::path& dir) {
    if (dir.empty()) return;
    const std::string s = dir.lexically_normal().string();
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  if (const std::string dir = env_string("TRAINRT_CUDA_INCLUDE"); !dir.empty()) add(dir);
  const fs::path lib_dir = fs::path(library_path).parent_path();
  if (!lib_dir.empty()) {
    add(lib_dir / ".." / "include");
    add(lib_dir / ".." / ".." / "cuda_runtime" / "include");
  }
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const std::string dir = env_string(var); !dir.empty()) add(fs::path(dir) / "include");
  add("/usr/local/cuda/include");
  add("/usr/include");
  return out;
}

std::unique_ptr<Nvrtc> Nvrtc::open(const std::string& library,
                                   const std::optional<std::vector<std::string>>& header_dirs) {
  void* handle = open_library(library, "NVRTC");
  std::unique_ptr<Nvrtc> nv(new Nvrtc());
  nv->api_ = std::make_unique<Api>();
  Api& api = *nv->api_;
  api.handle = handle;
  nv->path_ = loaded_path(handle, library);

  std::vector<std::string> missing;
  bind_symbol(handle, "nvrtcGetErrorString", api.get_error_string, missing);
  bind_symbol(handle, "nvrtcVersion", api.version, missing);
  bind_symbol(handle, "nvrtcGetNumSupportedArchs", api.get_num_supported_archs, missing);
  bind_symbol(handle, "nvrtcGetSupportedArchs", api.get_supported_archs, missing);
  bind_symbol(handle, "nvrtcCreateProgram", api.create_program, missing);
  bind_symbol(handle, "nvrtcDestroyProgram", api.destroy_program, missing);
  bind_symbol(handle, "nvrtcCompileProgram", api.compile_program, missing);
  bind_symbol(handle, "nvrtcGetProgramLogSize", api.get_program_log_size, missing);
  bind_symbol(handle, "nvrtcGetProgramLog", api.get_program_log, missing);
  bind_symbol(handle, "nvrtcGetPTXSize", api.get_ptx_size, missing);
  bind_symbol(handle, "nvrtcGetPTX", api.get_ptx, missing);
  bind_symbol(handle, "nvrtcGetCUBINSize", api.get_cubin_size, missing);
  bind_symbol(handle, "nvrtcGetCUBIN", api.get_cubin, missing);
  if (!missing.empty())
    fail(ErrorKind::Unsupported,
         cat(nv->path_, " is not a usable NVRTC (NVRTC 11.2 or newer is needed): it lacks ", join(missing, ", ")));

  int major = 0, minor = 0;
  if (const int st = api.version(&major, &minor); st != kSuccess)
    fail(ErrorKind::Unsupported, cat("nvrtcVersion failed in ", nv->path_, ": ", api.describe(st)));
  nv->version_ = major * 1000 + minor * 10;
  preload_builtins(nv->path_, major, minor);

  int count = 0;
  if (const int st = api.get_num_supported_archs(&count); st != kSuccess || count <= 0)
    fail(ErrorKind::Unsupported, cat("nvrtcGetNumSupportedArchs failed in ", nv->path_, ": ", api.describe(st)));
  nv->archs_.resize(static_cast<std::size_t>(count));
  if (const int st = api.get_supported_archs(nv->archs_.data()); st != kSuccess)
    fail(ErrorKind::Unsupported, cat("nvrtcGetSupportedArchs failed in ", nv->path_, ": ", api.describe(st)));
  std::sort(nv->archs_.begin(), nv->archs_.end());

  nv->header_dirs_ = header_dirs ? *header_dirs : header_search_order(nv->path_);
  for (const std::string& dir : nv->header_dirs_) {
    std::error_code ec;
    if (fs::exists(fs::path(dir) / "cuda_fp16.h", ec) && fs::exists(fs::path(dir) / "cuda_bf16.h", ec)) {
      nv->include_dir_ = dir;
      break;
    }
  }
  std::string headers = "none";
  if (!nv->include_dir_.empty()) {
    headers = header_version(nv->include_dir_);
    if (headers.empty()) headers = "unknown";
    // CUDA_VERSION is major*1000 + minor*10, like version_.
    else if (std::atoi(headers.c_str()) / 1000 != major)
      log().warn("nvrtc: NVRTC {}.{} ({}) uses the CUDA {} headers of {}", major, minor, nv->path_, headers,
                 nv->include_dir_);
  } else {
    log().warn(
        "nvrtc: no CUDA headers (cuda_fp16.h, cuda_bf16.h) for {} in: {}; kernels that include them will not compile",
        nv->path_, join(nv->header_dirs_, ", "));
  }

  // The probe: a library that loads but cannot compile (its builtins missing, say) is
  // refused here rather than at the first kernel; its PTX names the exact compiler build.
  std::string probe_log;
  std::string ptx;
  try {
    const std::string target = cat("compute_", nv->archs_.front());
    ptx = nv->run("extern \"C\" __global__ void trainrt_nvrtc_probe() {}\n", "trainrt_nvrtc_probe.cu", target,
                  {"--gpu-architecture=" + target}, false, probe_log);
  } catch (const Error& e) {
    fail(ErrorKind::Unsupported,
         cat("NVRTC ", major, ".", minor, " at ", nv->path_, " loads but cannot compile: ", e.what()));
  }
  const std::string build = compiler_build(ptx);
  nv->version_string_ =
      cat("nvrtc ", major, ".", minor, build.empty() ? "" : cat(" (", build, ")"), "; headers ", headers);
  return nv;
}

namespace {

struct Loaded {
  std::unique_ptr<Nvrtc> nvrtc;
  std::string reason;
};

Loaded load_first() {
  Loaded out;
  std::vector<std::string> tried;
  // An explicit TRAINRT_NVRTC that does not load is worth a warning even when another does.
  const bool forced = !env_string("TRAINRT_NVRTC").empty();
  for (const std::string& candidate : Nvrtc::search_order()) {
    try {
      out.nvrtc = Nvrtc::open(candidate);
      log().info("nvrtc: loaded {} from {}", out.nvrtc->version_string(), out.nvrtc->library_path());
      if (forced && !tried.empty())
        log().warn("nvrtc: TRAINRT_NVRTC is not usable ({}); using {}", tried.front(), out.nvrtc->library_path());
      return out;
    } catch (const Error& e) {
      tried.push_back(cat(candidate, ": ", e.what()));
    }
  }
  const std::string cuda_home = env_string("CUDA_HOME");
  out.reason =
      cat("NVRTC could not be loaded (set TRAINRT_NVRTC to the path of libnvrtc.so, or CUDA_HOME); tried:\n  ",
          join(tried, "\n  "), "\n  (libnvrtc.so* files are looked for in /usr/local/cuda/lib64 and ",
          cuda_home.empty() ? std::string("$CUDA_HOME/lib64, CUDA_HOME being unset") : cuda_home + "/lib64", ")");
  log().debug("nvrtc: {}", out.reason);
  return out;
}

const Loaded& loaded() {
  static const Loaded l = load_first();
  return l;
}

}  // namespace

Nvrtc* Nvrtc::get() { return loaded().nvrtc.get(); }

const std::string& Nvrtc::unavailable_reason() { return loaded().reason; }

std::string Nvrtc::run(const std::string& source, const std::string& label, const std::string& target,
                       const std::vector<std::string>& options, bool cubin, std::string& log_out) const {
  const Api& api = *api_;
  ProgramHandle program = nullptr;
  if (const int st = api.create_program(&program, source.c_str(), label.c_str(), 0, nullptr, nullptr); st != kSuccess)
    fail(ErrorKind::Runtime, cat("NVRTC could not create a program for ", label, ": ", api.describe(st)));
  const ProgramGuard guard(api.destroy_program, program);

  std::vector<const char*> argv;
  argv.reserve(argv.size() + options.size());
  for (const std::string& o : options) argv.push_back(o.c_str());
  const int status = api.compile_program(program, static_cast<int>(argv.size()), argv.data());

  std::size_t log_size = 0;
  if (api.get_program_log_size(program, &log_size) == kSuccess && log_size > 1) {
    std::string text(log_size, '\0');
    if (api.get_program_log(program, text.data()) == kSuccess) log_out = trim_end(std::move(text));
  }
  if (status != kSuccess) {
    const std::string head =
        cat("NVRTC ", version_ / 1000, ".", version_ % 1000 / 10, " could not compile ", label, " for ", target, " (",
            api.describe(status), ") with options [", join(options, " "), "]");
    std::string hint;
    if (include_dir_.empty() && log_out.find("could not open source file \"cuda_") != std::string::npos)
      hint =
          cat("\nNVRTC has no built-in cuda_fp16.h/cuda_bf16.h: they come from the CUDA toolkit's include "
              "directory, and none was found (looked in: ",
              join(header_dirs_, ", "), "); install the toolkit headers or set TRAINRT_CUDA_INCLUDE or CUDA_HOME");
    if (status == kBuiltinOperationFailure)
      hint = cat("\nNVRTC could not use its builtins library: libnvrtc-builtins.so must be beside ", path_,
                 " or on the loader's path (LD_LIBRARY_PATH)");
    const ErrorKind kind = status == kInvalidOption ? ErrorKind::InvalidArgument : ErrorKind::Runtime;
    fail(kind, cat(head, log_out.empty() ? std::string() : cat(":\n", log_out), hint));
  }

  std::size_t size = 0;
  const int size_status = cubin ? api.get_cubin_size(program, &size) : api.get_ptx_size(program, &size);
  if (size_status != kSuccess || size == 0)
    fail(ErrorKind::Runtime,
         cat("NVRTC compiled ", label, " but returned no ", cubin ? "CUBIN" : "PTX", ": ", api.describe(size_status)));
  std::string image(size, '\0');
  const int get_status = cubin ? api.get_cubin(program, image.data()) : api.get_ptx(program, image.data());
  if (get_status != kSuccess)
    fail(ErrorKind::Runtime,
         cat("NVRTC could not return the ", cubin ? "CUBIN" : "PTX", " of ", label, ": ", api.describe(get_status)));
  if (!cubin && !image.empty() && image.back() == '\0') image.pop_back();
  return image;
}

NvrtcResult Nvrtc::compile(const std::string& source, const std::string& name, const NvrtcOptions& options) const {
  const std::string label = name.empty() ? std::string("<unnamed CUDA source>") : name;
  if (options.arch <= 0)
    fail(ErrorKind::InvalidArgument,
         cat("NVRTC target for ", label, ": arch must be a compute capability as major*10+minor (90 for sm_90), got ",
             options.arch));
  if (source.find('\0') != std::string::npos)
    fail(ErrorKind::InvalidArgument, cat("CUDA source ", label, " holds a NUL byte at offset ", source.find('\0'),
                                         " (NVRTC reads a C string and would drop the rest)"));

  // The target: a CUBIN where NVRTC knows the architecture; for a newer one, PTX for the
  // newest architecture NVRTC knows below it (the driver compiles PTX for compute_XX for any
  // device of capability XX or later); nothing for an architecture older than NVRTC's oldest.
  NvrtcResult result;
  const bool known = std::binary_search(archs_.begin(), archs_.end(), options.arch);
  if (known) {
    result.arch = options.arch;
    result.is_cubin = !options.force_ptx;
  } else {
    const auto below = std::upper_bound(archs_.begin(), archs_.end(), options.arch);
    const std::string supported =
        cat("NVRTC ", version_ / 1000, ".", version_ % 1000 / 10, " supports ", join_archs(archs_));
    if (below == archs_.begin())
      fail(ErrorKind::Unsupported, cat("cannot compile ", label, " for sm_", options.arch, ": ", supported,
                                       " and no PTX of theirs runs on an older architecture"));
    if (!options.ptx_fallback)
      fail(ErrorKind::Unsupported, cat("cannot compile ", label, " to a CUBIN for sm_", options.arch, ": ", supported,
                                       " (ptx_fallback would emit PTX for compute_", *(below - 1), ")"));
    result.arch = *(below - 1);
    result.is_cubin = false;
  }

  const std::string target = cat(result.is_cubin ? "sm_" : "compute_", result.arch);
  std::vector<std::string> argv = {"--gpu-architecture=" + target};
  bool sets_std = false;
  for (const std::string& e : options.extra) {
    if (e.rfind("-arch", 0) == 0 || e.rfind("--gpu-architecture", 0) == 0)
      fail(ErrorKind::InvalidArgument, cat("NVRTC options for ", label, ": '", e,
                                           "' sets the architecture; set NvrtcOptions::arch (and force_ptx) instead"));
    if (e.rfind("-std", 0) == 0 || e.rfind("--std", 0) == 0) sets_std = true;
  }
  // NVRTC 12.0 and later accept C++20.
  if (!sets_std) argv.emplace_back(version_ >= 12000 ? "-std=c++20" : "-std=c++17");
  argv.emplace_back("-default-device");
  if (!include_dir_.empty()) argv.push_back("-I" + include_dir_);
  argv.insert(argv.end(), options.extra.begin(), options.extra.end());

  const auto start = std::chrono::steady_clock::now();
  result.image = run(source, label, target, argv, result.is_cubin, result.log);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log().debug("nvrtc: {} -> {} for {} ({} bytes) in {:.3f} s{}{}", label, result.is_cubin ? "CUBIN" : "PTX", target,
              result.image.size(), result.seconds, result.log.empty() ? "" : "; log:\n", result.log);
  return result;
}

int cubin_arch(std::string_view image) {
  // ELF64 header: e_ident[16] (magic, class at 4, data at 5, ABI version at 8), e_type at
  // 16, e_machine at 18, e_flags at 48.
  constexpr std::size_t kHeaderSize = 64;
  constexpr std::uint16_t kMachineCuda = 190;  // EM_CUDA
  if (image.size() < kHeaderSize || image.substr(0, 4) != "\177ELF") return 0;
  if (image[4] != 2 || image[5] != 1) return 0;  // ELFCLASS64, little-endian
  const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(image[i])); };
  const std::uint32_t machine = byte(18) | byte(19) << 8;
  if (machine != kMachineCuda) return 0;
  const std::uint32_t flags = byte(48) | byte(49) << 8 | byte(50) << 16 | byte(51) << 24;
  // ELFABIVERSION_CUDA_V1 (7) keeps the SM in EF_CUDA_SM (bits 0-7); V2 (8, CUDA 13 and the
  // Blackwell-era toolkits) moved it to EF_CUDA_SM_MASK (bits 8-15).
  const std::uint32_t abi_version = byte(8);
  return static_cast<int>(abi_version >= 8 ? (flags >> 8) & 0xff : flags & 0xff);
}

}  // namespace trainrt::detail
