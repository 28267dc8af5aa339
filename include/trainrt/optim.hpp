// trainrt/optim.hpp — optimizers and learning-rate schedules compiled into the step.
//
// compile() turns the chosen optimizer into graph ops appended after the backward pass, so
// the whole update runs inside Program::step. The learning rate is computed inside the step
// from a step counter the Program holds ("optim.step"), so a moving rate never recompiles.
// State tensors are named after their parameter, as in PyTorch:
//   "<param>.momentum_buffer" (SGD), "<param>.exp_avg" and "<param>.exp_avg_sq" (Adam, AdamW,
//   LAMB).
#pragma once

#include <cstdint>
#include <variant>

/// Optimizers (SGD, Adam, AdamW, LAMB, None) and learning-rate schedules, passed to compile().
namespace trainrt::optim {

/// A learning-rate schedule, as a factor applied to the base rate at step t (t counts from 0).
/// Warm-up, when warmup_steps > 0, scales linearly by (t + 1) / warmup_steps for
/// t < warmup_steps and then hands over to the schedule proper, measured from the end of
/// warm-up.
struct Schedule {
  /// The shape of the schedule after warm-up.
  enum class Kind {
    constant,  ///< the base rate
    step,      ///< multiplied by gamma every step_size steps
    cosine,    ///< cosine decay to min_lr_ratio over total_steps
  };
  Kind kind = Kind::constant;     ///< the schedule proper
  std::int64_t warmup_steps = 0;  ///< linear warm-up steps before it (0: none)
  std::int64_t step_size = 1;     ///< step: multiply by gamma every step_size steps
  double gamma = 0.1;             ///< step
  std::int64_t total_steps = 0;   ///< cosine: steps (after warm-up) to reach min_lr_ratio
  double min_lr_ratio = 0.0;      ///< cosine: final rate as a fraction of the base rate
};
/// The base rate throughout, after an optional linear warm-up.
inline Schedule constant(std::int64_t warmup_steps = 0) { return {Schedule::Kind::constant, warmup_steps}; }
/// The base rate times gamma^floor(t / step_size), t measured after warm-up.
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
  double lr = 0.01;           ///< base learning rate (scaled by the schedule)
  double momentum = 0.0;      ///< 0: plain SGD, no momentum buffer
  double dampening = 0.0;     ///< damps the gradient's share of the momentum buffer
  bool nesterov = false;      ///< Nesterov momentum (needs momentum > 0, dampening 0)
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  Schedule schedule{};        ///< learning-rate schedule (constant by default)
};

/// Adam as torch.optim.Adam (weight_decay adds wd*p to the gradient).
struct Adam {
  double lr = 1e-3;           ///< base learning rate (scaled by the schedule)
  double beta1 = 0.9;         ///< decay of the first moment (exp_avg)
  double beta2 = 0.999;       ///< decay of the second moment (exp_avg_sq)
  double eps = 1e-8;          ///< added to the denominator
  double weight_decay = 0.0;  ///< L2 penalty added to the gradient
  Schedule schedule{};        ///< learning-rate schedule (constant by default)
};

/// AdamW as torch.optim.AdamW (decoupled decay: p -= lr*wd*p before the Adam step).
struct AdamW {
  double lr = 1e-3;            ///< base learning rate (scaled by the schedule)
  double beta1 = 0.9;          ///< decay of the first moment (exp_avg)
  double beta2 = 0.999;        ///< decay of the second moment (exp_avg_sq)
  double eps = 1e-8;           ///< added to the denominator
  double weight_decay = 1e-2;  ///< decoupled decay rate
  Schedule schedule{};         ///< learning-rate schedule (constant by default)
};

/// LAMB (You et al., 2019, "Large Batch Optimization for Deep Learning"), per parameter:
/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; with bias correction mh = m/(1-b1^t),
/// vh = v/(1-b2^t) (else mh = m, vh = v); u = mh/(sqrt(vh)+eps) + wd*p; the trust ratio
/// r = ||p|| / ||u|| (L2 norms of the whole parameter, accumulated in f32, or in f64 for f64
/// parameters; r = 1 when either norm is 0; at most max_trust_ratio); p -= lr*r*u.
/// Not available with DataParallel::shard_optimizer_state: the norms need the whole parameter.
struct LAMB {
  double lr = 1e-3;             ///< base learning rate (scaled by the schedule)
  double beta1 = 0.9;           ///< decay of the first moment (exp_avg)
  double beta2 = 0.999;         ///< decay of the second moment (exp_avg_sq)
  double eps = 1e-6;            ///< added to the denominator
  double weight_decay = 0.01;   ///< decoupled decay, added to the update before the trust ratio
  bool bias_correction = true;  ///< divide the moments by (1 - beta^t), as Adam does
  double max_trust_ratio = 10;  ///< upper bound of the trust ratio (0: no bound)
  Schedule schedule{};          ///< learning-rate schedule (constant by default)
};

/// No update: Program::step runs the forward pass in training mode (and any state updates,
/// such as batch-norm running statistics) and returns the loss and requested outputs.
struct None {};

/// The optimizer argument of compile(): any of the structs above.
using Optimizer = std::variant<None, SGD, Adam, AdamW, LAMB>;

}  // namespace trainrt::optim
