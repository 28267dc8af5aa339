// tests/checkpoint_test.cpp — save_checkpoint / load_checkpoint / load_weights
// (trainrt/checkpoint.hpp): resuming reproduces the uninterrupted loss trajectory bit for bit
// (dropout and Adam included, data order restored with DataLoader::seek), bad checkpoints name
// the tensor and leave the Program unchanged, a failed save keeps the previous checkpoint, and
// weights written by Python's safetensors load by name.
//
// Contents: helpers; resume; metadata; bad checkpoints; atomic save; load_weights; Python.
#include <signal.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "test_util.h"

namespace trainrt {
namespace {

namespace fs = std::filesystem;
using data::Batch;
using data::DataLoader;
using data::Dataset;
using data::TensorDataset;

// ---- helpers ---------------------------------------------------------------------------------

/// x[8, 6] -> linear(6, hidden) -> relu -> dropout(0.3) -> linear(hidden, 3) -> cross_entropy(y).
struct DropNet {
  Graph g;
  Value loss;
  explicit DropNet(std::int64_t hidden = 16) {
    auto x = g.input("x", {8, 6});
    auto y = g.input("y", {8}, i64);
    nn::Linear fc1(g, "fc1", 6, hidden), fc2(g, "fc2", hidden, 3);
    loss = cross_entropy(fc2(dropout(relu(fc1(x)), 0.3)), y);
  }
};

const optim::Adam kAdam{.lr = 0.01, .schedule = optim::cosine(40, 3)};

Program compile_net(const DropNet& net, std::uint64_t seed = 9) {
  return compile(net.g, net.loss, kAdam, {.threads = 2, .seed = seed});
}

/// 40 samples: 5 batches of 8 per epoch.
std::shared_ptr<const Dataset> make_dataset() {
  std::mt19937 rng(4);
  std::vector<std::int64_t> labels(40);
  for (auto& l : labels) l = static_cast<std::int64_t>(rng() % 3);
  return std::make_shared<TensorDataset>(std::vector<std::pair<std::string, Tensor>>{
      {"x", test::random_tensor({40, 6}, f32, rng)}, {"y", Tensor::from_vector<std::int64_t>({40}, labels)}});
}

DataLoader make_loader(const std::shared_ptr<const Dataset>& ds) {
  return DataLoader(ds, 8, {.shuffle = true, .seed = 3});
}

std::vector<std::pair<std::string, Tensor>> snapshot(const Program& p) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (VariableKind k : {VariableKind::parameter, VariableKind::state, VariableKind::optimizer})
    for (const std::string& n : p.variables(k)) out.emplace_back(n, p.get(n));
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

void expect_same(const std::vector<std::pair<std::string, Tensor>>& a,
                 const std::vector<std::pair<std::string, Tensor>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(same_bits(a[i].second, b[i].second)) << a[i].first;
  }
}

bool same_float_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// A trained Program, saved to `path`.
void train_and_save(const DropNet& net, const std::string& path, int steps = 3) {
  Program p = compile_net(net);
  const auto ds = make_dataset();
  DataLoader loader = make_loader(ds);
  for (int i = 0; i < steps; ++i) p.step(loader.next().feeds);
  save_checkpoint(p, path, {.epoch = 0, .batch = steps});
}

/// Rewrites the safetensors file `in` to `out` after `edit` changed its tensors and metadata.
void rewrite(const std::string& in, const std::string& out,
             const std::function<void(std::vector<std::pair<std::string, Tensor>>&,
                                      std::map<std::string, std::string>&)>& edit) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> meta;
  {
    const detail::SafetensorsFile f(in);
    for (const auto& e : f.index().tensors) tensors.emplace_back(e.name, f.read(e));
    meta = f.index().metadata;
  }
  edit(tensors, meta);
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [n, t] : tensors) refs.emplace_back(n, &t);
  detail::write_safetensors(out, refs, meta);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- resume ----------------------------------------------------------------------------------

