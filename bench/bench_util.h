// bench/bench_util.h — what step_bench.cpp and torch_step_bench.cpp share, so that both
// sides of a comparison parse the same flags, feed the same data and compute their figures
// the same way.
//
//   BenchArgs / parse_args   --model, --threads, --batch, --warmup, --steps
//   make_batches             seeded random normalized images and labels
//   StepTimes                per-step wall and CPU times and their quantiles
//   peak_rss_mb              getrusage(RUSAGE_SELF).ru_maxrss in MiB
//   mapped_libraries         shared libraries this process has mapped (which BLAS ran)
//   JsonLine                 the one JSON line each benchmark prints
//
// Header-only and C++17: torch_step_bench compiles with libtorch's flags, not ours.
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

/// Command-line settings of one benchmark process.
struct BenchArgs {
  std::string model = "mlp";  ///< mlp or cnn (examples/fashion_mnist/models.h)
  int threads = 1;            ///< intra-op threads of the implementation under test
  std::int64_t batch = 128;
  int warmup = 10;  ///< untimed steps before the timed ones (first-touch, caches, JIT)
  int steps = 0;    ///< timed steps; 0 picks the model's default (kDefaultSteps*)
};

inline constexpr int kDefaultStepsMlp = 200;
inline constexpr int kDefaultStepsCnn = 50;

/// Parses "--name value" pairs; throws std::invalid_argument with a usage line on anything else.
inline BenchArgs parse_args(int argc, char** argv) {
  const std::string usage =
      std::string("usage: ") + (argc > 0 ? argv[0] : "bench") +
      " [--model mlp|cnn] [--threads N] [--batch N] [--warmup N] [--steps N]";
  BenchArgs a;
  auto to_int = [&](const std::string& flag, const char* text) -> std::int64_t {
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0) throw std::invalid_argument(flag + " wants a non-negative integer\n" + usage);
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") throw std::invalid_argument(usage);
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + flag + "\n" + usage);
    const char* value = argv[++i];
    if (flag == "--model") {
      a.model = value;
    } else if (flag == "--threads") {
      a.threads = static_cast<int>(to_int(flag, value));
    } else if (flag == "--batch") {
      a.batch = to_int(flag, value);
    } else if (flag == "--warmup") {
      a.warmup = static_cast<int>(to_int(flag, value));
    } else if (flag == "--steps") {
      a.steps = static_cast<int>(to_int(flag, value));
    } else {
      throw std::invalid_argument("unknown flag " + flag + "\n" + usage);
    }
  }
  if (a.model != "mlp" && a.model != "cnn") throw std::invalid_argument("--model must be mlp or cnn\n" + usage);
  if (a.threads < 1 || a.batch < 1) throw std::invalid_argument("--threads and --batch must be at least 1\n" + usage);
  if (a.steps == 0) a.steps = a.model == "cnn" ? kDefaultStepsCnn : kDefaultStepsMlp;
  return a;
}

/// One mini-batch in plain host memory: images f32 [batch, 1, 28, 28], labels int64 [batch].
struct HostBatch {
  std::vector<float> images;
  std::vector<std::int64_t> labels;
};

inline constexpr std::int64_t kImageSize = 28 * 28;
inline constexpr std::int64_t kClasses = 10;
/// Batches cycled through the steps: a few distinct ones, so that every step does not read
/// the same (cache-hot) input, without a data loader in the measurement.
inline constexpr int kDistinctBatches = 4;

/// `kDistinctBatches` batches of uniform "pixels" in [0, 1] normalized with the Fashion-MNIST
/// training-set mean and standard deviation (0.2860, 0.3530), and uniform labels. The
/// generator is seeded, so both implementations see the same numbers (libstdc++'s
/// distributions are deterministic for a given engine state).
inline std::vector<HostBatch> make_batches(std::int64_t batch, std::uint32_t seed = 20240601) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::uniform_int_distribution<std::int64_t> label(0, kClasses - 1);
  std::vector<HostBatch> out(kDistinctBatches);
  for (HostBatch& b : out) {
    b.images.resize(static_cast<std::size_t>(batch * kImageSize));
    for (float& p : b.images) p = (pixel(gen) - 0.2860f) / 0.3530f;
    b.labels.resize(static_cast<std::size_t>(batch));
    for (std::int64_t& l : b.labels) l = label(gen);
  }
  return out;
}

