// The NVRTC driver (compile/nvrtc.h): loading NVRTC with dlopen, compiling f16/bf16 kernels to
// CUBIN for sm_80 and sm_90, the PTX fallback, errors that carry NVRTC's log, parallel
// compiles, and that libtrainrt links no CUDA library (DESIGN decision 11). NVRTC needs no
// GPU, so these run on any machine that has it; without it they are skipped, naming why.
//
// Contents: helpers (kernel sources, ELF DT_NEEDED reader) · loading · CUBIN · PTX ·
// options · errors · threads · no CUDA in DT_NEEDED.
#include "compile/nvrtc.h"

#include <elf.h>
#include <link.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include "core/error.h"
#include "runtime/cuda/gradient_stats_kernel.h"
#include "test_util.h"

namespace trainrt {
namespace {

using detail::Nvrtc;
using detail::NvrtcOptions;
using detail::NvrtcResult;

// A grid-stride elementwise kernel as the code generator emits them: f16 and bf16 loads,
// float accumulation, f32 and bf16 stores. `tag` makes each copy a different kernel.
std::string half_bf16_kernel(const std::string& tag = "", float scale = 1.0f) {
  return R"(#include <cuda_fp16.h>
#include <cuda_bf16.h>
// out[i] = a * x[i] + b * y[i] (x: f16, y: bf16), accumulated in f32.
extern "C" __global__ void trainrt_axpby)" +
         tag + R"((const __half* x, const __nv_bfloat16* y, float a, float b, float* out,
                                        __nv_bfloat16* out_bf16, long long n) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    float acc = a * __half2float(x[i]);
    acc += b * __bfloat162float(y[i]);
    out[i] = acc * )" +
         std::to_string(scale) + R"(f;
    out_bf16[i] = __float2bfloat16(acc);
  }
}
)";
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Every test that compiles needs NVRTC; without it the test is skipped, saying why.
class NvrtcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nvrtc_ = Nvrtc::get();
    if (nvrtc_ == nullptr) GTEST_SKIP() << Nvrtc::unavailable_reason();
  }
  const Nvrtc* nvrtc_ = nullptr;
};

// ---------------------------------------------------------------------------------- loading

TEST_F(NvrtcTest, VersionAndArchitectures) {
  const int version = nvrtc_->version();
  EXPECT_GE(version, 12000) << "the driver asks for NVRTC 12 or 13 first";
  EXPECT_EQ(version % 10, 0) << "major*1000 + minor*10";
  const std::vector<int> archs = nvrtc_->supported_archs();
  EXPECT_TRUE(std::is_sorted(archs.begin(), archs.end()));
  EXPECT_NE(std::find(archs.begin(), archs.end(), 80), archs.end());
  EXPECT_NE(std::find(archs.begin(), archs.end(), 90), archs.end());
  const std::string vs = nvrtc_->version_string();
  EXPECT_TRUE(starts_with(vs, detail::cat("nvrtc ", version / 1000, ".", version % 1000 / 10))) << vs;
  // The probe compile's PTX names the toolkit release ("V13.0.88"): patch releases differ.
  EXPECT_TRUE(contains(vs, detail::cat("V", version / 1000, "."))) << vs;
  EXPECT_TRUE(std::filesystem::exists(nvrtc_->library_path())) << nvrtc_->library_path();
  EXPECT_TRUE(Nvrtc::unavailable_reason().empty());
}

TEST_F(NvrtcTest, CudaHeadersFoundBesideTheLibrary) {
  // NVRTC 13.0 has no built-in cuda_fp16.h, so the driver must have found the toolkit's.
  ASSERT_FALSE(nvrtc_->include_dir().empty()) << "no CUDA include directory beside " << nvrtc_->library_path();
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(nvrtc_->include_dir()) / "cuda_fp16.h"));
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(nvrtc_->include_dir()) / "cuda_bf16.h"));
  EXPECT_TRUE(contains(nvrtc_->version_string(), "; headers ")) << nvrtc_->version_string();
  EXPECT_FALSE(contains(nvrtc_->version_string(), "; headers none")) << nvrtc_->version_string();
}