TEST(Checkpoint, ResumingReproducesTheUninterruptedLossTrajectoryBitForBit) {
  constexpr int kSteps = 12, kSplit = 7;  // 5 batches per epoch: the split is mid-epoch 1
  DropNet net;
  const auto ds = make_dataset();

  std::vector<float> uninterrupted;
  std::vector<std::pair<std::string, Tensor>> final_uninterrupted;
  {
    Program p = compile_net(net);
    DataLoader loader = make_loader(ds);
    for (int i = 0; i < kSteps; ++i) uninterrupted.push_back(p.step(loader.next().feeds).get());
    final_uninterrupted = snapshot(p);
  }

  test::TempDir dir;
  const std::string path = dir.file("run.ckpt");
  std::vector<float> resumed;
  {
    Program p = compile_net(net);
    DataLoader loader = make_loader(ds);
    CheckpointInfo info;
    for (int i = 0; i < kSplit; ++i) {
      const Batch& b = loader.next();
      resumed.push_back(p.step(b.feeds).get());
      const bool last = b.index + 1 == loader.batches_per_epoch();
      info.epoch = last ? b.epoch + 1 : b.epoch;
      info.batch = last ? 0 : b.index + 1;
    }
    EXPECT_EQ(info.epoch, 1);
    EXPECT_EQ(info.batch, 2);
    save_checkpoint(p, path, info);
  }
  {
    Program p = compile_net(net);  // a fresh Program: new initial weights, step 0
    const CheckpointInfo info = load_checkpoint(p, path);
    EXPECT_EQ(p.step_count(), kSplit);
    DataLoader loader = make_loader(ds);
    loader.seek(info.epoch, info.batch);
    for (int i = kSplit; i < kSteps; ++i) resumed.push_back(p.step(loader.next().feeds).get());
    expect_same(snapshot(p), final_uninterrupted);
  }
  ASSERT_EQ(resumed.size(), uninterrupted.size());
  for (int i = 0; i < kSteps; ++i)
    EXPECT_TRUE(same_float_bits(resumed[i], uninterrupted[i]))
        << "step " << i << ": " << resumed[i] << " vs " << uninterrupted[i];

  // The comparison can fail: resuming at the wrong step (other dropout masks, another learning
  // rate and bias correction) changes the losses.
  Program wrong = compile_net(net);
  load_checkpoint(wrong, path);
  wrong.set_step_count(0);
  DataLoader loader = make_loader(ds);
  loader.seek(1, 2);
  EXPECT_FALSE(same_float_bits(wrong.step(loader.next().feeds).get(), uninterrupted[kSplit]));
}

// ---- metadata --------------------------------------------------------------------------------

TEST(Checkpoint, StoresAndReturnsTheInfo) {
  DropNet net;
  Program p = compile_net(net);
  const auto ds = make_dataset();
  DataLoader loader = make_loader(ds);
  for (int i = 0; i < 4; ++i) p.step(loader.next().feeds);
  p.set_base_learning_rate(0.1 / 3);
  test::TempDir dir;
  save_checkpoint(p, dir.file("c"),
                  {.epoch = 3, .batch = 4, .user = {{"run", "alpha"}, {"note", "a \"quoted\"\nline"}}});

  const detail::SafetensorsFile f(dir.file("c"));
  std::size_t variables = 0;
  for (VariableKind k : {VariableKind::parameter, VariableKind::state, VariableKind::optimizer})
    variables += p.variables(k).size();
  EXPECT_EQ(f.index().tensors.size(), variables) << "every persistent variable is saved";
  EXPECT_NE(f.find("fc1.weight"), nullptr);

  Program q = compile_net(net);
  const CheckpointInfo info = load_checkpoint(q, dir.file("c"));
  EXPECT_EQ(info.epoch, 3);
  EXPECT_EQ(info.batch, 4);
  EXPECT_EQ(info.user, (std::map<std::string, std::string>{{"run", "alpha"}, {"note", "a \"quoted\"\nline"}}));
  EXPECT_EQ(info.step, 4);
  EXPECT_EQ(info.seed, 9u);
  EXPECT_EQ(info.base_learning_rate, 0.1 / 3) << "doubles are stored exactly";
  EXPECT_EQ(info.format_version, 1);
  EXPECT_FALSE(info.library_version.empty());
  EXPECT_EQ(q.base_learning_rate(), 0.1 / 3);
  expect_same(snapshot(q), snapshot(p));
}

TEST(Checkpoint, SaveRejectsANegativePosition) {
  DropNet net;
  Program p = compile_net(net);
  test::TempDir dir;
  test::expect_error([&] { save_checkpoint(p, dir.file("c"), {.epoch = -1}); }, ErrorKind::InvalidArgument,
                     {"data-loader position", "epoch -1"});
}

// ---- bad checkpoints -------------------------------------------------------------------------

