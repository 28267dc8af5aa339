// examples/consumer/main.cpp — the smallest complete use of an installed libtrainrt: a
// 16-32-4 MLP learns to classify synthetic points labelled by a fixed random linear
// "teacher" (label = argmax of W x), with SGD and momentum, for a few hundred steps.
//
// It prints the mean loss of the first and the last 20 steps and exits 0 only when the loss
// fell below half its starting value (1 otherwise, and on any trainrt::Error), so an install
// test can tell a working package from one that only links.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <vector>

#include <trainrt/trainrt.hpp>

namespace {

namespace tr = trainrt;

constexpr std::int64_t kFeatures = 16;
constexpr std::int64_t kHidden = 32;
constexpr std::int64_t kClasses = 4;
constexpr std::int64_t kSamples = 2048;
constexpr std::int64_t kBatch = 64;
constexpr int kSteps = 300;
constexpr int kWindow = 20;  // steps averaged at the start and at the end

struct Dataset {
  std::vector<float> x;         // [kSamples, kFeatures]
  std::vector<std::int64_t> y;  // [kSamples]
};

/// Points from a standard normal, labelled by the class whose teacher row scores highest.
Dataset make_dataset(std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> teacher(kClasses * kFeatures);
  for (float& w : teacher) w = normal(rng);
  Dataset d;
  d.x.resize(kSamples * kFeatures);
  d.y.resize(kSamples);
  for (std::int64_t i = 0; i < kSamples; ++i) {
    float* xi = &d.x[i * kFeatures];
    for (std::int64_t f = 0; f < kFeatures; ++f) xi[f] = normal(rng);
    std::vector<float> score(kClasses, 0.0f);
    for (std::int64_t c = 0; c < kClasses; ++c)
      for (std::int64_t f = 0; f < kFeatures; ++f) score[c] += teacher[c * kFeatures + f] * xi[f];
    d.y[i] = std::max_element(score.begin(), score.end()) - score.begin();
  }
  return d;
}

double mean(const std::vector<float>& v, std::size_t begin, std::size_t end) {
  double s = 0;
  for (std::size_t i = begin; i < end; ++i) s += v[i];
  return s / static_cast<double>(end - begin);
}

int run() {
  const Dataset data = make_dataset(7);

  tr::Graph g;
  const tr::Value x = g.input("x", {kBatch, kFeatures});
  const tr::Value y = g.input("y", {kBatch}, tr::i64);
  tr::nn::Linear fc1(g, "fc1", kFeatures, kHidden), fc2(g, "fc2", kHidden, kClasses);
  const tr::Value loss = tr::cross_entropy(fc2(tr::relu(fc1(x))), y);
  tr::Program program = tr::compile(g, loss, tr::optim::SGD{.lr = 0.1, .momentum = 0.9}, {.threads = 2, .seed = 1});

  std::vector<float> losses;
  losses.reserve(kSteps);
  const std::int64_t batches = kSamples / kBatch;
  for (int step = 0; step < kSteps; ++step) {
    const std::int64_t first = (step % batches) * kBatch;
    const std::vector<float> xb(data.x.begin() + first * kFeatures, data.x.begin() + (first + kBatch) * kFeatures);
    const std::vector<std::int64_t> yb(data.y.begin() + first, data.y.begin() + first + kBatch);
    const float l = program
                        .step({{"x", tr::Tensor::from_vector({kBatch, kFeatures}, xb)},
                               {"y", tr::Tensor::from_vector({kBatch}, yb)}})
                        .get();
    losses.push_back(l);
    if (step % 50 == 0 || step == kSteps - 1) std::printf("step %3d  loss %.4f\n", step, static_cast<double>(l));
  }

  const double start = mean(losses, 0, kWindow);
  const double end = mean(losses, losses.size() - kWindow, losses.size());
  const bool learned = end < 0.5 * start;
  std::printf("mean loss of the first %d steps %.4f, of the last %d steps %.4f: %s\n", kWindow, start, kWindow, end,
              learned ? "learned" : "did NOT learn (expected below half the start)");
  return learned ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const trainrt::Error& e) {
    std::fprintf(stderr, "trainrt_consumer: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainrt_consumer: unexpected error: %s\n", e.what());
  }
  return 1;
}