TEST_F(NvrtcTest, OpenTheSameFileAgain) {
  const auto again = Nvrtc::open(nvrtc_->library_path());
  EXPECT_EQ(again->version(), nvrtc_->version());
  EXPECT_EQ(again->version_string(), nvrtc_->version_string());
  EXPECT_EQ(again->include_dir(), nvrtc_->include_dir());
}

TEST(NvrtcLoad, MissingLibraryIsNotFound) {
  test::expect_error([] { Nvrtc::open("/nonexistent/dir/libnvrtc.so.13"); }, ErrorKind::NotFound,
                     {"could not load NVRTC", "/nonexistent/dir/libnvrtc.so.13"});
}

TEST(NvrtcLoad, ALibraryThatIsNotNvrtcIsRefused) {
  // libc loads fine but has no nvrtc* entry points.
  test::expect_error([] { Nvrtc::open("libc.so.6"); }, ErrorKind::Unsupported,
                     {"not a usable NVRTC", "nvrtcVersion", "nvrtcCompileProgram"});
}

TEST(NvrtcLoad, SearchOrder) {
  test::TempDir home;
  std::filesystem::create_directories(home.file("lib64"));
  for (const char* f : {"libnvrtc.so", "libnvrtc.so.12", "libnvrtc.so.12.4", "libnvrtc.so.13",
                        "libnvrtc-builtins.so.13.0", "libnvrtc.alt.so.13", "libnvrtc.so.13.x"})
    std::ofstream(home.file("lib64/") + f) << "";
  const ScopedEnv nvrtc("TRAINRT_NVRTC", "/opt/my/libnvrtc.so.13");
  const ScopedEnv cuda_home("CUDA_HOME", home.path());
  const std::vector<std::string> order = Nvrtc::search_order();
  ASSERT_GE(order.size(), 4u);
  EXPECT_EQ(order[0], "/opt/my/libnvrtc.so.13");
  EXPECT_EQ(order[1], "libnvrtc.so.13");
  EXPECT_EQ(order[2], "libnvrtc.so.12");
  EXPECT_EQ(order[3], "libnvrtc.so");
  // $CUDA_HOME/lib64 comes last, newest version first, only libnvrtc.so[.N[.M]] files.
  const std::string lib = home.file("lib64/");
  const std::vector<std::string> tail(order.end() - 4, order.end());
  EXPECT_EQ(tail, (std::vector<std::string>{lib + "libnvrtc.so.13", lib + "libnvrtc.so.12.4", lib + "libnvrtc.so.12",
                                            lib + "libnvrtc.so"}));
}

TEST(NvrtcLoad, HeaderSearchOrder) {
  const ScopedEnv include("TRAINRT_CUDA_INCLUDE", "/opt/headers");
  const ScopedEnv cuda_home("CUDA_HOME", "/opt/cuda");
  const std::vector<std::string> dirs = Nvrtc::header_search_order("/opt/toolkit/lib64/libnvrtc.so.13");
  ASSERT_GE(dirs.size(), 4u);
  EXPECT_EQ(dirs[0], "/opt/headers");
  EXPECT_EQ(dirs[1], "/opt/toolkit/include");
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/opt/cuda/include"), dirs.end());
  EXPECT_EQ(dirs.back(), "/usr/include");
}

// ------------------------------------------------------------------------------------ CUBIN

void expect_cubin_for(const Nvrtc& nvrtc, int arch) {
  NvrtcOptions o;
  o.arch = arch;
  const NvrtcResult r = nvrtc.compile(half_bf16_kernel(), detail::cat("axpby_sm", arch, ".cu"), o);
  EXPECT_TRUE(r.is_cubin);
  EXPECT_EQ(r.arch, arch);
  ASSERT_GE(r.image.size(), 64u);
  EXPECT_EQ(r.image.substr(0, 4), std::string("\177ELF"));
  EXPECT_EQ(detail::cubin_arch(r.image), arch) << "the ELF header's e_flags name another SM";
  EXPECT_TRUE(contains(r.image, "trainrt_axpby")) << "the kernel's symbol is in the CUBIN";
  EXPECT_GT(r.seconds, 0.0);
  EXPECT_TRUE(r.log.empty()) << r.log;
}

TEST_F(NvrtcTest, HalfAndBfloat16KernelToCubinForSm80) { expect_cubin_for(*nvrtc_, 80); }
TEST_F(NvrtcTest, HalfAndBfloat16KernelToCubinForSm90) { expect_cubin_for(*nvrtc_, 90); }

