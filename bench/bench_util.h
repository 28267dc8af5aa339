// bench/bench_util.h — what step_bench.cpp and torch_step_bench.cpp share, so that both
// sides of a comparison parse the same flags, feed the same data and compute their figures
// the same way.
//
//   BenchArgs / parse_args   --model, --threads, --batch, --warmup, --steps, --seq-len,
//                            --dropout, --tied (both sides); --inter-op, --loader, --data,
//                            --prefetch (libtrainrt)
//   ModelDefaults            batch, warm-up and timed steps per model
//   HostBatch / make_batches seeded random normalized images and labels, or token streams
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

/// The models both benchmarks build: mlp and cnn of examples/fashion_mnist/models.h,
/// resnet18 and transformer of bench/models.h (libtorch twins in torch_step_bench.cpp).
inline const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {"mlp", "cnn", "resnet18", "transformer"};
  return names;
}

/// Per-model defaults: a batch that keeps one step of the large models around a second on
/// a 2-core machine, and fewer timed steps for them.
struct ModelDefaults {
  std::int64_t batch;
  int warmup;
  int steps;
};
inline ModelDefaults model_defaults(const std::string& model) {
  if (model == "cnn") return {128, 10, 50};
  if (model == "resnet18") return {32, 3, 10};
  if (model == "transformer") return {16, 3, 10};
  return {128, 10, 200};  // mlp
}

/// The transformer's fixed sizes (bench/models.h TransformerConfig; mirrored by the libtorch twin).
inline constexpr std::int64_t kVocab = 4096;
inline constexpr std::int64_t kDModel = 256;
inline constexpr std::int64_t kHeads = 4;
inline constexpr std::int64_t kFfn = 1024;
inline constexpr std::int64_t kLayers = 4;

/// Command-line settings of one benchmark process.
struct BenchArgs {
  std::string model = "mlp";   ///< one of model_names()
  int threads = 1;             ///< intra-op threads of the implementation under test
  std::int64_t batch = 0;      ///< 0 picks the model's default (model_defaults)
  int warmup = -1;             ///< untimed steps before the timed ones (first-touch, caches, JIT); -1: default
  int steps = 0;               ///< timed steps; 0 picks the model's default
  std::int64_t seq_len = 128;  ///< transformer: tokens per sequence
  double dropout = 0.1;        ///< transformer: dropout probability (0 removes the ops)
  bool tied = false;           ///< transformer: output projection tied to the token embedding
  bool inter_op = true;        ///< libtrainrt only: CompileOptions::inter_op
  bool loader = false;         ///< libtrainrt only: feed mlp/cnn from a trainrt::data::DataLoader
  /// --loader: directory of the Fashion-MNIST IDX files; "synthetic", or a directory without
  /// them, uses seeded random images in memory instead.
  std::string data = "/usr/share/datasets/fashion-mnist";
  int prefetch = 2;  ///< --loader: LoaderOptions::prefetch (batch buffers in the ring)
};

