// bench/dist_bench.cpp — data-parallel training over MPI: the raw all-reduce of the MPI
// Communicator, and how much of the gradient all-reduce training steps hide behind backward.
//
//   mpirun --allow-run-as-root -np 2 ./dist_bench [--part raw|train|all] [--reps N]
//          [--min-kib K] [--max-kib K] [--models mlp,cnn,resnet18] [--buckets-kib 64,1024,25600]
//          [--threads N] [--batch B] [--warmup W] [--steps S]
//
// (1) raw: all_reduce (sum, f32) of 64 KiB .. 64 MiB, doubling; each repetition starts after a
//     barrier and its time is the slowest rank's; the median over --reps repetitions and the
//     bus bandwidth 2(n-1)/n * bytes / time (nccl-tests' "busbw") are printed.
// (2) train: for each model (mlp and cnn of examples/fashion_mnist/models.h, resnet18 of
//     bench/models.h) with --batch samples per rank (train_defaults below when 0), three
//     figures, medians over --steps steps after --warmup (slowest rank per step; the programs
//     take their steps in turn, so that load drifting on a shared machine touches all alike):
//       compute  the step of a Program compiled without a communicator, every rank stepping
//                its own at the same time (so the ranks share the cores as in (dp));
//       dp       the step with CompileOptions::data_parallel over all ranks and bucket_bytes;
//       comm     the buckets' collectives alone, outside any step: the bucket layout of
//                bucket_gradients.h (parameters in reverse creation order, a bucket closed once
//                it holds bucket_bytes), each bucket copied into one flat buffer, all-reduced,
//                scaled by 1/n and copied back, as runtime/cpu/collective.cpp does.
//     overlap = 1 - (dp - compute) / comm, clamped to [0, 1]: the share of the communication
//     hidden behind backward (0 when dp costs compute + comm or more). The data-parallel
//     Program's arena has one slot more than --threads (for the waiting collective), which
//     compute may use when no collective waits; so the step alone with --threads + 1
//     (compute+1) is timed as well, and the overlap against it printed next to the first.
// Rank 0 prints everything; the run's setting (host, cores, ranks, threads per rank, load)
// comes first. See README.md "Data-parallel" and run_dist_bench.sh.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <trainrt/dist_mpi.hpp>
#include <trainrt/trainrt.hpp>

#include "bench_util.h"
#include "fashion_mnist/models.h"
#include "models.h"

namespace {

namespace tr = trainrt;
using Clock = std::chrono::steady_clock;
constexpr double kKiB = 1024.0, kMiB = 1024.0 * 1024.0;

/// Command-line settings.
struct Args {
  std::string part = "all";  ///< raw, train or all
  int reps = 20;             ///< raw: timed repetitions per size; train: of the comm timing
  std::int64_t min_kib = 64, max_kib = 64 * 1024;
  std::vector<std::string> models = {"mlp", "cnn", "resnet18"};
  std::vector<std::int64_t> buckets_kib = {64, 256, 1024, 4096, 25600};
  int threads = 1;             ///< CompileOptions::threads of every Program
  std::int64_t batch = 0;      ///< samples per rank; 0: the model's default
  int warmup = -1, steps = 0;  ///< -1 / 0: per model (below)
};

/// "a,b,,c" -> {"a", "b", "c"}.
std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// Parses the flags of the header comment; throws std::invalid_argument with the usage.
Args parse(int argc, char** argv) {
  const std::string usage = std::string("usage: ") + argv[0] +
                            " [--part raw|train|all] [--reps N] [--min-kib K] [--max-kib K] [--models a,b]"
                            " [--buckets-kib K1,K2] [--threads N] [--batch B] [--warmup W] [--steps S]";
  auto number = [&](const std::string& flag, const std::string& text, std::int64_t least) {
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (end == text.c_str() || *end != '\0' || v < least)
      throw std::invalid_argument(flag + " wants an integer >= " + std::to_string(least) + ", got '" + text + "'\n" +
                                  usage);
    return static_cast<std::int64_t>(v);
  };
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") throw std::invalid_argument(usage);
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + flag + "\n" + usage);
    const std::string value = argv[++i];
    if (flag == "--part") {
      if (value != "raw" && value != "train" && value != "all")
        throw std::invalid_argument("--part wants raw, train or all\n" + usage);
      a.part = value;
    } else if (flag == "--reps") {
      a.reps = static_cast<int>(number(flag, value, 1));
    } else if (flag == "--min-kib") {
      a.min_kib = number(flag, value, 1);
    } else if (flag == "--max-kib") {
      a.max_kib = number(flag, value, 1);
    } else if (flag == "--models") {
      a.models = split_commas(value);
      for (const std::string& m : a.models)
        if (m != "mlp" && m != "cnn" && m != "resnet18")
          throw std::invalid_argument("--models: unknown model '" + m + "' (mlp, cnn, resnet18)\n" + usage);
    } else if (flag == "--buckets-kib") {
      a.buckets_kib.clear();
      for (const std::string& k : split_commas(value)) a.buckets_kib.push_back(number(flag, k, 1));
    } else if (flag == "--threads") {
      a.threads = static_cast<int>(number(flag, value, 1));
    } else if (flag == "--batch") {
      a.batch = number(flag, value, 1);
    } else if (flag == "--warmup") {
      a.warmup = static_cast<int>(number(flag, value, 0));
    } else if (flag == "--steps") {
      a.steps = static_cast<int>(number(flag, value, 1));
    } else {
      throw std::invalid_argument("unknown flag " + flag + "\n" + usage);
    }
  }
  if (a.min_kib > a.max_kib) throw std::invalid_argument("--min-kib exceeds --max-kib\n" + usage);
  if (a.models.empty() || a.buckets_kib.empty())
    throw std::invalid_argument("--models and --buckets-kib need a value\n" + usage);
  return a;
}

