// Data-parallel training with ranks joined in one process (dist::local_communicators): the
// averaged-gradient step must move the parameters as one process training on the
// concatenated batch; ranks that built different graphs, and a rank that stalls, must end
// every rank with a clear Error.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <thread>

#include "passes/bucket_gradients.h"
#include "test_util.h"

namespace trainrt {
namespace {

constexpr int kFeatures = 6, kClasses = 4;

/// x[batch, 6] -> linear(6, hidden) -> tanh -> linear(hidden, 4) -> cross_entropy (a mean).
struct Mlp {
  Graph g;
  Value loss;
  explicit Mlp(std::int64_t batch, std::int64_t hidden = 16) {
    const Value x = g.input("x", {batch, kFeatures});
    const Value y = g.input("y", {batch}, i64);
    nn::Linear fc1(g, "fc1", kFeatures, hidden), fc2(g, "fc2", hidden, kClasses);
    loss = cross_entropy(fc2(tanh(fc1(x))), y);
  }
};

/// Step `s`'s global batch of `rows`; rank r's part is rows [r*rows/world, (r+1)*rows/world).
struct Batch {
  std::vector<float> x;
  std::vector<std::int64_t> y;
};
Batch global_batch(int s, int rows) {
  std::mt19937 rng(static_cast<unsigned>(1000 + s));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Batch b;
  for (int i = 0; i < rows * kFeatures; ++i) b.x.push_back(u(rng));
  // A learnable label: the class whose fixed feature pair sums highest.
  for (int i = 0; i < rows; ++i) {
    const float* row = b.x.data() + static_cast<std::ptrdiff_t>(i) * kFeatures;
    std::int64_t best = 0;
    for (int k = 1; k < kClasses; ++k)
      if (row[k] + row[k + 2] > row[best] + row[best + 2]) best = k;
    b.y.push_back(best);
  }
  return b;
}
Feeds part(const Batch& b, int rank, int world) {
  const auto rows = static_cast<std::int64_t>(b.y.size()) / world;
  const auto x0 = b.x.begin() + rank * rows * kFeatures;
  const auto y0 = b.y.begin() + rank * rows;
  return {{"x", Tensor::from_vector<float>({rows, kFeatures}, std::vector<float>(x0, x0 + rows * kFeatures))},
          {"y", Tensor::from_vector<std::int64_t>({rows}, std::vector<std::int64_t>(y0, y0 + rows))}};
}

/// Runs fn(rank) on `world` threads; rethrows nothing, returns each rank's exception.
std::vector<std::exception_ptr> on_ranks(int world, const std::function<void(int)>& fn) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (...) {
        errors[static_cast<std::size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

std::string message_of(const std::exception_ptr& e) {
  if (!e) return "(no error)";
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.what();
  } catch (const std::exception& err) {
    return std::string("not a trainrt::Error: ") + err.what();
  }
}

std::vector<Tensor> parameters(const Program& p) {
  std::vector<Tensor> out;
  for (const std::string& n : p.variables(VariableKind::parameter)) out.push_back(p.get(n));
  return out;
}

struct Case {
  int world;
  optim::Optimizer optimizer;
  std::size_t bucket_bytes;
};

class MatchesOneProcess : public ::testing::TestWithParam<Case> {};

TEST_P(MatchesOneProcess, OnTheConcatenatedBatch) {
  const Case c = GetParam();
  constexpr int kSteps = 12, kRows = 12;  // the global batch: 12 rows, split over the ranks
  Mlp full(kRows);
  Program reference = compile(full.g, full.loss, c.optimizer, {.threads = 2, .seed = 7});
  std::vector<float> reference_losses;
  for (int s = 0; s < kSteps; ++s)
    reference_losses.push_back(reference.step(part(global_batch(s % 3, kRows), 0, 1)).get());

  const auto comms = dist::local_communicators(c.world, std::chrono::seconds(60));
  std::vector<std::vector<Tensor>> params(static_cast<std::size_t>(c.world));
  std::vector<std::vector<float>> losses(static_cast<std::size_t>(c.world));
  const auto errors = on_ranks(c.world, [&](int r) {
    Mlp local(kRows / c.world);
    CompileOptions o{.threads = 2, .seed = 7};
    o.data_parallel = {.communicator = comms[static_cast<std::size_t>(r)], .bucket_bytes = c.bucket_bytes};
    Program p = compile(local.g, local.loss, c.optimizer, o);
    for (int s = 0; s < kSteps; ++s)
      losses[static_cast<std::size_t>(r)].push_back(p.step(part(global_batch(s % 3, kRows), r, c.world)).get());
    params[static_cast<std::size_t>(r)] = parameters(p);
  });
  for (int r = 0; r < c.world; ++r)
    ASSERT_FALSE(errors[static_cast<std::size_t>(r)]) << message_of(errors[static_cast<std::size_t>(r)]);

  const std::vector<Tensor> want = parameters(reference);
  for (int r = 0; r < c.world; ++r) {
    ASSERT_EQ(params[static_cast<std::size_t>(r)].size(), want.size());
    // Summation order differs (per-rank sums, then over the ranks): a few f32 ulps per step.
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_CLOSE(params[static_cast<std::size_t>(r)][i], want[i], 1e-5, 1e-4) << "rank " << r << " parameter " << i;
    // Every rank holds the same parameters, bit for bit (they apply the same averaged update).
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(
          std::memcmp(params[static_cast<std::size_t>(r)][i].raw_data(), params[0][i].raw_data(), want[i].nbytes()), 0);
  }
  // The mean of the ranks' losses is the loss of the whole batch.
  for (int s = 0; s < kSteps; ++s) {
    double mean = 0;
    for (int r = 0; r < c.world; ++r) mean += losses[static_cast<std::size_t>(r)][static_cast<std::size_t>(s)];
    EXPECT_NEAR(mean / c.world, reference_losses[static_cast<std::size_t>(s)], 2e-5) << "step " << s;
  }
  // Three batches, cycled: the model must fit them.
  EXPECT_LT(reference_losses[kSteps - 1] + reference_losses[kSteps - 2] + reference_losses[kSteps - 3],
            0.8f * (reference_losses[0] + reference_losses[1] + reference_losses[2]))
      << "the model must learn";
}

INSTANTIATE_TEST_SUITE_P(
    DataParallel, MatchesOneProcess,
    ::testing::Values(Case{2, optim::SGD{.lr = 0.3, .momentum = 0.9}, 256},  // several buckets
                      Case{3, optim::SGD{.lr = 0.3, .momentum = 0.9}, 256},
                      Case{2, optim::Adam{.lr = 0.02}, std::size_t{25} << 20},    // one bucket
                      Case{3, optim::AdamW{.lr = 0.02, .weight_decay = 0.1}, 1},  // a bucket per tensor
                      Case{2, optim::LAMB{.lr = 0.05}, 256}),  // per-parameter norms of averaged gradients
    [](const ::testing::TestParamInfo<Case>& param) { return "case" + std::to_string(param.index); });

/// Trains `world` ranks for `steps` steps, sharded or not; returns each rank's Program.
std::vector<Program> train_ranks(int world, bool shard, const optim::Optimizer& optimizer, int steps, int rows = 12) {
  const auto comms = dist::local_communicators(world, std::chrono::seconds(60));
  std::vector<Program> programs(static_cast<std::size_t>(world));
  const auto errors = on_ranks(world, [&](int r) {
    Mlp local(rows / world);
    CompileOptions o{.threads = 1, .seed = 11};
    o.data_parallel = {
        .communicator = comms[static_cast<std::size_t>(r)], .bucket_bytes = 200, .shard_optimizer_state = shard};
    Program p = compile(local.g, local.loss, optimizer, o);
    for (int s = 0; s < steps; ++s) p.step(part(global_batch(s % 3, rows), r, world));
    programs[static_cast<std::size_t>(r)] = std::move(p);
  });
  for (const auto& e : errors)
    if (e) ADD_FAILURE() << message_of(e);
  return programs;
}

std::size_t optimizer_bytes(const Program& p) {
  std::size_t bytes = 0;
  for (const std::string& n : p.variables(VariableKind::optimizer)) bytes += p.get(n).nbytes();
  return bytes;
}

class Sharded : public ::testing::TestWithParam<int> {};

TEST_P(Sharded, EqualsUnshardedAndDividesOptimizerMemory) {
  const int world = GetParam();
  const optim::Optimizer adam = optim::AdamW{.lr = 0.02, .weight_decay = 0.05};
  std::vector<Program> plain = train_ranks(world, false, adam, 9);
  std::vector<Program> sharded = train_ranks(world, true, adam, 9);
  ASSERT_EQ(sharded.size(), static_cast<std::size_t>(world));
  // Parameters: the same averaged gradients and the same elementwise update, per element.
  for (int r = 0; r < world; ++r)
    for (const std::string& name : plain[0].variables(VariableKind::parameter))
      EXPECT_CLOSE(sharded[static_cast<std::size_t>(r)].get(name), plain[0].get(name), 1e-6, 1e-5)
          << name << " rank " << r;
  // The state, per parameter, under the unsharded names (get() gathers: every rank calls it).
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(sharded[0].variables(VariableKind::optimizer)), sorted(plain[0].variables(VariableKind::optimizer)));
  std::vector<std::vector<Tensor>> states(static_cast<std::size_t>(world));
  const auto errors = on_ranks(world, [&](int r) {
    for (const std::string& n : plain[0].variables(VariableKind::optimizer))
      states[static_cast<std::size_t>(r)].push_back(sharded[static_cast<std::size_t>(r)].get(n));
  });
  for (const auto& e : errors) ASSERT_FALSE(e) << message_of(e);
  const auto names = plain[0].variables(VariableKind::optimizer);
  for (std::size_t i = 0; i < names.size(); ++i)
    EXPECT_CLOSE(states[0][i], plain[0].get(names[i]), 1e-6, 1e-5) << names[i];
  // What each rank holds: its blocks of the state, about 1/world of it (blocks are padded).
  std::size_t held = 0, full = 0;
  for (const std::string& n : names)
    if (n.find("optim.") != 0) full += plain[0].get(n).nbytes();
  for (std::size_t b = 0;; ++b) {
    bool any = false;
    for (const char* suffix : {"exp_avg", "exp_avg_sq"}) try {
        held += sharded[0].get("optim.shard" + std::to_string(b) + "." + suffix).nbytes();
        any = true;
      } catch (const Error&) {
      }
    if (!any) break;
  }
  EXPECT_GT(held, 0u);
  EXPECT_LE(held, full / static_cast<std::size_t>(world) + 2 * 4 * 8 * static_cast<std::size_t>(world))
      << "held " << held << " of " << full << " bytes";
  EXPECT_GT(optimizer_bytes(plain[0]), 0u);
}

INSTANTIATE_TEST_SUITE_P(DataParallel, Sharded, ::testing::Values(2, 3));

// LAMB's trust ratio needs each whole parameter's norm, and a sharded rank holds a block of a
// bucket: compile() refuses, on every rank, rather than train with wrong ratios.
TEST(DataParallel, ShardedOptimizerStateRefusesWhatNeedsWholeGradients) {
  // LAMB's trust ratio, the loss scaler's overflow flag and the clipping norm all need every
  // gradient of the step, which a rank with sharded state does not see.
  struct Case {
    optim::Optimizer optimizer;
    Precision precision;
    double max_grad_norm;
    const char* names;
  };
  const std::vector<Case> cases{{optim::LAMB{}, Precision::f32, 0.0, "LAMB"},
                                {optim::SGD{}, Precision::f16, 0.0, "loss_scaling"},
                                {optim::Adam{}, Precision::f32, 1.0, "max_grad_norm"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.names);
    const auto comms = dist::local_communicators(2, std::chrono::seconds(60));
    const auto errors = on_ranks(2, [&](int r) {
      Mlp local(6);
      CompileOptions o{.precision = c.precision, .max_grad_norm = c.max_grad_norm, .threads = 1, .seed = 11};
      o.data_parallel = {
          .communicator = comms[static_cast<std::size_t>(r)], .bucket_bytes = 200, .shard_optimizer_state = true};
      compile(local.g, local.loss, c.optimizer, o);
    });
    for (const auto& e : errors) {
      ASSERT_TRUE(e) << "compile() accepted it with sharded optimizer state";
      try {
        std::rethrow_exception(e);
      } catch (const Error& err) {
        EXPECT_EQ(err.kind(), ErrorKind::Unsupported) << err.what();
        EXPECT_NE(std::string(err.what()).find(c.names), std::string::npos) << err.what();
        EXPECT_NE(std::string(err.what()).find("shard_optimizer_state"), std::string::npos) << err.what();
      } catch (...) {
        ADD_FAILURE() << message_of(e);
      }
    }
  }
}

TEST(DataParallel, AShardedCheckpointLoadsIntoAnUnshardedProgram) {
  test::TempDir dir;
  const optim::Optimizer sgd = optim::SGD{.lr = 0.2, .momentum = 0.9};
  std::vector<Program> sharded = train_ranks(2, true, sgd, 5);
  const auto errors = on_ranks(2, [&](int r) {  // a collective: every rank saves
    save_checkpoint(sharded[static_cast<std::size_t>(r)], dir.file("rank" + std::to_string(r) + ".safetensors"));
  });
  for (const auto& e : errors) ASSERT_FALSE(e) << message_of(e);
  Mlp whole(12);
  Program single = compile(whole.g, whole.loss, sgd, {.threads = 1, .seed = 11});
  load_checkpoint(single, dir.file("rank0.safetensors"));
  EXPECT_EQ(single.step_count(), 5);
  std::vector<Program> plain = train_ranks(2, false, sgd, 5);
  for (VariableKind kind : {VariableKind::parameter, VariableKind::optimizer})
    for (const std::string& n : single.variables(kind)) EXPECT_CLOSE(single.get(n), plain[0].get(n), 1e-6, 1e-5) << n;
  // And back: the unsharded checkpoint loads into sharded ranks, which go on identically.
  save_checkpoint(single, dir.file("single.safetensors"));
  const auto comms = dist::local_communicators(2, std::chrono::seconds(60));
  std::vector<float> losses(2);
  const auto again = on_ranks(2, [&](int r) {
    Mlp local(6);
    CompileOptions o{.threads = 1, .seed = 11};
    o.data_parallel = {
        .communicator = comms[static_cast<std::size_t>(r)], .bucket_bytes = 200, .shard_optimizer_state = true};
    Program p = compile(local.g, local.loss, sgd, o);
    load_checkpoint(p, dir.file("single.safetensors"));
    losses[static_cast<std::size_t>(r)] = p.step(part(global_batch(5 % 3, 12), r, 2)).get();
  });
  for (const auto& e : again) ASSERT_FALSE(e) << message_of(e);
  Program cont = compile(whole.g, whole.loss, sgd, {.threads = 1, .seed = 11});
  load_checkpoint(cont, dir.file("single.safetensors"));
  const float want = cont.step(part(global_batch(5 % 3, 12), 0, 1)).get();
  EXPECT_NEAR((losses[0] + losses[1]) / 2, want, 1e-5);
}

TEST(DataParallel, TheLoaderGivesEachRankItsPartOfTheGlobalBatch) {
  std::vector<std::int64_t> ids(50);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i);
  auto dataset = std::make_shared<data::TensorDataset>(
      std::vector<std::pair<std::string, Tensor>>{{"id", Tensor::from_vector<std::int64_t>({50}, ids)}});
  data::DataLoader whole(dataset, 12, {.seed = 3, .last_batch = data::LastBatch::Pad});
  std::vector<data::DataLoader> ranks;
  for (int r = 0; r < 3; ++r)
    ranks.emplace_back(dataset, 12,
                       data::LoaderOptions{.seed = 3, .last_batch = data::LastBatch::Pad, .rank = r, .world = 3});
  EXPECT_EQ(ranks[0].batch_size(), 4);
  EXPECT_EQ(ranks[0].batches_per_epoch(), whole.batches_per_epoch());
  for (int b = 0; b < 2 * whole.batches_per_epoch(); ++b) {
    const data::Batch& w = whole.next();
    std::vector<std::int64_t> joined;
    std::int64_t samples = 0;
    for (auto& loader : ranks) {
      const data::Batch& part = loader.next();
      EXPECT_EQ(part.epoch, w.epoch);
      const auto rows = part.tensor("id").to_vector<std::int64_t>();
      joined.insert(joined.end(), rows.begin(), rows.end());
      samples += part.samples;
    }
    EXPECT_EQ(joined, w.tensor("id").to_vector<std::int64_t>()) << "batch " << b;
    EXPECT_EQ(samples, w.samples) << "the padded rows are counted once, on the ranks that hold them";
  }
  test::expect_error([&] { data::DataLoader(dataset, 10, {.rank = 0, .world = 3}); }, ErrorKind::InvalidArgument,
                     {"global batch_size 10 does not divide over 3 ranks", "12"});
  test::expect_error([&] { data::DataLoader(dataset, 12, {.rank = 3, .world = 3}); }, ErrorKind::InvalidArgument,
                     {"rank 3 of world 3"});
}

TEST(DataParallel, BucketsFollowTheSizeAndReverseOrder) {
  Graph g;
  std::vector<Value> grads{g.input("a", {100}), g.input("b", {10}), g.input("c", {300}), g.input("d", {5}, f64)};
  // Reverse order: d (f64, own dtype), c (1200 B: closes at 1000), b + a.
  const auto buckets = detail::plan_buckets(grads, 1000);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0], (std::vector<std::size_t>{3}));
  EXPECT_EQ(buckets[1], (std::vector<std::size_t>{2}));
  EXPECT_EQ(buckets[2], (std::vector<std::size_t>{1, 0}));
  EXPECT_EQ(detail::plan_buckets(grads, std::size_t{1} << 30).size(), 2u) << "one per dtype";
}