// The hand-written device code of the gradient guard (runtime/cuda/gradient_stats_kernel.h)
// compiles warning-free for both architectures, with both kernels in the image.
TEST_F(NvrtcTest, GradientStatsKernelsCompileForSm80AndSm90) {
  for (int arch : {80, 90}) {
    NvrtcOptions o;
    o.arch = arch;
    const NvrtcResult r = nvrtc_->compile(detail::gradient_stats_cuda_source(), "gradient_stats.cu", o);
    EXPECT_TRUE(r.is_cubin);
    EXPECT_EQ(detail::cubin_arch(r.image), arch);
    EXPECT_TRUE(contains(r.image, "trainrt_gradient_stats_partial"));
    EXPECT_TRUE(contains(r.image, "trainrt_gradient_stats_finish"));
    EXPECT_TRUE(r.log.empty()) << r.log;
  }
}

TEST(NvrtcElf, CubinArchOfSomethingElseIsZero) {
  EXPECT_EQ(detail::cubin_arch(""), 0);
  EXPECT_EQ(detail::cubin_arch("\177ELF"), 0);
  EXPECT_EQ(detail::cubin_arch(std::string(64, 'x')), 0);
  // A host ELF (this test program) is ELF64 but not EM_CUDA.
  std::ifstream self("/proc/self/exe", std::ios::binary);
  std::string head(64, '\0');
  self.read(head.data(), 64);
  EXPECT_EQ(head.substr(0, 4), std::string("\177ELF"));
  EXPECT_EQ(detail::cubin_arch(head), 0);
}

// -------------------------------------------------------------------------------------- PTX

TEST_F(NvrtcTest, PtxFallbackForAnArchitectureNewerThanNvrtc) {
  const int newest = nvrtc_->supported_archs().back();
  NvrtcOptions o;
  o.arch = newest + 10;  // a device NVRTC cannot build a CUBIN for
  const NvrtcResult r = nvrtc_->compile(half_bf16_kernel(), "future.cu", o);
  EXPECT_FALSE(r.is_cubin);
  EXPECT_EQ(r.arch, newest) << "PTX for the newest architecture NVRTC knows: it runs on later ones";
  EXPECT_TRUE(starts_with(r.image, "//")) << r.image.substr(0, 80);
  EXPECT_TRUE(contains(r.image, detail::cat(".target sm_", newest, "\n"))) << r.image.substr(0, 400);
  EXPECT_TRUE(contains(r.image, ".entry trainrt_axpby("));
  EXPECT_EQ(r.image.find('\0'), std::string::npos) << "PTX text carries no NUL";
}

TEST_F(NvrtcTest, ForcedPtxForSm90) {
  NvrtcOptions o;
  o.arch = 90;
  o.force_ptx = true;
  const NvrtcResult r = nvrtc_->compile(half_bf16_kernel(), "portable.cu", o);
  EXPECT_FALSE(r.is_cubin);
  EXPECT_EQ(r.arch, 90);
  EXPECT_TRUE(starts_with(r.image, "//"));
  EXPECT_TRUE(contains(r.image, ".target sm_90\n"));
}

TEST_F(NvrtcTest, ArchitecturesNvrtcCannotServe) {
  NvrtcOptions o;
  o.arch = nvrtc_->supported_archs().back() + 10;
  o.ptx_fallback = false;
  test::expect_error([&] { nvrtc_->compile(half_bf16_kernel(), "future.cu", o); }, ErrorKind::Unsupported,
                     {"future.cu", detail::cat("sm_", o.arch), "ptx_fallback"});
  o.arch = nvrtc_->supported_archs().front() - 5;  // older than NVRTC's oldest: PTX cannot help
  o.ptx_fallback = true;
  test::expect_error([&] { nvrtc_->compile(half_bf16_kernel(), "old.cu", o); }, ErrorKind::Unsupported,
                     {"old.cu", detail::cat("sm_", o.arch), "supports"});
  o.arch = 0;
  test::expect_error([&] { nvrtc_->compile(half_bf16_kernel(), "zero.cu", o); }, ErrorKind::InvalidArgument,
                     {"zero.cu", "arch"});
}

// ---------------------------------------------------------------------------------- options