/// Per-repetition times of this rank combined into the slowest rank's, then their median
/// (linear interpolation, as bench::StepTimes). Collective: every rank calls it with as many.
double slowest_median(tr::dist::Communicator& comm, std::vector<double> ms) {
  comm.all_reduce(ms.data(), ms.size(), tr::f64, tr::dist::ReduceOp::max);
  std::sort(ms.begin(), ms.end());
  const double pos = 0.5 * static_cast<double>(ms.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, ms.size() - 1);
  return ms[lo] + (pos - static_cast<double>(lo)) * (ms[hi] - ms[lo]);
}

/// Milliseconds from `start` to now.
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// 2(n-1)/n * bytes / time in GB/s (1e9 bytes), nccl-tests' bus bandwidth of an all-reduce.
double bus_gbps(double bytes, double ms, int world) {
  return ms > 0 ? 2.0 * (world - 1) / world * bytes / (ms * 1e-3) / 1e9 : 0.0;
}

/// The value after ": " of the first line of `path` starting with `prefix`, or the first
/// line when `prefix` is empty; "?" when there is none.
std::string read_first_line(const char* path, const std::string& prefix) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (prefix.empty() || line.rfind(prefix, 0) == 0) {
      const auto colon = line.find(':');
      return prefix.empty() || colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "?";
}

/// Where and how this run ran (rank 0 prints it).
void print_setting(const Args& a, int world) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const char* omp = std::getenv("OMP_NUM_THREADS");
  std::printf(
      "# dist_bench: %d ranks (MPI communicator, host memory), %d thread(s) per rank (CompileOptions::threads,"
      " OMP_NUM_THREADS=%s)\n",
      world, a.threads, omp ? omp : "unset");
  std::printf("# host %s, %ld cores online, %s\n", host, cores, read_first_line("/proc/cpuinfo", "model name").c_str());
  std::printf("# load average at start: %s\n", read_first_line("/proc/loadavg", "").c_str());
  cpu_set_t mask;
  CPU_ZERO(&mask);
  const int allowed = sched_getaffinity(0, sizeof mask, &mask) == 0 ? CPU_COUNT(&mask) : static_cast<int>(cores);
  std::printf("# rank 0 may run on %d of the cores (affinity)\n", allowed);
  if (allowed < a.threads + 1)
    std::printf(
        "# WARNING: rank 0 is bound to %d core(s): oneTBB then starts no worker for the collective's extra"
        " slot and nothing overlaps; run with `mpirun --bind-to none` (run_dist_bench.sh does)\n",
        allowed);
  const long busy = static_cast<long>(world) * (a.threads + 1);
  if (busy > cores)
    std::printf(
        "# NOTE: %d ranks x (%d compute thread(s) + the thread waiting on the collective) = %ld busy threads on %ld"
        " cores:\n#       the ranks share the cores, so communication competes with backward for CPU time"
        " and overlap is bounded by that, not only by the schedule.\n",
        world, a.threads, busy, cores);
}