/// Parses "--name value" pairs; throws std::invalid_argument with a usage line on anything
/// else. `ours` is true for trainrt_step_bench, which alone takes --inter-op, --loader, --data
/// and --prefetch.
inline BenchArgs parse_args(int argc, char** argv, bool ours) {
  const std::string usage =
      std::string("usage: ") + (argc > 0 ? argv[0] : "bench") +
      " [--model mlp|cnn|resnet18|transformer] [--threads N] [--batch N] [--warmup N] [--steps N]"
      " [--seq-len N] [--dropout P] [--tied on|off]" +
      (ours ? " [--inter-op on|off] [--loader on|off] [--data DIR|synthetic] [--prefetch N]" : "");
  BenchArgs a;
  auto to_int = [&](const std::string& flag, const char* text) -> std::int64_t {
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0)
      throw std::invalid_argument(flag + " wants a non-negative integer\n" + usage);
    return v;
  };
  auto to_bool = [&](const std::string& flag, const std::string& text) -> bool {
    if (text == "on" || text == "1" || text == "true") return true;
    if (text == "off" || text == "0" || text == "false") return false;
    throw std::invalid_argument(flag + " wants on or off\n" + usage);
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
    } else if (flag == "--seq-len") {
      a.seq_len = to_int(flag, value);
    } else if (flag == "--dropout") {
      char* end = nullptr;
      a.dropout = std::strtod(value, &end);
      if (end == value || *end != '\0' || !(a.dropout >= 0.0 && a.dropout < 1.0))
        throw std::invalid_argument("--dropout wants a probability in [0, 1)\n" + usage);
    } else if (flag == "--tied") {
      a.tied = to_bool(flag, value);
    } else if (ours && flag == "--inter-op") {
      a.inter_op = to_bool(flag, value);
    } else if (ours && flag == "--loader") {
      a.loader = to_bool(flag, value);
    } else if (ours && flag == "--data") {
      a.data = value;
    } else if (ours && flag == "--prefetch") {
      a.prefetch = static_cast<int>(to_int(flag, value));
    } else {
      throw std::invalid_argument("unknown flag " + flag + "\n" + usage);
    }
  }
  const std::vector<std::string>& names = model_names();
  if (std::find(names.begin(), names.end(), a.model) == names.end())
    throw std::invalid_argument("--model must be mlp, cnn, resnet18 or transformer\n" + usage);
  const ModelDefaults d = model_defaults(a.model);
  if (a.batch == 0) a.batch = d.batch;
  if (a.warmup < 0) a.warmup = d.warmup;
  if (a.steps == 0) a.steps = d.steps;
  if (a.threads < 1 || a.seq_len < 1 || a.prefetch < 1)
    throw std::invalid_argument("--threads, --seq-len and --prefetch must be at least 1\n" + usage);
  if (a.loader && a.model != "mlp" && a.model != "cnn")
    throw std::invalid_argument("--loader on is for mlp and cnn (the Fashion-MNIST models)\n" + usage);
  return a;
}

/// Whether the model reads token sequences (transformer) rather than images.
inline bool is_language_model(const BenchArgs& a) { return a.model == "transformer"; }

/// Shape of the model's first input: images [B, 1, 28, 28] (mlp, cnn), [B, 3, 32, 32]
/// (resnet18), or tokens [B, L] (transformer).
inline std::vector<std::int64_t> input_dims(const BenchArgs& a) {
  if (a.model == "resnet18") return {a.batch, 3, 32, 32};
  if (is_language_model(a)) return {a.batch, a.seq_len};
  return {a.batch, 1, 28, 28};
}
/// Shape of the labels: [B], or next-token targets [B, L] for the transformer.
inline std::vector<std::int64_t> label_dims(const BenchArgs& a) {
  if (is_language_model(a)) return {a.batch, a.seq_len};
  return {a.batch};
}
/// The names the graph's inputs are fed under: {"x", "y"} or {"tokens", "targets"}.
inline const char* input_name(const BenchArgs& a) { return is_language_model(a) ? "tokens" : "x"; }
inline const char* label_name(const BenchArgs& a) { return is_language_model(a) ? "targets" : "y"; }

inline std::int64_t numel(const std::vector<std::int64_t>& dims) {
  std::int64_t n = 1;
  for (std::int64_t d : dims) n *= d;
  return n;
}

/// One mini-batch in plain host memory: images f32 (input_dims) or tokens i64 [B, L], and
/// labels i64 (label_dims).
struct HostBatch {
  std::vector<float> images;         ///< image models
  std::vector<std::int64_t> tokens;  ///< transformer
  std::vector<std::int64_t> labels;  ///< class labels, or next-token targets
};

inline constexpr std::int64_t kClasses = 10;
/// Batches cycled through the steps: a few distinct ones, so that every step does not read
/// the same (cache-hot) input, without a data loader in the measurement.
inline constexpr int kDistinctBatches = 4;
inline constexpr std::uint32_t kDataSeed = 20240601;

