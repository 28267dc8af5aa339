// ResNet and BERT against PyTorch: tests/python/nn_reference.py builds torchvision's
// resnet18 (CIFAR stem) and resnet50 and a Hugging Face-style BERT in plain torch, and saves
// their state_dicts with inputs and eval-mode outputs; each case loads the weights with
// load_weights() (strict: every name must match) and compares Program::evaluate() with them.
// Skipped, with the reason, when no python3 can import torch and torchvision.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "test_util.h"
#include "trainrt/checkpoint.hpp"
#include "trainrt/nn.hpp"

namespace trainrt {
namespace {

/// Runs the script once for the whole suite; `skip` or `failure` says why it gave nothing.
class NnReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();  // NOLINT(cppcoreguidelines-owning-memory): suite-lifetime fixture state
    std::vector<std::string> pythons;
    if (const char* env = std::getenv("TRAINRT_TEST_PYTHON")) pythons.emplace_back(env);
    pythons.insert(pythons.end(), {"python3", "/usr/bin/python3"});
    std::string reasons;
    for (const std::string& py : pythons) {
      const std::string log = dir_->file("log");
      const int rc = std::system((py + " " + NN_REFERENCE_SCRIPT + " " + dir_->path() + " > " + log + " 2>&1").c_str());
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      if (rc == 0) return;
      if (WIFEXITED(rc) && (WEXITSTATUS(rc) == 3 || WEXITSTATUS(rc) == 127)) {  // no torch / no such python
        reasons += py + ": " + text.str() + " ";
        continue;
      }
      *failure_ = py + " " + NN_REFERENCE_SCRIPT + " failed (status " + std::to_string(rc) + "): " + text.str();
      return;
    }
    *skip_ = "no python3 with torch and torchvision: " + reasons;
  }
  static void TearDownTestSuite() {
    delete dir_;  // NOLINT(cppcoreguidelines-owning-memory)
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_->empty()) GTEST_SKIP() << *skip_;
    ASSERT_TRUE(failure_->empty()) << *failure_;
  }
  static std::string file(const std::string& name) { return dir_->file(name); }

  static test::TempDir* dir_;
  static std::string* skip_;
  static std::string* failure_;
};
test::TempDir* NnReference::dir_ = nullptr;
std::string* NnReference::skip_ = new std::string();     // NOLINT(cppcoreguidelines-owning-memory)
std::string* NnReference::failure_ = new std::string();  // NOLINT(cppcoreguidelines-owning-memory)

/// The tensors of a *_io.safetensors file by name.
struct Io {
  explicit Io(const std::string& path) : file(path) {}
  Tensor operator[](const std::string& name) const {
    const detail::SafetensorsEntry* e = file.find(name);
    if (e == nullptr) ADD_FAILURE() << "no tensor " << name << " in " << file.where();
    return e ? file.read(*e) : Tensor();
  }
  detail::SafetensorsFile file;
};

/// Relative closeness: |a - b| <= 1e-4 (|b| + max |b|). The references are f32 computations
/// in another order (oneDNN vs PyTorch's kernels); measured differences are ~1e-6 relative.
void expect_matches(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  double peak = 0;
  for (const double v : test::values(want)) peak = std::max(peak, std::abs(v));
  const double c = test::closeness(got, want, 1e-4 * peak, 1e-4);
  EXPECT_LE(c, 1.0) << what << " differs from PyTorch (max |ref| " << peak << ")";
}

/// Strict load; returns the file names no variable took.
std::vector<std::string> load(Program& p, const std::string& path) {
  const LoadWeightsReport r = load_weights(p, path);
  EXPECT_TRUE(r.missing.empty());
  return r.unused;
}

/// Compiles a ResNet, loads `weights` and compares its eval logits with the file `io`'s.
void check_resnet(const nn::ResNetConfig& cfg, const Shape& input, const std::string& weights,
                  const std::string& io_path) {
  Graph g;
  const nn::ResNet net(g, cfg);
  const Value x = g.input("x", input);
  const Value logits = net(x);
  Program p = compile(g, mean(logits));
  const std::vector<std::string> unused = load(p, weights);
  // PyTorch's batch-norm counters are all that the model lacks.
  EXPECT_FALSE(unused.empty());
  for (const std::string& u : unused) EXPECT_NE(u.find("num_batches_tracked"), std::string::npos) << u;
  const Io io(io_path);
  expect_matches(p.evaluate({{"x", io["x"]}}, {logits})[0], io["logits"], weights + ": logits");
}

