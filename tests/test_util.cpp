#include "test_util.h"

#include "ir/graph_impl.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

namespace trainrt::test {

int count(const detail::GraphImpl& g, detail::OpKind k) {
  int n = 0;
  for (const detail::Node& node : g.nodes()) n += !node.dead && node.kind == k;
  return n;
}

TempDir::TempDir() {
  namespace fs = std::filesystem;
  static std::atomic<int> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  const fs::path p = fs::temp_directory_path() / ("trainrt_test_" + std::to_string(::getpid()) + "_" +
                                                  std::to_string(now) + "_" + std::to_string(counter++));
  fs::create_directories(p);
  path_ = p.string();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(shape.numel()));
  for (double& x : v) x = u(rng);
  Tensor t = Tensor::empty(shape, dtype);
  for (std::size_t i = 0; i < v.size(); ++i) {
    double x = is_floating(dtype) ? v[i] : std::floor(v[i]);
    switch (dtype) {
      case DType::f64: t.data<double>()[i] = x; break;
      case DType::f32: t.data<float>()[i] = static_cast<float>(x); break;
      case DType::i32: t.data<std::int32_t>()[i] = static_cast<std::int32_t>(x); break;
      case DType::i64: t.data<std::int64_t>()[i] = static_cast<std::int64_t>(x); break;
      case DType::boolean: t.data<bool>()[i] = x >= (lo + hi) / 2; break;
      case DType::f16: t.data<Half>()[i] = to_half(static_cast<float>(x)); break;
      case DType::bf16: t.data<BFloat16>()[i] = to_bfloat16(static_cast<float>(x)); break;
    }
  }
  return t;
}

Shape random_shape(std::mt19937& rng, int rank, int max_dim) {
  std::uniform_int_distribution<int> d(1, max_dim);
  std::vector<std::int64_t> dims;
  for (int i = 0; i < rank; ++i) dims.push_back(d(rng));
  return Shape(dims);
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i) v[static_cast<std::size_t>(i)] = t.at(i);
  return v;
}

double closeness(const Tensor& a, const Tensor& b, double atol, double rtol) {
  EXPECT_EQ(a.shape().to_string(), b.shape().to_string());
  if (!(a.shape() == b.shape())) return 1e300;
  double worst = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.at(i), y = b.at(i);
    if (std::isnan(x) && std::isnan(y)) continue;
    const double r = std::abs(x - y) / (atol + rtol * std::abs(y));
    if (!(r <= worst)) worst = std::isnan(r) ? 1e300 : r;
  }
  return worst;
}

std::vector<Tensor> run_train(const Value& loss, const std::vector<Value>& fetches, const Feeds& feeds, int threads) {
  Program p = compile(loss.graph(), loss, optim::None{}, {.threads = threads, .outputs = fetches});
  return p.step(feeds).outputs();
}

void check_gradients(const GradCase& c, unsigned seed) {
  SCOPED_TRACE("gradient check '" + c.name + "', seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  Graph g;
  std::vector<Value> inputs;
  for (std::size_t i = 0; i < c.shapes.size(); ++i)
    inputs.push_back(g.input("in" + std::to_string(i), c.shapes[i], f64));
  const Value out = c.build(g, inputs);
  ASSERT_TRUE(is_floating(out.dtype())) << out.to_string();
  // Weights make every output element matter differently: loss = sum(w * cast(out)).
  const Value weights = g.constant(random_tensor(out.shape(), f64, rng, -1.0, 1.0));
  const Value loss = sum(mul(cast(out, f64), weights));
  const std::vector<Value> grads = gradients(loss, inputs);
  Program p = compile(g, loss, optim::None{}, {.outputs = grads});

  std::vector<Tensor> x;
  for (const Shape& s : c.shapes) x.push_back(random_tensor(s, f64, rng, c.lo, c.hi));
  auto feeds = [&] {
    Feeds f;
    for (std::size_t i = 0; i < x.size(); ++i) f.add("in" + std::to_string(i), x[i]);
    return f;
  };
  // step() returns the loss as float; fetching it as an output keeps all f64 digits.
  Program exact = compile(g, loss, optim::None{}, {.outputs = {loss}});
  auto f = [&] {
    exact.set_step_count(0);
    return exact.step(feeds()).outputs()[0].item();
  };
  p.set_step_count(0);
  const std::vector<Tensor> analytic = p.step(feeds()).outputs();
  constexpr double h = 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(x[i].numel()));
    std::iota(idx.begin(), idx.end(), 0);
    std::shuffle(idx.begin(), idx.end(), rng);
    if (static_cast<int>(idx.size()) > c.max_elements) idx.resize(static_cast<std::size_t>(c.max_elements));
    double* data = x[i].data<double>();
    for (std::int64_t j : idx) {
      const double saved = data[j];
      data[j] = saved + h;
      const double up = f();
      data[j] = saved - h;
      const double down = f();
      data[j] = saved;
      const double numeric = (up - down) / (2 * h);
      const double got = analytic[i].at(j);
      EXPECT_NEAR(got, numeric, c.atol + c.rtol * std::abs(numeric))
          << "input " << i << " " << c.shapes[i].to_string() << ", element " << j;
    }
  }
}

void expect_error(const std::function<void()>& fn, ErrorKind kind, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected trainrt::Error (" << to_string(kind) << ")";
  } catch (const Error& e) {
    EXPECT_EQ(to_string(e.kind()), std::string(to_string(kind))) << e.what();
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "missing '" << p << "' in: " << e.what();
  }
}

}  // namespace trainrt::test