/// Loads `path` into a fresh Program, expects the error, and checks the Program is unchanged.
void expect_load_error(const DropNet& net, const std::string& path, ErrorKind kind,
                       const std::vector<std::string>& parts, std::uint64_t seed = 9) {
  Program p = compile_net(net, seed);
  const auto before = snapshot(p);
  test::expect_error([&] { load_checkpoint(p, path); }, kind, parts);
  expect_same(snapshot(p), before);
  EXPECT_EQ(p.step_count(), 0);
}

TEST(Checkpoint, AMissingTensorIsNamedAndChangesNothing) {
  DropNet net;
  test::TempDir dir;
  train_and_save(net, dir.file("good"));
  rewrite(dir.file("good"), dir.file("bad"),
          [](auto& tensors, auto&) { std::erase_if(tensors, [](const auto& t) { return t.first == "fc2.bias"; }); });
  expect_load_error(net, dir.file("bad"), ErrorKind::NotFound, {"bad", "lacks parameter \"fc2.bias\""});
}

TEST(Checkpoint, AShapeMismatchIsNamedAndChangesNothing) {
  DropNet wide(16), narrow(12);
  test::TempDir dir;
  train_and_save(wide, dir.file("wide"));
  expect_load_error(narrow, dir.file("wide"), ErrorKind::ShapeMismatch,
                    {"wide", "tensor \"fc1.weight\" is f32[16,6] in the checkpoint, but f32[12,6] in the Program"});
}

TEST(Checkpoint, ADTypeMismatchIsNamed) {
  DropNet net;
  test::TempDir dir;
  train_and_save(net, dir.file("good"));
  rewrite(dir.file("good"), dir.file("bad"), [](auto& tensors, auto&) {
    for (auto& [n, t] : tensors)
      if (n == "fc1.bias") t = t.to(f64);
  });
  expect_load_error(net, dir.file("bad"), ErrorKind::DTypeMismatch, {"tensor \"fc1.bias\" is f64[16]"});
}

TEST(Checkpoint, AnExtraTensorIsNamed) {
  DropNet net;
  test::TempDir dir;
  train_and_save(net, dir.file("good"));
  rewrite(dir.file("good"), dir.file("bad"),
          [](auto& tensors, auto&) { tensors.emplace_back("fc3.weight", Tensor::zeros({2}, f32)); });
  expect_load_error(net, dir.file("bad"), ErrorKind::InvalidArgument, {"holds tensor \"fc3.weight\""});
}

TEST(Checkpoint, AnotherSeedIsRefused) {
  DropNet net;
  test::TempDir dir;
  train_and_save(net, dir.file("good"));
  expect_load_error(net, dir.file("good"), ErrorKind::InvalidArgument, {"seed 9", "this one has seed 10"}, 10);
}

TEST(Checkpoint, DamagedAndForeignFilesAreRefused) {
  DropNet net;
  test::TempDir dir;
  train_and_save(net, dir.file("good"));
  const std::string bytes = read_all(dir.file("good"));
  {
    std::ofstream(dir.file("truncated"), std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 10));
  }
  expect_load_error(net, dir.file("truncated"), ErrorKind::Io, {"truncated", "run past the end of the data section"});
  expect_load_error(net, dir.file("absent"), ErrorKind::NotFound, {"absent"});

  rewrite(dir.file("good"), dir.file("foreign"), [](auto&, auto& meta) { meta.clear(); });
  expect_load_error(net, dir.file("foreign"), ErrorKind::InvalidArgument,
                    {"not a libtrainrt checkpoint", "load_weights"});
  rewrite(dir.file("good"), dir.file("newer"), [](auto&, auto& meta) { meta["trainrt.format_version"] = "2"; });
  expect_load_error(net, dir.file("newer"), ErrorKind::Unsupported, {"format version 2 is not supported"});
  rewrite(dir.file("good"), dir.file("badstep"), [](auto&, auto& meta) { meta["trainrt.step"] = "12x"; });
  expect_load_error(net, dir.file("badstep"), ErrorKind::Io, {"'trainrt.step' is \"12x\", not a number"});
  rewrite(dir.file("good"), dir.file("nostep"), [](auto&, auto& meta) { meta.erase("trainrt.step"); });
  expect_load_error(net, dir.file("nostep"), ErrorKind::Io, {"lacks 'trainrt.step'"});
}

// ---- atomic save -----------------------------------------------------------------------------