TEST_F(NnReference, Resnet18CifarMatchesTorchvision) {
  check_resnet(nn::resnet18(10, nn::ResNetConfig::Stem::cifar), {2, 3, 16, 16}, file("resnet18_cifar.safetensors"),
               file("resnet18_cifar_io.safetensors"));
}

TEST_F(NnReference, Resnet50MatchesTorchvision) {
  check_resnet(nn::resnet50(7), {2, 3, 32, 32}, file("resnet50.safetensors"), file("resnet50_io.safetensors"));
}

/// The script's BERT: vocab 40, H 32, 2 layers, 4 heads, intermediate 64, 16 positions.
nn::BertConfig reference_bert(double attention_dropout) {
  nn::BertConfig c;
  c.vocab_size = 40;
  c.hidden = 32;
  c.layers = 2;
  c.heads = 4;
  c.intermediate = 64;
  c.max_position = 16;
  c.attention_dropout = attention_dropout;
  return c;
}

TEST_F(NnReference, BertMaskedLmMatchesReference) {
  // attention_dropout > 0: the explicit attention path (identity dropout in evaluation).
  Graph g;
  const nn::BertForMaskedLM mlm(g, reference_bert(0.1));
  const Value ids = g.input("input_ids", {2, 7}, i64), types = g.input("token_type_ids", {2, 7}, i64);
  const Value mask = g.input("attention_mask", {2, 7}, boolean), pos = g.input("positions", {2, 3}, i64);
  const Value seq = mlm.bert(ids, types, mask).sequence;
  const Value logits = mlm.logits(ids, types, mask, pos);
  Program p = compile(g, mean(logits));
  std::vector<std::string> unused = load(p, file("bert.safetensors"));
  std::sort(unused.begin(), unused.end());
  EXPECT_EQ(unused, (std::vector<std::string>{"bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias",
                                              "classifier.weight"}));
  const Io io(file("bert_io.safetensors"));
  const Feeds f{{"input_ids", io["input_ids"]},
                {"token_type_ids", io["token_type_ids"]},
                {"attention_mask", io["attention_mask"]},
                {"positions", io["positions"]}};
  const std::vector<Tensor> r = p.evaluate(f, {seq, logits});
  expect_matches(r[0], io["sequence"], "BERT sequence output");
  expect_matches(r[1], io["mlm_logits"], "BERT masked-LM logits");
}

TEST_F(NnReference, BertClassifierMatchesReference) {
  // attention_dropout 0: the fused attention op.
  Graph g;
  const nn::BertForSequenceClassification cls(g, reference_bert(0.0), 3);
  const Value ids = g.input("input_ids", {2, 7}, i64), types = g.input("token_type_ids", {2, 7}, i64);
  const Value mask = g.input("attention_mask", {2, 7}, boolean);
  const Value seq = cls.bert(ids, types, mask).sequence;
  const Value logits = cls.logits(ids, types, mask);
  Program p = compile(g, mean(logits));
  std::vector<std::string> unused = load(p, file("bert.safetensors"));
  EXPECT_EQ(unused.size(), 5u);
  for (const std::string& u : unused) EXPECT_EQ(u.rfind("cls.predictions.", 0), 0u) << u;
  const Io io(file("bert_io.safetensors"));
  const Feeds f{{"input_ids", io["input_ids"]},
                {"token_type_ids", io["token_type_ids"]},
                {"attention_mask", io["attention_mask"]}};
  const std::vector<Tensor> r = p.evaluate(f, {seq, logits});
  expect_matches(r[0], io["sequence"], "BERT sequence output (fused attention)");
  expect_matches(r[1], io["cls_logits"], "BERT classifier logits");
}

}  // namespace
}  // namespace trainrt