TEST(DataParallel, TheStepHoldsOneAllReducePerBucket) {
  const auto comms = dist::local_communicators(1);
  Mlp m(4);
  CompileOptions o;
  o.data_parallel = {.communicator = comms[0], .bucket_bytes = 1};  // every gradient its own bucket
  Program p = compile(m.g, m.loss, optim::SGD{.lr = 0.1}, o);
  const std::string text = p.to_string();
  std::size_t n = 0;
  for (std::size_t at = text.find("all_reduce"); at != std::string::npos; at = text.find("all_reduce", at + 1)) ++n;
  EXPECT_EQ(n, 4u) << text;  // fc1.weight, fc1.bias, fc2.weight, fc2.bias
  for (int s = 0; s < 3; ++s) EXPECT_GT(p.step(part(global_batch(s, 4), 0, 1)).get(), 0.0f);
  EXPECT_EQ(p.stats().allocations_in_steps, 0) << "collectives allocate nothing per step";
}

TEST(DataParallel, RanksThatBuiltDifferentGraphsFailAtCompile) {
  const auto comms = dist::local_communicators(3, std::chrono::seconds(30));
  const auto errors = on_ranks(3, [&](int r) {
    Mlp m(4, r == 2 ? 17 : 16);  // rank 2 has a wider hidden layer
    CompileOptions o;
    o.data_parallel = {.communicator = comms[static_cast<std::size_t>(r)]};
    compile(m.g, m.loss, optim::SGD{.lr = 0.1}, o);
  });
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(errors[static_cast<std::size_t>(r)]) << "rank " << r << " must fail";
  const std::string two = message_of(errors[2]);
  EXPECT_NE(two.find("rank 2 of 3"), std::string::npos) << two;
  EXPECT_NE(two.find("f32[17,6]"), std::string::npos) << "names the differing shape: " << two;
  EXPECT_NE(two.find("f32[16,6]"), std::string::npos) << two;
  const std::string zero = message_of(errors[0]);
  EXPECT_NE(zero.find("rank(s) 2 built a different"), std::string::npos) << zero;
}

