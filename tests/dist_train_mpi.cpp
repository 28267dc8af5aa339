// tests/dist_train_mpi.cpp — data-parallel training over MPI ranks, for
// tests/dist_train_mpi_test.sh (and dist_mpi_test.sh for `match`).
//
//   dist_train_mpi match <steps> [shard]
//       Every rank trains an MLP on its part of each global batch (data-parallel over MPI,
//       with sharded optimizer state given `shard`) and, alone, the same MLP on the whole
//       batch; parameters and optimizer state are compared. Prints "rank R: match, max difference D"
//       and exits 0 when the parameters agree within 1e-5 + 1e-4 * |x|, else "MISMATCH" (1).
//   dist_train_mpi kill <timeout_ms>
//       Rank 1 dies (SIGKILL) in its third step; every other rank must end that step with a
//       trainrt::Error: "rank R: error after T ms: <message>" (exit 3).
//   dist_train_mpi differ
//       Rank 1 builds a wider hidden layer: every rank's compile() throws, naming the
//       difference: "rank R: compile error: <message>" (exit 3).
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "trainrt/dist_mpi.hpp"
#include "trainrt/trainrt.hpp"

namespace tr = trainrt;

namespace {

constexpr int kFeatures = 6, kClasses = 4, kRows = 12;  // the global batch

struct Mlp {
  tr::Graph g;
  tr::Value loss;
  Mlp(std::int64_t batch, std::int64_t hidden) {
    const tr::Value x = g.input("x", {batch, kFeatures});
    const tr::Value y = g.input("y", {batch}, tr::i64);
    tr::nn::Linear fc1(g, "fc1", kFeatures, hidden), fc2(g, "fc2", hidden, kClasses);
    loss = tr::cross_entropy(fc2(tr::tanh(fc1(x))), y);
  }
};

/// Rows [first, first + rows) of step s's global batch.
tr::Feeds batch(int s, int first, int rows) {
  std::mt19937 rng(static_cast<unsigned>(100 + s % 3));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(kRows * kFeatures);
  for (float& v : x) v = u(rng);
  std::vector<std::int64_t> y(kRows);
  for (int i = 0; i < kRows; ++i) {
    const float* row = x.data() + i * kFeatures;
    int best = 0;
    for (int k = 1; k < kClasses; ++k)
      if (row[k] + row[k + 2] > row[best] + row[best + 2]) best = k;
    y[static_cast<std::size_t>(i)] = best;
  }
  return {{"x", tr::Tensor::from_vector<float>(
                    {rows, kFeatures},
                    std::vector<float>(x.begin() + first * kFeatures, x.begin() + (first + rows) * kFeatures))},
          {"y", tr::Tensor::from_vector<std::int64_t>(
                    {rows}, std::vector<std::int64_t>(y.begin() + first, y.begin() + first + rows))}};
}

const tr::optim::Optimizer kOptimizer = tr::optim::Adam{.lr = 0.02};

int match(const std::shared_ptr<tr::dist::Communicator>& comm, int steps, bool shard) {
  const int rank = comm->rank(), world = comm->size();
  if (kRows % world != 0) {
    std::printf("rank %d: the global batch of %d rows does not split over %d ranks\n", rank, kRows, world);
    return 2;
  }
  const int rows = kRows / world;
  Mlp local(rows, 16), whole(kRows, 16);
  tr::CompileOptions o{.threads = 1, .seed = 5};
  o.data_parallel = {.communicator = comm, .bucket_bytes = 300, .shard_optimizer_state = shard};
  tr::Program dp = tr::compile(local.g, local.loss, kOptimizer, o);
  tr::Program ref = tr::compile(whole.g, whole.loss, kOptimizer, {.threads = 1, .seed = 5});
  float first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    dp.step(batch(s, rank * rows, rows));
    last = ref.step(batch(s, 0, kRows)).get();
    if (s == 0) first = last;
  }
  double worst = 0;
  // Parameters, and the optimizer state (gathered from every rank when sharded).
  std::vector<std::string> names = dp.variables(tr::VariableKind::parameter);
  for (const std::string& n : dp.variables(tr::VariableKind::optimizer))
    if (n.rfind("optim.", 0) != 0) names.push_back(n);
  for (const std::string& name : names) {
    const tr::Tensor a = dp.get(name), b = ref.get(name);
    for (std::int64_t i = 0; i < a.numel(); ++i)
      worst = std::max(worst, std::abs(a.at(i) - b.at(i)) / (1e-5 + 1e-4 * std::abs(b.at(i))));
  }
  const bool ok = worst <= 1.0 && last < first;
  std::printf("rank %d: %s, max difference %.3f of the tolerance, loss %.4f -> %.4f\n", rank, ok ? "match" : "MISMATCH",
              worst, first, last);
  return ok ? 0 : 1;
}

int kill(const std::shared_ptr<tr::dist::Communicator>& comm) {
  const int rank = comm->rank(), world = comm->size(), rows = kRows / world;
  Mlp m(rows, 16);
  tr::CompileOptions o{.threads = 1};
  o.data_parallel = {.communicator = comm};
  tr::Program p = tr::compile(m.g, m.loss, kOptimizer, o);
  for (int s = 0;; ++s) {
    if (rank == 1 && s == 2) std::raise(SIGKILL);
    const auto start = std::chrono::steady_clock::now();
    try {
      p.step(batch(s, rank * rows, rows));
    } catch (const tr::Error& e) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      std::printf("rank %d: error after %lld ms: %s\n", rank, static_cast<long long>(ms.count()), e.what());
      std::fflush(stdout);
      std::_Exit(3);  // the communicator is broken; skip MPI's finalization
    }
    if (s > 20) return 1;
  }
}

int differ(const std::shared_ptr<tr::dist::Communicator>& comm) {
  Mlp m(4, comm->rank() == 1 ? 20 : 16);
  tr::CompileOptions o;
  o.data_parallel = {.communicator = comm};
  try {
    tr::compile(m.g, m.loss, kOptimizer, o);
  } catch (const tr::Error& e) {
    std::printf("rank %d: compile error: %s\n", comm->rank(), e.what());
    return 3;
  }
  std::printf("rank %d: compiled\n", comm->rank());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "match" && argc >= 3)
      return match(tr::dist::mpi_communicator({.timeout = std::chrono::seconds(60)}), std::atoi(argv[2]),
                   argc > 3 && std::string(argv[3]) == "shard");
    if (mode == "kill" && argc >= 3)
      return kill(tr::dist::mpi_communicator({.timeout = std::chrono::milliseconds(std::atoll(argv[2]))}));
    if (mode == "differ") return differ(tr::dist::mpi_communicator());
  } catch (const tr::Error& e) {
    std::printf("rank ?: unexpected error: %s\n", e.what());
    return 4;
  }
  std::fprintf(stderr, "usage: %s match <steps> | kill <timeout_ms> | differ\n", argv[0]);
  return 2;
}
