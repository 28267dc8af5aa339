// trainrt/optim.hpp — optimizers and learning-rate schedules compiled into the step.
//
// compile() turns the chosen optimizer into graph ops appended after the backward pass, so
// the whole update runs inside Program::step. The learning rate is computed inside the step
// from a step counter the Program holds ("optim.step"), so a moving rate never recompiles.
// State tensors are named after their parameter, as in PyTorch:
//   "<param>.momentum_buffer" (SGD), "<param>.exp_avg" and "<param>.exp_avg_sq" (Adam, AdamW).
#pragma once

#include <cstdint>
#include <variant>

namespace trainrt::optim {

/// A learning-rate schedule, as a factor applied to the base rate at step t (t counts from 0).
/// Warm-up, when warmup_steps > 0, scales linearly by (t + 1) / warmup_steps for
/// t < warmup_steps and then hands over to the schedule proper, measured from the end of
/// warm-up.
struct Schedule {
  enum class Kind { constant, step, cosine };
  Kind kind = Kind::constant;
  std::int64_t warmup_steps = 0;
  std::int64_t step_size = 1;    ///< step: multiply by gamma every step_size steps
  double gamma = 0.1;            ///< step
  std::int64_t total_steps = 0;  ///< cosine: steps (after warm-up) to reach min_lr_ratio
  double min_lr_ratio = 0.0;     ///< cosine: final rate as a fraction of the base rate
};
inline Schedule constant(std::int64_t warmup_steps = 0) { return {Schedule::Kind::constant, warmup_steps}; }
inline Schedule step_decay(std::int64_t step_size, double gamma, std::int64_t warmup_steps = 0) {
  return {Schedule::Kind::step, warmup_steps, step_size, gamma};
}
/// Cosine from the base rate down to min_lr_ratio * base over total_steps steps after warm-up
/// (the rate then stays there).
inline Schedule cosine(std::int64_t total_steps, std::int64_t warmup_steps = 0, double min_lr_ratio = 0.0) {
  return {Schedule::Kind::cosine, warmup_steps, 1, 0.1, total_steps, min_lr_ratio};
}

/// SGD as torch.optim.SGD: d = g + wd*p; buf = momentum*buf + (1-dampening)*d (buf = d on
/// the first step); d = nesterov ? d + momentum*buf : buf; p -= lr*d.
struct SGD {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  Schedule schedule{};
};

/// Adam as torch.optim.Adam (weight_decay adds wd*p to the gradient).
struct Adam {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  Schedule schedule{};
};

/// AdamW as torch.optim.AdamW (decoupled decay: p -= lr*wd*p before the Adam step).
struct AdamW {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  Schedule schedule{};
};

/// No update: Program::step runs the forward pass in training mode (and any state updates,
/// such as batch-norm running statistics) and returns the loss and requested outputs.
struct None {};

using Optimizer = std::variant<None, SGD, Adam, AdamW>;

}  // namespace trainrt::optim
