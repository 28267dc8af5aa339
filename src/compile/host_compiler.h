// compile/host_compiler.h — the host C++ compiler, run as a process to build kernel modules.
//
// The compiler is $TRAINRT_CXX when set ("none" means: there is no compiler, as in an
// embedded deployment), else the first of c++, g++, clang++ on PATH. A module is compiled
// to a shared object in a private temporary directory and returned as bytes; load_module()
// maps such bytes into the process (through an anonymous memory file, so nothing is left
// on disk). Flags: -O3, -fPIC, -shared, -ffp-contract=off (no fused multiply-adds the
// unfused kernels would not do), -fno-math-errno, and -march for the host's ISA level
// (x86-64-v4 with AVX-512, v3 with AVX2+FMA, v2 otherwise). The flags and the compiler's
// version line are part of every cache key.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace trainrt::detail {

/// The -march flag for this machine's ISA level (also without a compiler: cache lookups).
std::string host_isa_flag();

class HostCompiler {
 public:
  /// The process's compiler, found on first call; nullptr when there is none (the reason is
  /// in unavailable_reason()).
  static const HostCompiler* get();
  static const std::string& unavailable_reason();

  const std::string& path() const noexcept { return path_; }
  /// The first line of `<compiler> --version`.
  const std::string& version() const noexcept { return version_; }
  const std::vector<std::string>& flags() const noexcept { return flags_; }
  /// What a cache key must hold of this compiler: path, version and flags.
  std::string identity() const;

  /// Compiles one translation unit into a shared object and returns its bytes, in C++17
  /// (the CPU kernels' language) with flags() and then `extra` (e.g. "-std=c++20", "-I..."):
  /// a flag in `extra` that the caller adds belongs in its cache key. Throws Error(Runtime)
  /// naming `name` with the compiler's messages when it fails.
  std::string compile(const std::string& source, const std::string& name,
                      const std::vector<std::string>& extra = {}) const;

  HostCompiler(std::string path, std::string version);

 private:
  std::string path_, version_;
  std::vector<std::string> flags_;
};

/// A shared object loaded into the process; symbols stay valid while it lives.
class LoadedModule {
 public:
  /// Loads shared-object bytes. Throws Error(Runtime) when the loader refuses them.
  static std::shared_ptr<LoadedModule> load(const std::string& bytes, const std::string& name);
  ~LoadedModule();
  LoadedModule(const LoadedModule&) = delete;
  LoadedModule& operator=(const LoadedModule&) = delete;
  /// The address of `symbol`; throws Error(Internal) when the module lacks it.
  void* symbol(const std::string& symbol) const;
  /// The address of `symbol`, or nullptr when the module lacks it.
  void* find(const std::string& symbol) const;

 private:
  LoadedModule(void* handle, int fd, std::string name) : handle_(handle), fd_(fd), name_(std::move(name)) {}
  void* handle_;
  int fd_;  // the memory file the module was loaded from
  std::string name_;
};

}  // namespace trainrt::detail