// ---- (1) raw all-reduce -----------------------------------------------------------------

/// Part (1): prints the all-reduce table (rank 0). Collective.
void raw_all_reduce(const Args& a, tr::dist::Communicator& comm) {
  const int world = comm.size();
  if (comm.rank() == 0) {
    std::printf(
        "\n## all_reduce (sum, f32) of the MPI communicator: median of %d repetitions (after 2 untimed), each"
        " the slowest rank's time after a barrier\n",
        a.reps);
    std::printf("%12s %12s %12s %14s %14s\n", "bytes", "KiB", "median ms", "algbw GB/s", "busbw GB/s");
  }
  for (std::int64_t kib = a.min_kib; kib <= a.max_kib; kib *= 2) {
    const auto count = static_cast<std::size_t>(kib * 1024 / 4);
    std::vector<float> data(count, 1.0f);
    std::vector<double> ms;
    for (int r = -2; r < a.reps; ++r) {
      comm.barrier();
      const Clock::time_point start = Clock::now();
      comm.all_reduce(data.data(), count, tr::f32, tr::dist::ReduceOp::sum);
      if (r >= 0) ms.push_back(ms_since(start));
    }
    const double median = slowest_median(comm, ms);
    const double bytes = static_cast<double>(count) * 4.0;
    if (comm.rank() == 0)
      std::printf("%12.0f %12lld %12.3f %14.3f %14.3f\n", bytes, static_cast<long long>(kib), median,
                  bytes / (median * 1e-3) / 1e9, bus_gbps(bytes, median, world));
    std::fflush(stdout);
  }
}

// ---- (2) training steps -----------------------------------------------------------------

/// Per-model defaults: the samples each rank trains on and how many steps.
bench::ModelDefaults train_defaults(const std::string& model) {
  if (model == "resnet18") return {16, 2, 10};
  if (model == "cnn") return {64, 5, 20};
  return {64, 10, 50};  // mlp
}

/// The optimizer of each model, as in step_bench.cpp.
tr::optim::Optimizer model_optimizer(const std::string& model) {
  if (model == "cnn" || model == "resnet18") return tr::optim::Adam{.lr = 1e-3};
  return tr::optim::SGD{.lr = 0.05, .momentum = 0.9};
}

/// One model's graph with its local batch, and this rank's batches.
struct Bench {
  bench::BenchArgs args;
  tr::Graph g;
  tr::Value loss;
  std::vector<bench::HostBatch> host;
  std::vector<tr::Feeds> feeds;

  Bench(const std::string& model, std::int64_t batch, int rank) {
    args.model = model;
    args.batch = batch;
    const tr::Shape xs(bench::input_dims(args)), ys(bench::label_dims(args));
    const tr::Value x = g.input("x", xs), y = g.input("y", ys, tr::i64);
    loss = model == "resnet18" ? bench_models::build_resnet18(g, x, y).loss : fashion::build_model(model, g, x, y).loss;
    host = bench::make_batches(args, bench::kDataSeed + static_cast<std::uint32_t>(rank));  // each rank its own data
    for (bench::HostBatch& b : host)
      feeds.push_back({{"x", tr::Tensor::borrow(b.images.data(), xs, tr::f32)},
                       {"y", tr::Tensor::borrow(b.labels.data(), ys, tr::i64)}});
  }
};

/// Median step times (slowest rank per step) of `programs`, stepped in turn: each timed
/// round steps every program once, each step after a barrier, so that a change of load on a
/// shared machine touches all of them alike. Element i is programs[i].
std::vector<double> time_steps(const std::vector<tr::Program*>& programs, const Bench& b, int warmup, int steps,
                               tr::dist::Communicator& comm) {
  std::size_t next = 0;
  for (int i = 0; i < warmup; ++i, ++next)
    for (tr::Program* p : programs) p->step(b.feeds[next % b.feeds.size()]).get();
  std::vector<std::vector<double>> ms(programs.size());
  for (int i = 0; i < steps; ++i, ++next)
    for (std::size_t k = 0; k < programs.size(); ++k) {
      comm.barrier();
      const Clock::time_point start = Clock::now();
      programs[k]->step(b.feeds[next % b.feeds.size()]).get();
      ms[k].push_back(ms_since(start));
    }
  std::vector<double> medians;
  for (std::vector<double>& m : ms) medians.push_back(slowest_median(comm, std::move(m)));
  return medians;
}