TEST_F(NvrtcTest, DefaultsAreCxx20AndDeviceByDefault) {
  // `scale` has no __device__ (the emitter's device-agnostic functions) and uses a C++20
  // concept: both compile only with -default-device and -std=c++20.
  const std::string source = R"(
template <class T> concept Scalable = requires(T v) { v * v; };
template <Scalable T> T scale(T v) { return v * T(2); }
extern "C" __global__ void twice(float* x) { x[threadIdx.x] = scale(x[threadIdx.x]); }
)";
  const NvrtcResult r = nvrtc_->compile(source, "defaults.cu", {});
  EXPECT_TRUE(r.is_cubin);
  // An -std in `extra` replaces the default rather than following it (no NVRTC warning).
  NvrtcOptions o;
  o.extra = {"-std=c++17"};
  const NvrtcResult r17 = nvrtc_->compile(half_bf16_kernel(), "cxx17.cu", o);
  EXPECT_TRUE(r17.log.empty()) << r17.log;
  test::expect_error([&] { nvrtc_->compile(source, "cxx17_concept.cu", o); }, ErrorKind::Runtime, {"cxx17_concept.cu"});
}

TEST_F(NvrtcTest, ExtraOptionsReachNvrtc) {
  NvrtcOptions o;
  o.extra = {"-use_fast_math"};
  const NvrtcResult fast =
      nvrtc_->compile("extern \"C\" __global__ void e(float* x) { x[0] = expf(x[0]); }", "fast.cu", o);
  const NvrtcResult exact =
      nvrtc_->compile("extern \"C\" __global__ void e(float* x) { x[0] = expf(x[0]); }", "exact.cu", {});
  EXPECT_NE(fast.image, exact.image) << "-use_fast_math changes expf";
  o.extra = {"--no-such-option"};
  test::expect_error([&] { nvrtc_->compile(half_bf16_kernel(), "bad_option.cu", o); }, ErrorKind::InvalidArgument,
                     {"bad_option.cu", "--no-such-option"});
  o.extra = {"--gpu-architecture=sm_80"};
  test::expect_error([&] { nvrtc_->compile(half_bf16_kernel(), "arch_option.cu", o); }, ErrorKind::InvalidArgument,
                     {"arch_option.cu", "NvrtcOptions::arch"});
}

TEST_F(NvrtcTest, WarningsReachTheLog) {
  const NvrtcResult r = nvrtc_->compile(
      "extern \"C\" __global__ void w(float* x) { int unused_variable_42; x[0] = 1.0f; }", "warns.cu", {});
  EXPECT_TRUE(r.is_cubin);
  EXPECT_TRUE(contains(r.log, "unused_variable_42")) << r.log;
  EXPECT_TRUE(contains(r.log, "warns.cu")) << r.log;
}

// ----------------------------------------------------------------------------------- errors

TEST_F(NvrtcTest, SyntaxErrorNamesTheSourceAndCarriesTheLog) {
  const std::string source = "extern \"C\" __global__ void broken(float* x) {\n  x[0] = 1.0f\n}\n";
  test::expect_error([&] { nvrtc_->compile(source, "fused_broken_7.cu", {}); }, ErrorKind::Runtime,
                     {"could not compile fused_broken_7.cu for sm_90", "NVRTC_ERROR_COMPILATION",
                      "fused_broken_7.cu(3): error", "expected a \";\"", "sm_90"});
  test::expect_error([&] { nvrtc_->compile(std::string("__global__ void k() {}\0tail", 27), "nul.cu", {}); },
                     ErrorKind::InvalidArgument, {"nul.cu", "NUL byte at offset 22"});
}

TEST_F(NvrtcTest, MissingCudaHeadersSayWhereTheyWereLookedFor) {
  test::TempDir empty;
  const auto bare = Nvrtc::open(nvrtc_->library_path(), std::vector<std::string>{empty.path()});
  EXPECT_TRUE(bare->include_dir().empty());
  EXPECT_TRUE(contains(bare->version_string(), "; headers none")) << bare->version_string();
  // Kernels without the headers still compile.
  EXPECT_TRUE(bare->compile("extern \"C\" __global__ void k(float* x) { x[0] = 1; }", "plain.cu", {}).is_cubin);
  test::expect_error([&] { bare->compile(half_bf16_kernel(), "needs_fp16.cu", {}); }, ErrorKind::Runtime,
                     {"needs_fp16.cu", "cuda_fp16.h", "no built-in cuda_fp16.h", empty.path(), "TRAINRT_CUDA_INCLUDE"});
}

