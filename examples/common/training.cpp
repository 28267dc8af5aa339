// examples/common/training.cpp — device flags, checkpoint directory, run log, summary JSON,
// host metrics and the stop signal of the example trainers.
#include "training.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <system_error>

#include <trainrt/metrics.hpp>

#include "cli.h"

namespace examples {
namespace tr = trainrt;
namespace fs = std::filesystem;

// ---- device and precision ------------------------------------------------------------------

tr::Device parse_device(const std::string& text) {
  // This version of libtrainrt has only the CPU backend; "auto" picks it, and "cuda" reaches
  // compile(), which says why it cannot run there (no backend, or no device).
  if (text == "cpu" || text == "auto") return tr::Device::cpu();
  if (text == "cuda") return tr::Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0)
    return tr::Device::cuda(static_cast<int>(parse_int("--device", text.substr(5), 0, 255)));
  throw UsageError("--device expects cpu, cuda, cuda:N or auto, got '" + text + "'");
}

tr::Precision parse_precision(const std::string& text) {
  if (text == "f32") return tr::Precision::f32;
  if (text == "bf16") return tr::Precision::bf16;
  if (text == "f16") return tr::Precision::f16;
  throw UsageError("--precision expects f32, bf16 or f16, got '" + text + "'");
}

std::string device_name(const tr::Device& device) {
  return device.kind == tr::Device::Kind::cpu ? "cpu" : "cuda:" + std::to_string(device.index);
}

// ---- checkpoints ---------------------------------------------------------------------------

CheckpointDir::CheckpointDir(fs::path dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    throw tr::Error(tr::ErrorKind::Io,
                    "cannot create the checkpoint directory '" + dir_.string() + "': " + ec.message());
}

std::vector<std::pair<std::int64_t, fs::path>> CheckpointDir::list() const {
  std::vector<std::pair<std::int64_t, fs::path>> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    constexpr std::string_view prefix = "step-", suffix = ".safetensors";
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 18 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    out.emplace_back(std::stoll(digits), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<fs::path> CheckpointDir::latest() const {
  const auto all = list();
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

fs::path CheckpointDir::save(const tr::Program& program, const tr::CheckpointInfo& info) {
  char name[48];
  std::snprintf(name, sizeof name, "step-%08lld.safetensors", static_cast<long long>(program.step_count()));
  const fs::path path = dir_ / name;
  tr::save_checkpoint(program, path, info);
  auto all = list();
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i].second, ec);  // an old checkpoint that cannot be removed is only wasted space
  }
  return path;
}

bool CheckpointDir::resume(tr::Program& program, const std::map<std::string, std::string>& identity,
                           tr::data::DataLoader& loader) const {
  const auto newest = latest();
  if (!newest) {
    std::printf("no checkpoint in %s: starting from scratch\n", dir_.string().c_str());
    return false;
  }
  const tr::CheckpointInfo info = tr::load_checkpoint(program, *newest);
  for (const auto& [key, value] : identity) {
    const auto it = info.user.find(key);
    if (it == info.user.end() || it->second != value)
      throw tr::Error(tr::ErrorKind::InvalidArgument,
                      "cannot resume from '" + newest->string() + "': it was written with " + key + " = " +
                          (it == info.user.end() ? "(none)" : it->second) + ", this run has " + value);
  }
  loader.seek(info.epoch, info.batch);
  std::printf("resumed from %s at step %lld\n", newest->string().c_str(), static_cast<long long>(program.step_count()));
  std::fflush(stdout);
  return true;
}

// ---- JSON ----------------------------------------------------------------------------------

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.8g", v);
  return buf;
}
}  // namespace

void JsonObject::key(const std::string& k) {
  if (!body_.empty()) body_ += ',';
  body_ += quote(k) + ':';
}
JsonObject& JsonObject::add(const std::string& k, double value) {
  key(k);
  body_ += number(value);
  return *this;
}
JsonObject& JsonObject::add(const std::string& k, std::int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}
JsonObject& JsonObject::add(const std::string& k, const std::string& value) {
  key(k);
  body_ += quote(value);
  return *this;
}
JsonObject& JsonObject::add(const std::string& k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}
JsonObject& JsonObject::add(const std::string& k, const std::vector<double>& values) {
  key(k);
  body_ += '[';
  for (std::size_t i = 0; i < values.size(); ++i) body_ += (i ? "," : "") + number(values[i]);
  body_ += ']';
  return *this;
}

// ---- host metrics --------------------------------------------------------------------------

