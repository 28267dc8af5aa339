// nn modules and models: parameter names and counts against torchvision / Hugging Face,
// argument errors naming the layer, and every module training a few steps on tiny inputs
// (the loss goes down) plus ResNet and BERT forward passes in evaluate().
//
// Contents: helpers; names and counts; errors; training; evaluation.
#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "test_util.h"
#include "trainrt/nn.hpp"

namespace trainrt {
namespace {

// ---- helpers ---------------------------------------------------------------------------------------

std::int64_t parameter_count(const Graph& g) {
  std::int64_t n = 0;
  for (const Value& p : g.parameters()) n += p.shape().numel();
  return n;
}

std::vector<std::string> parameter_names(const Program& p) { return p.variables(VariableKind::parameter); }

Tensor random_ids(const Shape& shape, std::int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<std::int64_t> d(0, count - 1);
  std::vector<std::int64_t> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = d(rng);
  return Tensor::from_vector<std::int64_t>(shape, v);
}

/// Runs `steps` training steps on the same feeds and returns the first and last loss.
std::pair<float, float> train(Program& p, const Feeds& feeds, int steps) {
  const float first = p.step(feeds).get();
  float last = first;
  for (int i = 1; i < steps; ++i) last = p.step(feeds).get();
  return {first, last};
}

void expect_trains(Program& p, const Feeds& feeds, int steps, double factor) {
  const auto [first, last] = train(p, feeds, steps);
  EXPECT_TRUE(std::isfinite(first) && std::isfinite(last));
  EXPECT_LT(last, first * factor) << "first " << first << ", last " << last;
}

// ---- names and counts ------------------------------------------------------------------------------

TEST(ResNetNames, Resnet18MatchesTorchvision) {
  Graph g;
  const nn::ResNet net(g, nn::resnet18());
  EXPECT_EQ(parameter_count(g), 11689512);  // sum(p.numel() for p in torchvision.models.resnet18().parameters())
  std::vector<std::string> expected{"conv1.weight", "bn1.weight", "bn1.bias"};
  for (int s = 1; s <= 4; ++s)
    for (int b = 0; b < 2; ++b) {
      const std::string n = "layer" + std::to_string(s) + "." + std::to_string(b) + ".";
      for (const char* leaf : {"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"})
        expected.push_back(n + leaf);
      if (s > 1 && b == 0)
        for (const char* leaf : {"downsample.0.weight", "downsample.1.weight", "downsample.1.bias"})
          expected.push_back(n + leaf);
    }
  expected.insert(expected.end(), {"fc.weight", "fc.bias"});
  // Names come from a compiled Program (creation order, as torchvision's state_dict).
  const Value x = g.input("x", {2, 3, 32, 32});
  Program p = compile(g, mean(net(x)));
  EXPECT_EQ(parameter_names(p), expected);
  EXPECT_EQ(p.get("layer3.0.downsample.1.running_var").shape(), Shape({256}));
  EXPECT_EQ(p.get("bn1.running_mean").shape(), Shape({64}));
  EXPECT_EQ(p.get("conv1.weight").shape(), Shape({64, 3, 7, 7}));
  EXPECT_EQ(p.get("fc.weight").shape(), Shape({1000, 512}));
}

TEST(ResNetNames, Resnet34And50Counts) {
  Graph g34, g50;
  const nn::ResNet r34(g34, nn::resnet34());
  const nn::ResNet r50(g50, nn::resnet50());
  EXPECT_EQ(parameter_count(g34), 21797672);
  EXPECT_EQ(parameter_count(g50), 25557032);
  EXPECT_EQ(g50.find("layer1.0.downsample.0.weight").shape(), Shape({256, 64, 1, 1}));  // 64 -> 256 channels
  EXPECT_EQ(g50.find("layer4.2.conv3.weight").shape(), Shape({2048, 512, 1, 1}));
  EXPECT_EQ(g50.find("layer2.0.conv2.weight").shape(), Shape({128, 128, 3, 3}));  // the stride-2 conv (v1.5)
  EXPECT_EQ(g50.find("fc.weight").shape(), Shape({1000, 2048}));
}

TEST(ResNetNames, PrefixAndCifarStem) {
  Graph g;
  nn::ResNetConfig c = nn::resnet18(10, nn::ResNetConfig::Stem::cifar);
  c.width = 8;
  const nn::ResNet net(g, c, "model");
  EXPECT_EQ(g.find("model.conv1.weight").shape(), Shape({8, 3, 3, 3}));
  EXPECT_EQ(g.find("model.layer4.1.bn2.running_mean").shape(), Shape({64}));
  EXPECT_EQ(g.find("model.fc.weight").shape(), Shape({10, 64}));
}

TEST(BertNames, BaseCountAndNames) {
  Graph g;
  const nn::BertModel bert(g, nn::bert_config("base", 30522));
  EXPECT_EQ(parameter_count(g), 109482240);  // transformers.BertModel(BertConfig()).num_parameters()
  EXPECT_EQ(g.parameters().size(), 5u + 12u * 16u + 2u);
}

TEST(BertNames, EveryNameOfATinyModel) {
  Graph g;
  nn::BertConfig c = nn::bert_config("tiny", 50);
  c.layers = 1;
  const nn::BertForMaskedLM mlm(g, c);
  std::vector<std::string> expected{"bert.embeddings.word_embeddings.weight",
                                    "bert.embeddings.position_embeddings.weight",
                                    "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                                    "bert.embeddings.LayerNorm.bias"};
  for (const char* leaf :
       {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"})
    for (const char* wb : {".weight", ".bias"}) expected.push_back(std::string("bert.encoder.layer.0.") + leaf + wb);
  expected.insert(expected.end(), {"cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                                   "cls.predictions.transform.LayerNorm.weight",
                                   "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"});
  std::vector<std::string> names;
  for (const Value& p : g.parameters()) names.push_back(p.to_string());
  ASSERT_EQ(names.size(), expected.size());
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_NE(names[i].find(expected[i]), std::string::npos) << names[i];

  Graph g2;
  const nn::BertForSequenceClassification cls(g2, c, 3);
  EXPECT_EQ(g2.find("bert.pooler.dense.weight").shape(), Shape({128, 128}));
  EXPECT_EQ(g2.find("classifier.weight").shape(), Shape({3, 128}));
  EXPECT_EQ(g2.find("classifier.bias").shape(), Shape({3}));
}

TEST(BertNames, Configurations) {
  const nn::BertConfig mini = nn::bert_config("mini", 1000);
  EXPECT_EQ(mini.layers, 4);
  EXPECT_EQ(mini.hidden, 256);
  EXPECT_EQ(mini.heads, 4);
  EXPECT_EQ(mini.intermediate, 1024);
  EXPECT_EQ(mini.vocab_size, 1000);
  const nn::BertConfig small = nn::bert_config("small", 7);
  EXPECT_EQ(small.layers, 4);
  EXPECT_EQ(small.hidden, 512);
  EXPECT_EQ(small.heads, 8);
  const nn::BertConfig base = nn::bert_config("base", 30522);
  EXPECT_EQ(base.layers, 12);
  EXPECT_EQ(base.intermediate, 3072);
}

TEST(ModuleNames, TorchNames) {
  Graph g;
  const nn::TransformerEncoderLayer layer(g, "enc", 16, 4, {.dim_feedforward = 32});
  EXPECT_EQ(g.find("enc.self_attn.in_proj_weight").shape(), Shape({48, 16}));
  EXPECT_EQ(g.find("enc.self_attn.in_proj_bias").shape(), Shape({48}));
  EXPECT_EQ(g.find("enc.self_attn.out_proj.weight").shape(), Shape({16, 16}));
  EXPECT_EQ(g.find("enc.linear1.weight").shape(), Shape({32, 16}));
  EXPECT_EQ(g.find("enc.linear2.bias").shape(), Shape({16}));
  EXPECT_EQ(g.find("enc.norm2.weight").shape(), Shape({16}));
  const nn::MLP mlp(g, "mlp", {4, 8, 8, 2}, nn::Activation::gelu, 0.1);
  EXPECT_EQ(g.find("mlp.0.weight").shape(), Shape({8, 4}));
  EXPECT_EQ(g.find("mlp.3.weight").shape(), Shape({8, 8}));
  EXPECT_EQ(g.find("mlp.6.bias").shape(), Shape({2}));
}

// ---- errors ----------------------------------------------------------------------------------------

TEST(NnErrors, BadArgumentsNameTheLayer) {
  Graph g;
  test::expect_error([&] { nn::MultiHeadAttention(g, "attn", 10, 3); }, ErrorKind::InvalidArgument,
                     {"MultiHeadAttention 'attn'", "10", "not divisible", "3"});
  test::expect_error([&] { nn::bert_config("huge", 100); }, ErrorKind::InvalidArgument,
                     {"huge", "tiny", "mini", "small", "base"});
  nn::BertConfig c = nn::bert_config("tiny", 10);
  c.heads = 3;
  test::expect_error([&] { nn::BertModel(g, c, "enc"); }, ErrorKind::InvalidArgument, {"BertModel 'enc'", "128", "3"});
  test::expect_error([&] { nn::Dropout(1.0); }, ErrorKind::InvalidArgument, {"Dropout", "[0, 1)"});
  test::expect_error([&] { nn::MLP(g, "m", {4}); }, ErrorKind::InvalidArgument, {"MLP 'm'", "two sizes"});
  nn::ResNetConfig r = nn::resnet18(10);
  r.layers[2] = 0;
  test::expect_error([&] { nn::ResNet(g, r, "net"); }, ErrorKind::InvalidArgument, {"ResNet 'net'", "layer3"});
  test::expect_error([&] { nn::TransformerEncoderLayer(g, "t", 8, 2, {.dropout = -0.5}); }, ErrorKind::InvalidArgument,
                     {"TransformerEncoderLayer 't'", "dropout"});
}

TEST(NnErrors, BadInputsNameTheLayer) {
  Graph g;
  nn::ResNetConfig rc = nn::resnet18(10, nn::ResNetConfig::Stem::cifar);
  rc.width = 4;
  const nn::ResNet net(g, rc, "r");
  test::expect_error([&] { net(g.input("gray", {2, 1, 8, 8})); }, ErrorKind::ShapeMismatch, {"ResNet 'r'", "[N, 3"});
  const nn::MultiHeadAttention attn(g, "a", 8, 2);
  const Value x = g.input("x", {2, 5, 8});
  test::expect_error(
      [&] {
        attn(x, x, x, g.input("m", {2, 4}, boolean));
      },
      ErrorKind::ShapeMismatch, {"MultiHeadAttention 'a'", "[2, 5]"});
  test::expect_error(
      [&] {
        attn(x, x, x, g.input("mf", {2, 5}));
      },
      ErrorKind::DTypeMismatch, {"MultiHeadAttention 'a'", "bool"});
  const nn::BertModel bert(g, nn::bert_config("tiny", 10), "b");
  test::expect_error([&] { bert(g.input("ids_f", {2, 5})); }, ErrorKind::DTypeMismatch, {"BertModel 'b'", "input_ids"});
  test::expect_error(
      [&] {
        bert(g.input("long", {1, 600}, i64));
      },
      ErrorKind::ShapeMismatch, {"BertModel 'b'", "600", "max_position 512"});
  const Value ids = g.input("ids", {2, 5}, i64);
  test::expect_error(
      [&] {
        bert(ids, g.input("types", {2, 4}, i64));
      },
      ErrorKind::ShapeMismatch, {"BertModel 'b'", "token_type_ids"});
}

// ---- training --------------------------------------------------------------------------------------

TEST(NnTraining, MlpTrains) {
  std::mt19937 rng(1);
  Graph g;
  const nn::MLP mlp(g, "mlp", {6, 16, 16, 3}, nn::Activation::gelu, 0.0);
  const Value x = g.input("x", {16, 6}), y = g.input("y", {16}, i64);
  Program p = compile(g, cross_entropy(mlp(x), y), optim::Adam{.lr = 0.03}, {.seed = 1});
  expect_trains(p, {{"x", test::random_tensor({16, 6}, f32, rng)}, {"y", random_ids({16}, 3, rng)}}, 30, 0.7);
}

TEST(NnTraining, MultiHeadAttentionTrains) {
  std::mt19937 rng(2);
  for (const bool cross : {false, true}) {
    Graph g;
    const nn::MultiHeadAttention attn(g, "attn", 8, 2, cross ? 0.1 : 0.0);
    const Value q = g.input("q", {2, 4, 8}), kv = g.input("kv", {2, 5, 8}), t = g.input("t", {2, 4, 8});
    const Value m = g.input("m", {2, 5}, boolean);
    const Value out = cross ? attn(q, kv, kv, m) : attn(kv, kv, kv, {}, true);
    const Value target = cross ? t : slice(concat({t, t}, 1), 1, 0, 5);
    Program p = compile(g, mean(pow(sub(out, target), 2.0)), optim::Adam{.lr = 0.02}, {.seed = 2});
    const Feeds f{{"q", test::random_tensor({2, 4, 8}, f32, rng)},
                  {"kv", test::random_tensor({2, 5, 8}, f32, rng)},
                  {"t", test::random_tensor({2, 4, 8}, f32, rng)},
                  {"m", Tensor::from_bools({2, 5}, {true, true, true, false, false, true, true, true, true, true})}};
    expect_trains(p, f, 20, 0.8);
  }
}

TEST(NnTraining, TransformerEncoderLayerTrainsPreAndPostNorm) {
  std::mt19937 rng(3);
  for (const bool norm_first : {false, true}) {
    Graph g;
    const nn::TransformerEncoderLayer layer(
        g, "enc", 8, 2,
        {.dim_feedforward = 16, .dropout = 0.1, .activation = nn::Activation::gelu, .norm_first = norm_first});
    const Value x = g.input("x", {2, 6, 8}), y = g.input("y", {2, 6}, i64);
    const Value m = g.input("m", {2, 6}, boolean);
    Program p = compile(g, cross_entropy(layer(x, m), y), optim::Adam{.lr = 0.01}, {.seed = 3});
    std::vector<bool> mask(12, true);
    mask[5] = false;
    expect_trains(p,
                  {{"x", test::random_tensor({2, 6, 8}, f32, rng)},
                   {"y", random_ids({2, 6}, 8, rng)},
                   {"m", Tensor::from_bools({2, 6}, mask)}},
                  20, 0.8);
  }
}

TEST(NnTraining, ResNetTrainsBothBlocks) {
  std::mt19937 rng(4);
  for (const auto block : {nn::ResNetConfig::Block::basic, nn::ResNetConfig::Block::bottleneck}) {
    Graph g;
    const nn::ResNetConfig c{
        .block = block, .layers = {1, 1, 1, 1}, .stem = nn::ResNetConfig::Stem::cifar, .num_classes = 4, .width = 4};
    const nn::ResNet net(g, c);
    const Value x = g.input("x", {4, 3, 8, 8}), y = g.input("y", {4}, i64);
    Program p = compile(g, cross_entropy(net(x), y), optim::SGD{.lr = 0.05, .momentum = 0.9}, {.seed = 4});
    expect_trains(p, {{"x", test::random_tensor({4, 3, 8, 8}, f32, rng)}, {"y", random_ids({4}, 4, rng)}}, 12, 0.7);
  }
}

/// A BERT small enough to compile and train in a second or two.
nn::BertConfig micro_bert() {
  nn::BertConfig c;
  c.vocab_size = 30;
  c.hidden = 16;
  c.layers = 2;
  c.heads = 2;
  c.intermediate = 32;
  c.max_position = 16;
  return c;
}

TEST(NnTraining, BertMaskedLmTrains) {
  std::mt19937 rng(5);
  Graph g;
  const nn::BertForMaskedLM mlm(g, micro_bert());
  const Value ids = g.input("ids", {2, 8}, i64), types = g.input("types", {2, 8}, i64);
  const Value mask = g.input("mask", {2, 8}, boolean);
  const Value pos = g.input("pos", {2, 3}, i64), labels = g.input("labels", {2, 3}, i64);
  Program p = compile(g, mlm.loss(ids, types, mask, pos, labels), optim::AdamW{.lr = 0.01}, {.seed = 5});
  std::vector<bool> m(16, true);
  m[14] = m[15] = false;
  const Feeds f{{"ids", random_ids({2, 8}, 30, rng)},
                {"types", random_ids({2, 8}, 2, rng)},
                {"mask", Tensor::from_bools({2, 8}, m)},
                {"pos", Tensor::from_vector<std::int64_t>({2, 3}, {1, 4, 6, 0, 2, 0})},
                {"labels", Tensor::from_vector<std::int64_t>({2, 3}, {3, 7, 11, 5, 9, -100})}};
  expect_trains(p, f, 20, 0.7);
}

TEST(NnTraining, BertClassifierTrains) {
  std::mt19937 rng(6);
  Graph g;
  const nn::BertForSequenceClassification cls(g, micro_bert(), 3);
  const Value ids = g.input("ids", {4, 6}, i64), y = g.input("y", {4}, i64);
  Program p = compile(g, cross_entropy(cls.logits(ids), y), optim::AdamW{.lr = 0.01}, {.seed = 6});
  expect_trains(p, {{"ids", random_ids({4, 6}, 30, rng)}, {"y", random_ids({4}, 3, rng)}}, 20, 0.7);
}

// ---- evaluation ------------------------------------------------------------------------------------

TEST(NnEvaluate, ResNetAndBertForward) {
  std::mt19937 rng(7);
  {
    Graph g;
    nn::ResNetConfig c = nn::resnet18(5);
    c.width = 4;
    const nn::ResNet net(g, c);
    const Value x = g.input("x", {2, 3, 32, 32}), y = g.input("y", {2}, i64);
    const Value logits = net(x);
    Program p = compile(g, cross_entropy(logits, y), optim::SGD{.lr = 0.1}, {.seed = 7});
    const Feeds f{{"x", test::random_tensor({2, 3, 32, 32}, f32, rng)}};
    const Tensor a = p.evaluate(f, {logits})[0];
    EXPECT_EQ(a.shape(), Shape({2, 5}));
    // Evaluation changes nothing: the same logits again.
    EXPECT_EQ(test::values(p.evaluate(f, {logits})[0]), test::values(a));
  }
  {
    Graph g;
    const nn::BertForSequenceClassification cls(g, micro_bert(), 2);
    const Value ids = g.input("ids", {2, 5}, i64), mask = g.input("mask", {2, 5}, boolean);
    const auto out = cls.bert(ids, {}, mask);
    const Value logits = cls.logits(ids, {}, mask);
    Program p = compile(g, mean(logits), optim::None{}, {.seed = 8});
    const Feeds f{
        {"ids", random_ids({2, 5}, 30, rng)},
        {"mask", Tensor::from_bools({2, 5}, {true, true, true, true, true, true, true, false, false, false})}};
    const std::vector<Tensor> r = p.evaluate(f, {out.sequence, out.pooled, logits});
    EXPECT_EQ(r[0].shape(), Shape({2, 5, 16}));
    EXPECT_EQ(r[1].shape(), Shape({2, 16}));
    EXPECT_EQ(r[2].shape(), Shape({2, 2}));
    for (const double v : test::values(r[1])) EXPECT_LE(std::abs(v), 1.0);  // tanh
  }
}

}  // namespace
}  // namespace trainrt