TEST(Checkpoint, AFailedSaveKeepsThePreviousCheckpointAndNoTemporary) {
  DropNet net;
  test::TempDir dir;
  const std::string path = dir.file("run.ckpt");
  Program p = compile_net(net);
  save_checkpoint(p, path, {.epoch = 0, .batch = 0});
  const auto ds = make_dataset();
  DataLoader loader = make_loader(ds);
  p.step(loader.next().feeds);
  {
    // Writes past 1 KiB fail (EFBIG): the new checkpoint's temporary cannot be completed.
    rlimit old{};
    getrlimit(RLIMIT_FSIZE, &old);
    const auto old_handler = signal(SIGXFSZ, SIG_IGN);
    rlimit lim = old;
    lim.rlim_cur = 1024;
    setrlimit(RLIMIT_FSIZE, &lim);
    test::expect_error([&] { save_checkpoint(p, path, {.epoch = 0, .batch = 1}); }, ErrorKind::Io,
                       {"run.ckpt", "cannot write"});
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"run.ckpt"}) << "no temporary is left behind";
  Program q = compile_net(net);
  EXPECT_EQ(load_checkpoint(q, path).step, 0) << "the previous checkpoint is intact";

  test::expect_error([&] { save_checkpoint(p, dir.file("missing/dir/run.ckpt")); }, ErrorKind::Io,
                     {"missing/dir", "No such file or directory"});
}

// ---- load_weights ----------------------------------------------------------------------------

/// Writes `tensors` as a plain safetensors file (no checkpoint metadata).
void write_weights(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [n, t] : tensors) refs.emplace_back(n, &t);
  detail::write_safetensors(path, refs, {{"format", "pt"}});
}

TEST(LoadWeights, LoadsByNameWithPrefixesAndConversions) {
  DropNet net;
  Program p = compile_net(net);
  std::mt19937 rng(2);
  const Tensor w1 = test::random_tensor({16, 6}, f64, rng), b1 = test::random_tensor({16}, bf16, rng);
  const Tensor w2 = test::random_tensor({3, 16}, f32, rng), b2 = test::random_tensor({3}, f16, rng);
  test::TempDir dir;
  write_weights(dir.file("w"), {{"model.fc1.weight", w1},
                                {"model.fc1.bias", b1},
                                {"model.fc2.weight", w2},
                                {"model.fc2.bias", b2},
                                {"model.step_counter", Tensor::zeros({}, i64)}});
  const auto optimizer_before = p.get(p.variables(VariableKind::optimizer).at(0));
  const LoadWeightsReport r = load_weights(p, dir.file("w"), {.strip_prefix = "model."});
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_TRUE(r.missing.empty());
  EXPECT_EQ(r.unused, std::vector<std::string>{"model.step_counter"});
  EXPECT_TRUE(same_bits(p.get("fc1.weight"), w1.to(f32)));
  EXPECT_TRUE(same_bits(p.get("fc1.bias"), b1.to(f32)));
  EXPECT_TRUE(same_bits(p.get("fc2.weight"), w2));
  EXPECT_TRUE(same_bits(p.get("fc2.bias"), b2.to(f32)));
  EXPECT_TRUE(same_bits(p.get(p.variables(VariableKind::optimizer).at(0)), optimizer_before))
      << "optimizer state untouched";
  EXPECT_EQ(p.step_count(), 0);

  // Prefix rules together: "model.fc1.weight" -> "weight" -> "fc1.weight"; the fc2 tensors
  // become "fc1.model.fc2.*", which match nothing (not strict: reported missing).
  Program q = compile_net(net);
  const LoadWeightsReport r2 =
      load_weights(q, dir.file("w"), {.strict = false, .strip_prefix = "model.fc1.", .add_prefix = "fc1."});
  EXPECT_EQ(r2.loaded, (std::vector<std::string>{"fc1.weight", "fc1.bias"}));
  EXPECT_EQ(r2.missing, (std::vector<std::string>{"fc2.weight", "fc2.bias"}));
}