/// The bucket layout of passes/bucket_gradients.h (plan_buckets) for parameters of `bytes`
/// in creation order: reverse order, a bucket closed once it holds at least `bucket_bytes`.
/// (Every parameter here is f32, so no bucket is closed for a change of dtype.)
std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<std::size_t>& bytes, std::size_t bucket_bytes) {
  std::vector<std::vector<std::size_t>> buckets(1);
  std::size_t filled = 0;
  for (std::size_t k = bytes.size(); k-- > 0;) {
    buckets.back().push_back(k);
    filled += bytes[k];
    if (filled >= bucket_bytes && k > 0) buckets.emplace_back(), filled = 0;
  }
  return buckets;
}

/// Per-bucket medians (ms) of the buckets' collectives outside a step, as the all_reduce
/// kernel runs them: copy the members into one flat buffer, all-reduce, scale by 1/n, copy
/// back. Element b of the result is bucket b; the last element is the whole sequence.
std::vector<double> time_buckets(const std::vector<std::vector<std::size_t>>& buckets,
                                 const std::vector<std::size_t>& bytes, int reps, tr::dist::Communicator& comm) {
  std::vector<std::vector<float>> grads;
  for (std::size_t b : bytes) grads.emplace_back(b / 4, 0.5f);
  std::vector<float> flat;
  std::vector<std::vector<double>> ms(buckets.size() + 1);
  const float scale = 1.0f / static_cast<float>(comm.size());
  for (int r = -2; r < reps; ++r) {
    comm.barrier();
    const Clock::time_point all = Clock::now();
    for (std::size_t b = 0; b < buckets.size(); ++b) {
      const Clock::time_point start = Clock::now();
      std::size_t n = 0;
      for (std::size_t k : buckets[b]) n += grads[k].size();
      flat.resize(n);
      float* p = flat.data();
      for (std::size_t k : buckets[b]) p = std::copy(grads[k].begin(), grads[k].end(), p);
      comm.all_reduce(flat.data(), n, tr::f32, tr::dist::ReduceOp::sum);
      for (float& v : flat) v *= scale;
      p = flat.data();
      for (std::size_t k : buckets[b]) std::copy(p, p + grads[k].size(), grads[k].begin()), p += grads[k].size();
      if (r >= 0) ms[b].push_back(ms_since(start));
    }
    if (r >= 0) ms.back().push_back(ms_since(all));
  }
  std::vector<double> medians;
  for (std::vector<double>& m : ms) medians.push_back(slowest_median(comm, std::move(m)));
  return medians;
}