/// `kDistinctBatches` batches of uniform "pixels" in [0, 1] normalized per channel with the
/// training-set mean and standard deviation of Fashion-MNIST (1 channel: 0.2860, 0.3530) or
/// CIFAR-10 (3 channels), and uniform labels. The generator is seeded, so both
/// implementations see the same numbers (libstdc++'s distributions are deterministic for a
/// given engine state).
inline std::vector<HostBatch> make_image_batches(const std::vector<std::int64_t>& dims, std::uint32_t seed) {
  static const float kFashion[2][1] = {{0.2860f}, {0.3530f}};
  static const float kCifar[2][3] = {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  const std::int64_t batch = dims[0], channels = dims[1], plane = dims[2] * dims[3];
  const float* mean = channels == 3 ? kCifar[0] : kFashion[0];
  const float* std_dev = channels == 3 ? kCifar[1] : kFashion[1];
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::uniform_int_distribution<std::int64_t> label(0, kClasses - 1);
  std::vector<HostBatch> out(kDistinctBatches);
  for (HostBatch& b : out) {
    b.images.resize(static_cast<std::size_t>(numel(dims)));
    for (std::size_t i = 0; i < b.images.size(); ++i) {
      const auto c = static_cast<std::size_t>((static_cast<std::int64_t>(i) / plane) % channels);
      b.images[i] = (pixel(gen) - mean[c]) / std_dev[c];
    }
    b.labels.resize(static_cast<std::size_t>(batch));
    for (std::int64_t& l : b.labels) l = label(gen);
  }
  return out;
}

/// `kDistinctBatches` batches of token sequences with something to learn: each row is a
/// stream s[0..L] from a first-order Markov chain over the vocabulary, s[i+1] = (31 s[i] +
/// 7 + r) mod V with r uniform in [0, 8), so the best next-token loss is ln 8 = 2.08 against
/// ln V = 8.32 for a uniform guess. tokens = s[0..L), targets = s[1..L].
inline std::vector<HostBatch> make_token_batches(std::int64_t batch, std::int64_t seq_len, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::int64_t> first(0, kVocab - 1);
  std::uniform_int_distribution<std::int64_t> jitter(0, 7);
  std::vector<HostBatch> out(kDistinctBatches);
  for (HostBatch& b : out) {
    b.tokens.resize(static_cast<std::size_t>(batch * seq_len));
    b.labels.resize(b.tokens.size());
    for (std::int64_t row = 0; row < batch; ++row) {
      std::int64_t s = first(gen);
      for (std::int64_t i = 0; i < seq_len; ++i) {
        const auto at = static_cast<std::size_t>(row * seq_len + i);
        b.tokens[at] = s;
        s = (31 * s + 7 + jitter(gen)) % kVocab;
        b.labels[at] = s;
      }
    }
  }
  return out;
}

/// The batches of the model named in `a`, in the shapes input_dims(a) and label_dims(a).
inline std::vector<HostBatch> make_batches(const BenchArgs& a, std::uint32_t seed = kDataSeed) {
  if (is_language_model(a)) return make_token_batches(a.batch, a.seq_len, seed);
  return make_image_batches(input_dims(a), seed);
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
  /// The sum of the wall times.
  double total_ms() const {
    double t = 0.0;
    for (double v : wall_ms_) t += v;
    return t;
  }
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
  JsonLine& add(const std::string& key, bool value) { return raw(key, value ? "true" : "false"); }
  /// Doubles with 4 decimals; NaN and infinities become null (JSON has no such numbers).
  JsonLine& add(const std::string& key, double value) {
    if (!std::isfinite(value)) return null(key);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", value);
    return raw(key, buf);
  }
  /// An array of doubles, each as add(key, double) writes one.
  JsonLine& add(const std::string& key, const std::vector<double>& values) {
    std::string body = "[";
    for (std::size_t i = 0; i < values.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.4f", values[i]);
      body += (i ? "," : "") + std::string(std::isfinite(values[i]) ? buf : "null");
    }
    return raw(key, body + "]");
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

/// The fields both benchmarks print, in the same order. `losses` holds the loss of every
/// step, warm-up included.
inline JsonLine common_fields(const char* impl, const BenchArgs& a, const StepTimes& t, double compile_s,
                              const std::vector<double>& losses) {
  const double loss_first = losses.empty() ? std::nan("") : losses.front();
  const double loss_last = losses.empty() ? std::nan("") : losses.back();
  JsonLine j;
  j.add("impl", impl).add("model", a.model).add("threads", a.threads).add("batch", a.batch);
  // The transformer's own settings; null for the image models.
  if (is_language_model(a)) {
    j.add("seq_len", a.seq_len).add("dropout", a.dropout).add("tied", a.tied);
  } else {
    j.null("seq_len").null("dropout").null("tied");
  }
  j.add("warmup", a.warmup)
      .add("steps", static_cast<std::int64_t>(t.size()))
      .add("median_ms", t.quantile(0.5))
      .add("p10_ms", t.quantile(0.1))
      .add("p90_ms", t.quantile(0.9))
      .add("median_cpu_ms", t.cpu_quantile(0.5))
      .add("peak_rss_mb", peak_rss_mb())
      .add("compile_s", compile_s)
      .add("loss_first", loss_first)
      .add("loss_last", loss_last)
      .add("losses", losses);
  return j;
}

}  // namespace bench