/// CPU time this process has used so far (all its threads), in milliseconds.
inline double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

/// Wall and process CPU times of the timed steps, in milliseconds. With one thread the CPU
/// time barely depends on other load on the machine, where the wall time can double; with
/// more threads it also counts OpenMP's spin-waiting, so compare it only at one thread.
class StepTimes {
 public:
  using Clock = std::chrono::steady_clock;
  /// Marks the start of a step.
  void start() {
    cpu_start_ = process_cpu_ms();
    wall_start_ = Clock::now();
  }
  /// Marks the end of the step begun by start().
  void stop() {
    const Clock::time_point end = Clock::now();
    wall_ms_.push_back(std::chrono::duration<double, std::milli>(end - wall_start_).count());
    cpu_ms_.push_back(process_cpu_ms() - cpu_start_);
  }
  std::size_t size() const { return wall_ms_.size(); }
  /// The q-quantile (0 <= q <= 1) of the wall times.
  double quantile(double q) const { return quantile_of(wall_ms_, q); }
  /// The q-quantile of the CPU times.
  double cpu_quantile(double q) const { return quantile_of(cpu_ms_, q); }

 private:
  /// Linear interpolation between order statistics (numpy's default), so the median of an
  /// even count is the mean of the middle two.
  static double quantile_of(std::vector<double> v, double q) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const double pos = q * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
  }

  Clock::time_point wall_start_;
  double cpu_start_ = 0.0;
  std::vector<double> wall_ms_, cpu_ms_;
};

/// Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB).
inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

/// Paths of the files mapped into this process (from /proc/self/maps) whose name contains
/// one of `needles`, comma-separated, each once: records which BLAS or oneDNN a run used.
inline std::string mapped_libraries(const std::vector<std::string>& needles) {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> found;
  std::string line;
  while (std::getline(maps, line)) {
    const std::size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string base = path.substr(path.rfind('/') + 1);
    bool wanted = false;
    for (const std::string& n : needles) wanted = wanted || base.find(n) != std::string::npos;
    if (wanted && std::find(found.begin(), found.end(), path) == found.end()) found.push_back(path);
  }
  std::string out;
  for (const std::string& p : found) out += (out.empty() ? "" : ",") + p;
  return out;
}

/// Builds one flat JSON object, in insertion order, printed as a single line.
class JsonLine {
 public:
  JsonLine& add(const std::string& key, const std::string& value) {
    std::string quoted = "\"";
    for (char c : value) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    return raw(key, quoted + "\"");
  }
  JsonLine& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonLine& add(const std::string& key, std::int64_t value) { return raw(key, std::to_string(value)); }
  JsonLine& add(const std::string& key, int value) { return raw(key, std::to_string(value)); }
  /// Doubles with 4 decimals; NaN and infinities become null (JSON has no such numbers).
  JsonLine& add(const std::string& key, double value) {
    if (!std::isfinite(value)) return null(key);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", value);
    return raw(key, buf);
  }
  JsonLine& null(const std::string& key) { return raw(key, "null"); }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonLine& raw(const std::string& key, const std::string& value) {
    if (!body_.empty()) body_ += ",";
    body_ += "\"" + key + "\":" + value;
    return *this;
  }
  std::string body_;
};

/// The fields both benchmarks print, in the same order.
inline JsonLine common_fields(const char* impl, const BenchArgs& a, const StepTimes& t, double compile_s,
                              double loss_first, double loss_last) {
  JsonLine j;
  j.add("impl", impl)
      .add("model", a.model)
      .add("threads", a.threads)
      .add("batch", a.batch)
      .add("warmup", a.warmup)
      .add("steps", static_cast<std::int64_t>(t.size()))
      .add("median_ms", t.quantile(0.5))
      .add("p10_ms", t.quantile(0.1))
      .add("p90_ms", t.quantile(0.9))
      .add("median_cpu_ms", t.cpu_quantile(0.5))
      .add("peak_rss_mb", peak_rss_mb())
      .add("compile_s", compile_s)
      .add("loss_first", loss_first)
      .add("loss_last", loss_last);
  return j;
}

}  // namespace bench