/// Part (2): prints the training table (rank 0). Collective.
void train(const Args& a, const std::shared_ptr<tr::dist::Communicator>& comm) {
  const int rank = comm->rank(), world = comm->size();
  if (rank == 0) {
    std::printf(
        "\n## training steps: medians over the timed steps (each the slowest rank's, after a barrier);"
        " comm = the buckets' collectives alone, median of %d repetitions\n",
        a.reps);
    std::printf(
        "# compute: the step without a communicator, %d thread(s); compute+1: with %d, the data-parallel\n"
        "# Program's arena size; overlap%% = 1 - (dp - compute) / comm, overlap+1%% the same against compute+1\n",
        a.threads, a.threads + 1);
    std::printf("%-9s %6s %8s %11s %8s %11s %11s %10s %10s %9s %9s\n", "model", "batch", "params", "bucket_KiB",
                "buckets", "compute_ms", "compute+1", "dp_ms", "comm_ms", "overlap%", "overlap+1%");
  }
  for (const std::string& model : a.models) {
    const bench::ModelDefaults d = train_defaults(model);
    const std::int64_t batch = a.batch > 0 ? a.batch : d.batch;
    const int warmup = a.warmup >= 0 ? a.warmup : d.warmup, steps = a.steps > 0 ? a.steps : d.steps;
    Bench b(model, batch, rank);

    tr::Program alone = tr::compile(b.g, b.loss, model_optimizer(model), {.threads = a.threads, .seed = 0});
    std::vector<std::size_t> bytes;
    std::size_t total = 0;
    for (const std::string& name : alone.variables(tr::VariableKind::parameter))
      bytes.push_back(alone.get(name).nbytes()), total += bytes.back();

    // One data-parallel Program per bucket size that gives a new layout.
    std::vector<std::int64_t> kibs;
    std::vector<std::vector<std::vector<std::size_t>>> layouts;
    std::vector<tr::Program> dps;
    for (std::int64_t kib : a.buckets_kib) {
      const auto bucket_bytes = static_cast<std::size_t>(kib) * 1024;
      auto buckets = plan_buckets(bytes, bucket_bytes);
      if (buckets.size() == 1 && !layouts.empty() && layouts.back().size() == 1) continue;  // one bucket again
      tr::CompileOptions o{.threads = a.threads, .seed = 0};
      o.data_parallel = {.communicator = comm, .bucket_bytes = bucket_bytes};
      dps.push_back(tr::compile(b.g, b.loss, model_optimizer(model), o));
      kibs.push_back(kib);
      layouts.push_back(std::move(buckets));
    }
    // The data-parallel Program's task arena has one slot more than `threads` (for the
    // collective that waits); when no collective waits, compute can use it too. The same step
    // alone with threads + 1 shows how much that extra slot alone speeds the step up.
    tr::Program alone_plus = tr::compile(b.g, b.loss, model_optimizer(model), {.threads = a.threads + 1, .seed = 0});
    std::vector<tr::Program*> programs = {&alone, &alone_plus};
    for (tr::Program& p : dps) programs.push_back(&p);
    const std::vector<double> step_ms = time_steps(programs, b, warmup, steps, *comm);
    const double compute = step_ms[0], compute_plus = step_ms[1];

    for (std::size_t c = 0; c < layouts.size(); ++c) {
      const auto& buckets = layouts[c];
      const double dp_ms = step_ms[c + 2];
      const std::vector<double> per_bucket = time_buckets(buckets, bytes, a.reps, *comm);
      const double comm_ms = per_bucket.back();
      auto overlap = [&](double base) {
        return comm_ms > 0 ? std::clamp(1.0 - (dp_ms - base) / comm_ms, 0.0, 1.0) : 0.0;
      };
      if (rank != 0) continue;
      std::printf("%-9s %6lld %7.2fM %11lld %8zu %11.2f %11.2f %10.2f %10.2f %9.0f %9.0f\n", model.c_str(),
                  static_cast<long long>(batch), static_cast<double>(total) / 4e6, static_cast<long long>(kibs[c]),
                  buckets.size(), compute, compute_plus, dp_ms, comm_ms, 100.0 * overlap(compute),
                  100.0 * overlap(compute_plus));
      std::string detail = "    per bucket (backward order) KiB/ms:";
      for (std::size_t k = 0; k < buckets.size(); ++k) {
        std::size_t n = 0;
        for (std::size_t i : buckets[k]) n += bytes[i];
        char item[64];
        std::snprintf(item, sizeof item, " %.0f/%.3f", static_cast<double>(n) / kKiB, per_bucket[k]);
        detail += item;
      }
      std::printf("%s\n", detail.c_str());
      std::fflush(stdout);
    }
    if (rank == 0)
      std::printf("    (%s: %d ranks x batch %lld, %d warm-up + %d timed steps, %.1f MiB of f32 gradients)\n",
                  model.c_str(), world, static_cast<long long>(batch), warmup, steps,
                  static_cast<double>(total) / kMiB);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "dist_bench: %s\n", e.what());
    return 2;
  }
  try {
    const std::shared_ptr<tr::dist::Communicator> comm = tr::dist::mpi_communicator();
    if (comm->rank() == 0) print_setting(args, comm->size());
    if (args.part != "train") raw_all_reduce(args, *comm);
    if (args.part != "raw") train(args, comm);
    if (comm->rank() == 0) std::printf("# load average at end: %s\n", read_first_line("/proc/loadavg", "").c_str());
    return 0;
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "dist_bench: trainrt::Error (%s): %s\n", tr::to_string(e.kind()), e.what());
    std::fflush(stderr);
    std::_Exit(1);  // a collective may have failed: skip MPI's finalization (it could hang)
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_bench: %s\n", e.what());
    std::fflush(stderr);
    std::_Exit(1);
  }
}
