// tests/metrics_tb_writer.cpp — writes TensorBoard event files with known contents into the
// directory given as its argument, for tests/python/read_tensorboard.py to read back with
// TensorBoard's own reader: a first run and a resumed one (a second file in the same directory).
#include <cmath>
#include <cstdio>
#include <limits>

#include "trainrt/errors.hpp"
#include "trainrt/metrics.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s LOGDIR\n", argv[0]);
    return 2;
  }
  try {
    {
      trainrt::metrics::TensorBoardWriter run(argv[1]);
      run.add_text("config", 0, "lr: 0.1\nbatch: 64");
      for (int step = 0; step < 10; ++step) run.add_scalar("train/loss", step, 1.0 / (step + 1));
      run.add_scalar("eval/acc", 4, 0.5, 1700000000.5);
      run.add_scalar("eval/acc", 9, 0.75, 1700000001.5);
      run.add_scalar("train/special", 0, std::numeric_limits<double>::quiet_NaN());
      run.add_scalar("train/special", 1, std::numeric_limits<double>::infinity());
      std::printf("%s\n", run.file().c_str());
    }
    // A resumed run opens a new file in the same directory.
    trainrt::metrics::TensorBoardWriter resumed(argv[1]);
    for (int step = 10; step < 15; ++step) resumed.add_scalar("train/loss", step, 1.0 / (step + 1));
    resumed.flush();
    std::printf("%s\n", resumed.file().c_str());
  } catch (const trainrt::Error& e) {
    std::fprintf(stderr, "metrics_tb_writer: %s\n", e.what());
    return 1;
  }
  return 0;
}