TEST(DataParallel, RanksWithDifferentOptionsFailAtCompile) {
  const auto comms = dist::local_communicators(2, std::chrono::seconds(30));
  const auto errors = on_ranks(2, [&](int r) {
    Mlp m(4);
    CompileOptions o{.seed = static_cast<std::uint64_t>(r)};
    o.data_parallel = {.communicator = comms[static_cast<std::size_t>(r)]};
    compile(m.g, m.loss, optim::SGD{.lr = 0.1}, o);
  });
  EXPECT_NE(message_of(errors[1]).find("compile options differ"), std::string::npos) << message_of(errors[1]);
  EXPECT_TRUE(errors[0]);
}

TEST(DataParallel, AStalledRankEndsEveryRankWithAnErrorWithinTheTimeout) {
  using namespace std::chrono;
  const auto timeout = milliseconds(400);
  const auto comms = dist::local_communicators(2, timeout);
  std::vector<double> failed_after(2, -1);
  const auto errors = on_ranks(2, [&](int r) {
    Mlp m(4);
    CompileOptions o{.threads = 1};
    o.data_parallel = {.communicator = comms[static_cast<std::size_t>(r)]};
    Program p = compile(m.g, m.loss, optim::SGD{.lr = 0.1}, o);
    p.step(part(global_batch(0, 8), r, 2));
    if (r == 1) std::this_thread::sleep_for(timeout * 3);  // rank 1 stalls
    const auto start = steady_clock::now();
    try {
      p.step(part(global_batch(1, 8), r, 2));
    } catch (...) {
      failed_after[static_cast<std::size_t>(r)] = duration<double>(steady_clock::now() - start).count();
      throw;
    }
  });
  const std::string zero = message_of(errors[0]), one = message_of(errors[1]);
  EXPECT_NE(zero.find("timed out after 400 ms"), std::string::npos) << zero;
  EXPECT_NE(zero.find("all_reduce of bucket"), std::string::npos) << "names the collective: " << zero;
  EXPECT_LT(failed_after[0], 0.4 + 1.0) << "within the timeout (plus slack for a loaded machine)";
  EXPECT_NE(one.find("broken"), std::string::npos) << "the late rank fails at once: " << one;
  EXPECT_LT(failed_after[1], 0.5);
}

