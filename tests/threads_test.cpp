// CompileOptions::threads bounds every pool a step uses: our kernels' TBB arena and the
// OpenMP team that Debian's oneDNN runs its primitives on. oneDNN 2.6 fixes a primitive's
// work split from the OpenMP thread count when the primitive is created, and libgomp keeps
// a worker thread alive once a parallel region has used it — so a 1-thread Program in a
// process whose OpenMP default is 2 must leave the process with exactly one thread.
// (This binary holds only this test: any earlier parallel work would start threads.)
#include <omp.h>

#include <filesystem>

#include "test_util.h"

namespace trainrt {
namespace {

int threads_in_process() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++n;
  }
  return n;
}

TEST(Threads, OneThreadProgramRunsOnTheCallingThreadOnly) {
  omp_set_num_threads(2);  // the application's own OpenMP setting must not leak into the Program
  Graph g;
  auto x = g.input("x", {64, 32, 14, 14});
  nn::Conv2d conv(g, "conv", 32, 64, {3, 3}, {.padding = {1, 1}});
  nn::Linear fc(g, "fc", 64, 10);
  auto loss = mean(fc(global_avg_pool2d(relu(conv(x)))));
  Program p = compile(g, loss, optim::SGD{}, {.threads = 1});
  std::mt19937 rng(1);
  const Tensor xt = test::random_tensor({64, 32, 14, 14}, f32, rng);
  for (int i = 0; i < 3; ++i) p.step({{"x", xt}});
  p.evaluate({{"x", xt}}, {loss});
  EXPECT_EQ(threads_in_process(), 1);
}

}  // namespace
}  // namespace trainrt