// ---------------------------------------------------------------------------------- threads

TEST_F(NvrtcTest, EightThreadsCompileDifferentKernelsAtOnce) {
  constexpr int kThreads = 8;
  std::vector<NvrtcResult> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        NvrtcOptions o;
        o.arch = t % 2 == 0 ? 90 : 80;
        results[static_cast<std::size_t>(t)] = nvrtc_->compile(
            half_bf16_kernel(detail::cat("_", t), 1.0f + static_cast<float>(t)), detail::cat("thread_", t, ".cu"), o);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    const auto i = static_cast<std::size_t>(t);
    ASSERT_TRUE(errors[i].empty()) << "thread " << t << ": " << errors[i];
    EXPECT_TRUE(results[i].is_cubin);
    EXPECT_EQ(detail::cubin_arch(results[i].image), t % 2 == 0 ? 90 : 80);
    EXPECT_TRUE(contains(results[i].image, detail::cat("trainrt_axpby_", t)))
        << "thread " << t << " got another kernel";
  }
}

// ---------------------------------------------------------------- no CUDA library in DT_NEEDED

// The DT_NEEDED entries of an ELF64 file, read from its SHT_DYNAMIC section.
std::vector<std::string> needed_libraries(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Elf64_Ehdr eh{};
  if (bytes.size() < sizeof eh) return {};
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return {};
  auto section = [&](std::size_t i) {
    Elf64_Shdr sh{};
    const std::size_t at = eh.e_shoff + i * eh.e_shentsize;
    if (at + sizeof sh <= bytes.size()) std::memcpy(&sh, bytes.data() + at, sizeof sh);
    return sh;
  };
  std::vector<std::string> out;
  for (std::size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr dyn = section(i);
    if (dyn.sh_type != SHT_DYNAMIC) continue;
    const Elf64_Shdr strtab = section(dyn.sh_link);
    for (std::size_t at = dyn.sh_offset;
         at + sizeof(Elf64_Dyn) <= dyn.sh_offset + dyn.sh_size && at + sizeof(Elf64_Dyn) <= bytes.size();
         at += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d{};
      std::memcpy(&d, bytes.data() + at, sizeof d);
      if (d.d_tag == DT_NULL) break;
      if (d.d_tag == DT_NEEDED && strtab.sh_offset + d.d_un.d_val < bytes.size())
        out.emplace_back(bytes.c_str() + strtab.sh_offset + d.d_un.d_val);
    }
  }
  return out;
}

TEST(NvrtcLinking, LibtrainrtNeedsNoCudaLibrary) {
  // The ELF files that hold libtrainrt's code: this test program (all of it when the library
  // is static, the default) and libtrainrt.so in a shared build. Their DT_NEEDED lists what
  // the loader must find before main() runs.
  std::vector<std::string> files = {"/proc/self/exe"};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, "libtrainrt") != nullptr)
          static_cast<std::vector<std::string>*>(data)->push_back(info->dlpi_name);
        return 0;
      },
      &files);
  const char* cuda_prefixes[] = {"libcuda.", "libcudart",    "libnvrtc",  "libcublas",   "libcudnn",
                                 "libnccl",  "libcufft",     "libcurand", "libcusparse", "libcusolver",
                                 "libcupti", "libnvJitLink", "libnvvm",   "libnvidia-",  "libnvToolsExt"};
  for (const std::string& file : files) {
    const std::vector<std::string> needed = needed_libraries(file);
    // The reader works: every program and library here needs the C library.
    ASSERT_NE(
        std::find_if(needed.begin(), needed.end(), [](const std::string& n) { return starts_with(n, "libc.so"); }),
        needed.end())
        << file << " has no DT_NEEDED libc: the ELF reader is broken";
    for (const std::string& lib : needed)
      for (const char* prefix : cuda_prefixes)
        EXPECT_FALSE(starts_with(lib, prefix))
            << file << " needs " << lib << " (CUDA is loaded with dlopen, never linked)";
  }
}

}  // namespace
}  // namespace trainrt
