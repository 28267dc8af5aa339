// optim/gradient_guard.h — what happens to the gradients between backward and the optimizer:
// dynamic loss scaling (unscale, overflow check, scale update) and global-norm clipping.
//
// All of it is graph code in the step, so the overflow flag, the scale and the norm live with
// the other variables and no host wait decides anything: the optimizer's writes read the flag
// (optim/build_optimizer.cpp, commit()) and keep the old values on an overflowing step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

inline constexpr const char* kLossScaleVariable = "amp.loss_scale";
inline constexpr const char* kGrowthTrackerVariable = "amp.growth_tracker";
inline constexpr const char* kOverflowVariable = "amp.overflow";
inline constexpr const char* kGradNormVariable = "optim.grad_norm";

/// The resolved settings (CompileOptions::loss_scaling and max_grad_norm).
struct GuardSettings {
  bool scale = false;
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
  double max_grad_norm = 0;  // 0: no clipping
  bool active() const noexcept { return scale || max_grad_norm > 0; }
};

/// Throws InvalidArgument naming the field when a setting is out of range.
void validate(const GuardSettings& settings);

/// With scaling: creates the scale variable and returns loss * scale, the value to
/// differentiate. Without: `loss`.
Value scaled_loss(const std::shared_ptr<GraphImpl>& graph, const Value& loss, const GuardSettings& settings);

struct GuardedGradients {
  std::vector<Value> grads;  // unscaled and clipped
  Value skip;                // bool scalar: the gradients overflowed (invalid without scaling)
};

/// Unscales `grads` (scaling), finds overflow and updates the scale and its tracker, then
/// clips (max_grad_norm). Appended in Phase::update.
GuardedGradients guard_gradients(const std::shared_ptr<GraphImpl>& graph, const std::vector<Value>& grads,
                                 const GuardSettings& settings);

}  // namespace trainrt::detail
