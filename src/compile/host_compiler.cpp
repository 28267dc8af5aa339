#include "compile/host_compiler.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"

// environ: declared by <unistd.h> under _GNU_SOURCE, which g++ and clang++ define for C++.

namespace trainrt::detail {

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

/// Runs argv[0] (searched on PATH) with stdout and stderr into `output`; returns the exit
/// status (-1 when it could not start).
int run_process(const std::vector<std::string>& argv, const fs::path& output) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/trainrt-cc-XXXXXX";
    if (!mkdtemp(tmpl.data()))
      fail(ErrorKind::Runtime, cat("kernel compiler: cannot create a temporary directory under ", tmpl));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    std::string p = cat(dir, "/", name);
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string isa_level_flag() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return "-march=x86-64-v4";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "-march=x86-64-v3";
  return "-march=x86-64-v2";
#else
  return "-O3";  // other architectures: the compiler's default target
#endif
}

struct Found {
  std::unique_ptr<HostCompiler> compiler;
  std::string reason;
};

Found find_compiler() {
  Found f;
  std::vector<std::string> candidates{"c++", "g++", "clang++"};
  if (const char* env = std::getenv("TRAINRT_CXX"); env && *env) {
    if (std::string(env) == "none") {
      f.reason = "TRAINRT_CXX=none";
      return f;
    }
    candidates = {env};
  }
  for (const std::string& c : candidates) {
    const std::string path = find_on_path(c);
    if (path.empty()) continue;
    try {
      TempDir dir;
      if (run_process({path, "--version"}, dir.path() / "version") != 0) continue;
      std::string version = read_file(dir.path() / "version");
      version = version.substr(0, version.find('\n'));
      f.compiler = std::make_unique<HostCompiler>(path, version);
      return f;
    } catch (const Error&) {
      continue;
    }
  }
  f.reason =
      cat("no C++ compiler found (tried ", candidates.size() == 1 ? candidates[0] : std::string("c++, g++, clang++"),
          " on PATH; set TRAINRT_CXX)");
  return f;
}

const Found& found() {
  static const Found f = find_compiler();
  return f;
}

}  // namespace

std::string host_isa_flag() {
  static const std::string flag = isa_level_flag();
  return flag;
}

HostCompiler::HostCompiler(std::string path, std::string version)
    : path_(std::move(path)), version_(std::move(version)) {
  flags_ = {"-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno", "-fno-plt", host_isa_flag(), "-w"};
}

const HostCompiler* HostCompiler::get() { return found().compiler.get(); }
const std::string& HostCompiler::unavailable_reason() { return found().reason; }

std::string HostCompiler::identity() const {
  std::string s = cat(path_, "\n", version_, "\n");
  for (const std::string& f : flags_) s += f + " ";
  return s;
}

std::string HostCompiler::compile(const std::string& source, const std::string& name,
                                  const std::vector<std::string>& extra) const {
  TempDir dir;
  const fs::path src = dir.path() / (name + ".cpp"), out = dir.path() / (name + ".so"), log = dir.path() / "log";
  {
    std::ofstream f(src, std::ios::binary);
    f << source;
    if (!f) fail(ErrorKind::Runtime, cat("kernel compiler: cannot write ", src.string()));
  }
  std::vector<std::string> argv{path_};
  argv.insert(argv.end(), flags_.begin(), flags_.end());
  argv.insert(argv.end(), {"-x", "c++", "-std=c++17"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {src.string(), "-o", out.string()});
  const int rc = run_process(argv, log);
  if (rc != 0) {
    std::string messages = read_file(log);
    if (messages.size() > 4000) messages = messages.substr(0, 4000) + "\n...";
    fail(ErrorKind::Runtime, cat("kernel compiler: ", path_, " failed on ", name, " (exit ", rc, "):\n", messages));
  }
  std::string bytes = read_file(out);
  if (bytes.empty()) fail(ErrorKind::Runtime, cat("kernel compiler: ", path_, " wrote no output for ", name));
  return bytes;
}

std::shared_ptr<LoadedModule> LoadedModule::load(const std::string& bytes, const std::string& name) {
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) fail(ErrorKind::Runtime, cat("kernel loader: memfd_create failed for ", name));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
    if (w <= 0) {
      close(fd);
      fail(ErrorKind::Runtime, cat("kernel loader: cannot write ", name, " to memory"));
    }
    done += static_cast<std::size_t>(w);
  }
  const std::string path = cat("/proc/self/fd/", fd);
  // The loader knows objects by path: the descriptor stays open while the module is loaded,
  // so no two live modules share a /proc/self/fd path.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    close(fd);
    const char* why = dlerror();
    fail(ErrorKind::Runtime, cat("kernel loader: cannot load ", name, ": ", why ? why : "unknown error"));
  }
  return std::shared_ptr<LoadedModule>(new LoadedModule(handle, fd, name));
}

LoadedModule::~LoadedModule() {
  dlclose(handle_);
  close(fd_);
}

void* LoadedModule::find(const std::string& symbol) const { return dlsym(handle_, symbol.c_str()); }

void* LoadedModule::symbol(const std::string& symbol) const {
  void* p = dlsym(handle_, symbol.c_str());
  if (!p) fail(ErrorKind::Internal, cat("kernel loader: module ", name_, " has no symbol ", symbol));
  return p;
}

}  // namespace trainrt::detail