TEST(DataParallel, ADeviceMemoryCommunicatorIsRefusedOnTheCpu) {
  class DeviceComm final : public dist::Communicator {
   public:
    int rank() const noexcept override { return 0; }
    int size() const noexcept override { return 1; }
    std::string_view backend() const noexcept override { return "fake-device"; }
    bool device_memory() const noexcept override { return true; }
    std::chrono::milliseconds default_timeout() const noexcept override { return std::chrono::milliseconds(1); }
    void all_reduce(void*, std::size_t, DType, dist::ReduceOp, std::chrono::milliseconds) override {}
    void reduce_scatter(const void*, void*, std::size_t, DType, dist::ReduceOp, std::chrono::milliseconds) override {}
    void all_gather(const void*, void*, std::size_t, DType, std::chrono::milliseconds) override {}
    void broadcast(void*, std::size_t, DType, int, std::chrono::milliseconds) override {}
    void barrier(std::chrono::milliseconds) override {}
  };
  Mlp m(4);
  CompileOptions o;
  o.data_parallel = {.communicator = std::make_shared<DeviceComm>()};
  test::expect_error([&] { compile(m.g, m.loss, optim::SGD{}, o); }, ErrorKind::Unsupported,
                     {"fake-device", "device memory", "CPU"});
}

}  // namespace
}  // namespace trainrt
