// tests/test_util.h — helpers shared by the tests: random tensors, running a graph, and
// the finite-difference gradient check.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "trainrt/trainrt.hpp"

namespace trainrt::detail {
class GraphImpl;
enum class OpKind : std::uint16_t;
}  // namespace trainrt::detail

namespace trainrt::test {

/// Live nodes of kind `k` in an IR graph (tests that inspect what the passes made).
int count(const detail::GraphImpl& g, detail::OpKind k);

/// A directory of its own under the system temp directory (named after the process, the
/// time and a counter), removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const;
  std::string path() const { return path_; }

 private:
  std::string path_;
};

/// A tensor of `shape`/`dtype` with values drawn uniformly from [lo, hi) (integers: floor).
Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937& rng, double lo = -1.0, double hi = 1.0);
/// A random shape of rank `rank` with dimensions in [1, max_dim].
Shape random_shape(std::mt19937& rng, int rank, int max_dim = 4);
/// All elements as double.
std::vector<double> values(const Tensor& t);

/// Largest |a - b| / (atol + rtol * |b|) over elements; <= 1 means "close".
double closeness(const Tensor& a, const Tensor& b, double atol, double rtol);
#define EXPECT_CLOSE(a, b, atol, rtol) EXPECT_LE(::trainrt::test::closeness((a), (b), (atol), (rtol)), 1.0)

/// Runs `fetches` of the graph holding them once in training mode (optim::None: nothing is
/// updated), with `feeds`.
std::vector<Tensor> run_train(const Value& loss, const std::vector<Value>& fetches, const Feeds& feeds,
                              int threads = 0);

/// One case of the gradient check: the function maps the differentiable inputs (graph
/// inputs of dtype f64 with the given shapes) to any floating tensor; the check reduces it
/// to a scalar with fixed random weights, differentiates it with trainrt::gradients and
/// compares each gradient with central finite differences (h = 1e-6) of the compiled
/// program, element by element (a random subset of at most `max_elements` per input).
struct GradCase {
  std::string name;
  std::vector<Shape> shapes;
  std::function<Value(Graph&, const std::vector<Value>&)> build;
  double lo = -1.0, hi = 1.0;  // input values
  int max_elements = 48;
  double atol = 1e-6, rtol = 1e-5;
};
void check_gradients(const GradCase& c, unsigned seed = 1);

/// Expects `fn` to throw trainrt::Error of `kind` whose message contains every string of
/// `parts`.
void expect_error(const std::function<void()>& fn, ErrorKind kind, const std::vector<std::string>& parts);

}  // namespace trainrt::test
