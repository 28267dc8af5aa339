#include "compile/kernel_builder.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "codegen/emit_kernel.h"
#include "compile/host_compiler.h"
#include "compile/kernel_cache.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/sha256.h"

namespace trainrt::detail {

namespace {

constexpr const char* kLibraryVersion = "libtrainrt " TRAINRT_VERSION_STRING " codegen 1";
constexpr std::size_t kKernelsPerModule = 8;

struct Pending {
  std::int32_t node;
  std::string key;   // hex
  std::string name;  // symbol
  std::string code;  // body and wrapper, without the prelude
};

/// Kernels loaded in this process, by key (modules stay loaded for the process's life).
// NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): guards the table of loaded modules
std::mutex loaded_mutex;
std::map<std::string, CpuKernel>& loaded() {
  static std::map<std::string, CpuKernel> m;
  return m;
}

/// Where a cache directory records the identity of the compiler that built its modules
/// for this library version and ISA, so that a process without a compiler (a shipped
/// cache) can compute the same module keys.
Digest identity_record_key() { return sha256(cat(kLibraryVersion, "\ncompiler identity record\n", host_isa_flag())); }

/// The part of every key that names the target and the compiler: this process's compiler,
/// or (without one) the compiler recorded in the cache; empty when neither exists.
std::string identity_of(const HostCompiler* cc, KernelCache& cache) {
  if (cc) {
    std::string id = cat(kLibraryVersion, "\ntarget cpu ", host_isa_flag(), "\n", cc->identity());
    auto recorded = cache.find(identity_record_key(), CacheKind::program);
    if (!recorded || *recorded != id) cache.put(identity_record_key(), CacheKind::program, id, 0.0);
    return id;
  }
  auto recorded = cache.find(identity_record_key(), CacheKind::program);
  return recorded ? *recorded : std::string();
}

}  // namespace

std::optional<std::vector<CpuKernel>> build_cpu_kernels(const GraphImpl& graph, KernelCache& cache,
                                                        KernelBuildReport& report) {
  const auto start = std::chrono::steady_clock::now();
  const HostCompiler* cc = HostCompiler::get();
  const std::string identity = identity_of(cc, cache);
  std::vector<CpuKernel> out(static_cast<std::size_t>(graph.size()));
  std::vector<Pending> missing;
  for (std::int32_t i = 0; i < graph.size(); ++i) {
    const Node& n = graph.node(i);
    if (n.dead || n.kind != OpKind::Fused) continue;
    ++report.kernels;
    const KernelSpec spec = kernel_spec(graph, i);
    const std::string generic = cpu_kernel_code(spec, "TRK_KERNEL");
    const std::string key = sha256(cat(identity, "\n", generic)).hex();
    const std::string name = "trk_" + key.substr(0, 24);
    {
      std::lock_guard<std::mutex> lock(loaded_mutex);
      auto it = loaded().find(key);
      if (it != loaded().end()) {
        out[static_cast<std::size_t>(i)] = it->second;
        ++report.loaded;
        continue;
      }
    }
    auto dup = std::find_if(missing.begin(), missing.end(), [&](const Pending& p) { return p.key == key; });
    if (dup != missing.end()) {
      missing.push_back({i, key, name, {}});
      continue;
    }
    missing.push_back({i, key, name, cpu_kernel_code(spec, name)});
  }

  // Modules: the distinct missing kernels, sorted by key, in chunks.
  std::vector<const Pending*> distinct;
  for (const Pending& p : missing)
    if (!p.code.empty()) distinct.push_back(&p);
  std::sort(distinct.begin(), distinct.end(), [](const Pending* a, const Pending* b) { return a->key < b->key; });
  const std::size_t modules = (distinct.size() + kKernelsPerModule - 1) / kKernelsPerModule;
  struct Module {
    std::vector<const Pending*> kernels;
    std::string source, key;
    std::shared_ptr<const std::string> payload;
    std::shared_ptr<LoadedModule> loaded;
  };
  std::vector<Module> mods(modules);
  for (std::size_t i = 0; i < distinct.size(); ++i) mods[i % modules].kernels.push_back(distinct[i]);
  const char* dump = std::getenv("TRAINRT_DUMP_KERNELS");
  for (Module& m : mods) {
    m.source = cpu_prelude();
    for (const Pending* p : m.kernels) m.source += p->code;
    m.key = sha256(identity + "\n" + m.source).hex();
    report.module_keys.push_back(m.key);
    if (dump && *dump) {
      std::ofstream f(std::filesystem::path(dump) / ("trainrt_module_" + m.key.substr(0, 16) + ".cpp"));
      f << m.source;
    }
  }
  report.modules = modules;

  // Look up every module; without a compiler, a miss ends the build.
  bool all_found = true;
  for (Module& m : mods) {
    m.payload = cache.find(*Digest::from_hex(m.key), CacheKind::cpu_module);
    if (!m.payload) all_found = false;
  }
  if (!all_found && cc == nullptr) return std::nullopt;

  const std::uint64_t compiles_before = cache.stats().compiles;
  std::exception_ptr error;
  std::mutex error_mutex;
  tbb::parallel_for(std::size_t{0}, mods.size(), [&](std::size_t i) {
    Module& m = mods[i];
    try {
      if (!m.payload) {
        m.payload = cache.get_or_make(*Digest::from_hex(m.key), CacheKind::cpu_module,
                                      [&] { return cc->compile(m.source, "trainrt_module_" + m.key.substr(0, 16)); });
      }
      m.loaded = LoadedModule::load(*m.payload, "trainrt_module_" + m.key.substr(0, 16));
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
  report.modules_compiled = static_cast<std::size_t>(cache.stats().compiles - compiles_before);

  std::lock_guard<std::mutex> lock(loaded_mutex);
  for (const Module& m : mods)
    for (const Pending* p : m.kernels) {
      CpuKernel k{m.loaded, reinterpret_cast<CpuKernelFn>(m.loaded->symbol(p->name)), p->name};
      loaded().emplace(p->key, k);
    }
  for (const Pending& p : missing) out[static_cast<std::size_t>(p.node)] = loaded().at(p.key);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log().debug("kernels: {} fused nodes, {} already loaded, {} modules in {:.3f} s", report.kernels, report.loaded,
              report.modules, report.seconds);
  return out;
}

}  // namespace trainrt::detail