TEST(LoadWeights, ErrorsNameTheTensorAndChangeNothing) {
  DropNet net;
  test::TempDir dir;
  std::mt19937 rng(2);
  const Tensor w1 = test::random_tensor({16, 6}, f32, rng), b1 = test::random_tensor({16}, f32, rng);
  const Tensor w2 = test::random_tensor({3, 16}, f32, rng), b2 = test::random_tensor({3}, f32, rng);
  auto check = [&](const std::vector<std::pair<std::string, Tensor>>& file, const LoadWeightsOptions& o, ErrorKind kind,
                   const std::vector<std::string>& parts) {
    write_weights(dir.file("w"), file);
    Program p = compile_net(net);
    const auto before = snapshot(p);
    test::expect_error([&] { load_weights(p, dir.file("w"), o); }, kind, parts);
    expect_same(snapshot(p), before);
  };
  check({{"fc1.weight", w1}, {"fc1.bias", b1}, {"fc2.weight", w2}}, {}, ErrorKind::NotFound,
        {"no tensor \"fc2.bias\" for the Program's parameter \"fc2.bias\""});
  check({{"m.fc1.weight", w1}, {"m.fc1.bias", b1}, {"m.fc2.weight", w2}}, {.strip_prefix = "m."}, ErrorKind::NotFound,
        {"no tensor \"m.fc2.bias\""});
  check({{"fc1.weight", w1}, {"fc1.bias", b1}, {"fc2.weight", w2.reshape({16, 3})}, {"fc2.bias", b2}}, {},
        ErrorKind::ShapeMismatch, {"tensor \"fc2.weight\" is f32[16,3] in the file", "f32[3,16]"});
  check({{"fc1.weight", w1}, {"fc1.bias", b1}, {"fc2.weight", w2}, {"fc2.bias", Tensor::zeros({3}, i64)}}, {},
        ErrorKind::DTypeMismatch, {"tensor \"fc2.bias\" is i64[3]"});
  check({{"fc1.weight", w1}, {"fc1.bias", b1.to(f16)}, {"fc2.weight", w2}, {"fc2.bias", b2}}, {.convert_dtypes = false},
        ErrorKind::DTypeMismatch, {"tensor \"fc1.bias\" is f16[16]", "convert_dtypes is off"});
  check({{"a.fc1.weight", w1}, {"fc1.weight", w1}}, {.strip_prefix = "a."}, ErrorKind::InvalidArgument,
        {"\"a.fc1.weight\" and \"fc1.weight\" both map to \"fc1.weight\""});
}

// ---- a file written by Python ------------------------------------------------------------------

TEST(LoadWeights, LoadsWeightsWrittenByPythonSafetensors) {
  test::TempDir dir;
  const std::string script = dir.file("make.py"), path = dir.file("model.safetensors");
  {
    std::ofstream(script) << R"PY(
import sys
try:
    import numpy as np
    from safetensors.numpy import save_file
except ImportError as e:
    print(e)
    sys.exit(3)
# A PyTorch-style state dict of a wrapped module ("model." prefix), mixed dtypes, plus a buffer
# libtrainrt does not have.
save_file({
    "model.fc1.weight": (np.arange(96, dtype=np.float64).reshape(16, 6) / 64 - 0.7),
    "model.fc1.bias": np.arange(16, dtype=np.float16) / 8 - 1,
    "model.fc2.weight": (np.arange(48, dtype=np.float32).reshape(3, 16) / 100),
    "model.fc2.bias": np.array([0.5, -0.25, 0.125], dtype=np.float32),
    "model.num_batches_tracked": np.array(7, dtype=np.int64),
}, sys.argv[1], metadata={"format": "pt"})
)PY";
  }
  const int rc = std::system(("python3 " + script + " " + path + " > " + dir.file("log") + " 2>&1").c_str());
  if (rc != 0)
    GTEST_SKIP() << "python3 with numpy and safetensors is not available (exit " << rc
                 << "): " << read_all(dir.file("log"));

  DropNet net;
  Program p = compile_net(net);
  const LoadWeightsReport r = load_weights(p, path, {.strip_prefix = "model."});
  EXPECT_EQ(r.loaded.size(), 4u);
  EXPECT_EQ(r.unused, std::vector<std::string>{"model.num_batches_tracked"});
  const std::vector<float> w1 = p.get("fc1.weight").to_vector<float>();
  for (int i = 0; i < 96; ++i) EXPECT_EQ(w1[static_cast<std::size_t>(i)], static_cast<float>(i / 64.0 - 0.7)) << i;
  const std::vector<float> b1 = p.get("fc1.bias").to_vector<float>();
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(b1[static_cast<std::size_t>(i)], static_cast<float>(i / 8.0 - 1)) << i;  // exact in f16
  const std::vector<float> w2 = p.get("fc2.weight").to_vector<float>();
  for (int i = 0; i < 48; ++i) EXPECT_EQ(w2[static_cast<std::size_t>(i)], static_cast<float>(i) / 100.0f) << i;
  EXPECT_EQ(p.get("fc2.bias").to_vector<float>(), (std::vector<float>{0.5f, -0.25f, 0.125f}));
}

}  // namespace
}  // namespace trainrt