void HostMetrics::add(const tr::Tensor& logits, const tr::Tensor& labels, std::int64_t rows, std::int64_t ignore) {
  const std::int64_t classes = logits.shape()[logits.shape().rank() - 1];
  const float* l = logits.data<float>();
  const std::int64_t* y = labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < rows; ++i) {
    if (y[i] == ignore) continue;
    const float* row = l + i * classes;
    const float* top = std::max_element(row, row + classes);
    double sum = 0;
    for (std::int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c] - *top));
    loss_sum += std::log(sum) - static_cast<double>(row[y[i]] - *top);
    correct += (top - row) == y[i];
    ++count;
  }
}

// ---- stop signal ---------------------------------------------------------------------------

namespace {
volatile std::sig_atomic_t g_stop = 0;  // NOLINT: a signal handler may only touch sig_atomic_t
extern "C" void on_stop_signal(int sig) {
  g_stop = 1;
  std::signal(sig, SIG_DFL);  // a second signal ends the process
}
}  // namespace

void install_stop_handler() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}
bool stop_requested() { return g_stop != 0; }

Cadence::Stop Cadence::stop_after_step(std::int64_t done) const {
  if (stop_requested()) return Stop::signal;
  if (stop_after && done == *stop_after && done < total_steps) return Stop::stop_after;
  return Stop::no;
}

std::string Cadence::describe(Stop stop, std::int64_t done) {
  return std::string(stop == Stop::signal ? "stopped by a signal" : "stopped as --stop-after asked") + " after step " +
         std::to_string(done);
}

// ---- run log -------------------------------------------------------------------------------

struct RunLog::Impl {
  std::optional<tr::metrics::JsonlWriter> jsonl;
  std::optional<tr::metrics::TensorBoardWriter> tensorboard;
  std::optional<tr::metrics::ProgressBar> bar;
  std::string unit;
  std::int64_t plain_every = 50;
};

RunLog::RunLog(const Options& options, std::int64_t /*total_steps*/) : impl_(std::make_unique<Impl>()) {
  if (!options.jsonl.empty()) {
    const fs::path p(options.jsonl);
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    impl_->jsonl.emplace(p, options.append);
  }
  if (!options.tensorboard.empty()) impl_->tensorboard.emplace(options.tensorboard);
  impl_->unit = options.unit;
  impl_->plain_every = options.plain_every;
}

RunLog::~RunLog() = default;

RunLog::Options RunLog::files(const std::string& metrics, const std::string& tensorboard,
                              const CheckpointDir* checkpoints) {
  Options o;
  o.jsonl = !metrics.empty() ? metrics : checkpoints ? (checkpoints->dir() / "metrics.jsonl").string() : "";
  o.tensorboard = !tensorboard.empty() ? tensorboard : checkpoints ? (checkpoints->dir() / "tensorboard").string() : "";
  return o;
}

void RunLog::begin(const std::string& label, std::int64_t steps_in_bar) {
  end();
  tr::metrics::ProgressBar::Options o;
  o.unit = impl_->unit;
  o.plain_every = impl_->plain_every;
  impl_->bar.emplace(stdout, label, steps_in_bar, o);
}

void RunLog::step(std::int64_t step_in_bar, std::int64_t items,
                  const std::vector<std::pair<std::string, double>>& values) {
  if (impl_->bar) impl_->bar->update(step_in_bar, items, values);
}

void RunLog::record(std::int64_t step, const std::string& split,
                    const std::vector<std::pair<std::string, double>>& values) {
  if (impl_->jsonl) impl_->jsonl->write(step, split, values);
  if (impl_->tensorboard)
    for (const auto& [name, value] : values) impl_->tensorboard->add_scalar(split + "/" + name, step, value);
}

void RunLog::message(const std::string& line) {
  if (impl_->bar) {
    impl_->bar->message(line);
  } else {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
  }
}

void RunLog::end() {
  if (impl_->bar) impl_->bar->finish();
  impl_->bar.reset();
}

void RunLog::flush() {
  if (impl_->tensorboard) impl_->tensorboard->flush();
}

int trainer_main(const char* name, int argc, char** argv, Cli& cli, const std::function<int()>& train) {
  try {
    try {
      if (!cli.parse(argc, argv)) return 0;
    } catch (const UsageError& e) {
      std::fprintf(stderr, "%s: %s\n\n%s", name, e.what(), cli.usage().c_str());
      return 2;
    }
    install_stop_handler();
    return train();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 2;
  } catch (const tr::Error& e) {
    std::fprintf(stderr, "%s: error (%s): %s\n", name, tr::to_string(e.kind()), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
  }
  return 1;
}

double now_seconds() {
  static const auto start = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace examples
