#include "optim/gradient_guard.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "optim/build_optimizer.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

const Loc kLoc = Loc::current();

void require(bool ok, std::string_view field, double value, std::string_view rule) {
  if (!ok) fail(ErrorKind::InvalidArgument, cat("CompileOptions::", field, " must be ", rule, ", got ", value));
}

/// A variable the guard owns; its name must be free in the user's graph.
Value guard_variable(const std::shared_ptr<GraphImpl>& graph, const char* name, const Init& init, DType dtype) {
  if (graph->find(name) >= 0)
    fail(ErrorKind::InvalidArgument, cat("compile: the name '", name, "' is reserved for loss scaling and clipping"));
  return optimizer_variable(graph, name, Shape{}, init, dtype);
}

}  // namespace

void validate(const GuardSettings& s) {
  if (s.scale) {
    require(s.init_scale > 0 && std::isfinite(s.init_scale), "loss_scaling.init_scale", s.init_scale, "finite and > 0");
    require(s.growth_factor > 1, "loss_scaling.growth_factor", s.growth_factor, "> 1");
    require(s.backoff_factor > 0 && s.backoff_factor < 1, "loss_scaling.backoff_factor", s.backoff_factor, "in (0, 1)");
    require(s.growth_interval >= 1, "loss_scaling.growth_interval", double(s.growth_interval), ">= 1");
  }
  require(s.max_grad_norm >= 0 && std::isfinite(s.max_grad_norm), "max_grad_norm", s.max_grad_norm, "finite and >= 0");
}

Value scaled_loss(const std::shared_ptr<GraphImpl>& graph, const Value& loss, const GuardSettings& settings) {
  if (!settings.scale) return loss;
  const Value scale = guard_variable(graph, kLossScaleVariable, init::constant(settings.init_scale), DType::f32);
  return loss * cast(scale, loss.dtype(), kLoc);
}

GuardedGradients guard_gradients(const std::shared_ptr<GraphImpl>& graph, const std::vector<Value>& grads,
                                 const GuardSettings& settings) {
  GuardedGradients out{grads, {}};
  if (!settings.active() || grads.empty()) return out;
  const Phase saved = graph->phase();
  graph->set_phase(Phase::update);
  Graph gr(graph);
  // One pass over the raw gradients (DESIGN decision 5): whether one overflowed, and the sum
  // of their squares. Scaling by 1/scale keeps infinities and NaNs, so found says the same of
  // the unscaled gradients, and their norm is the raw norm over the scale.
  const std::vector<Value> stats = gradient_stats(out.grads, kLoc);
  Value norm;  // of the unscaled gradients, when clipping
  if (settings.max_grad_norm > 0) norm = sqrt(stats[1], kLoc);
  if (settings.scale) {
    const Value scale = make_value(graph, {graph->find(kLossScaleVariable), 0});
    const Value inverse = gr.scalar(1.0, DType::f32) / scale;
    for (Value& g : out.grads) g = g * cast(inverse, g.dtype(), kLoc);
    if (norm.valid()) norm = norm * inverse;
    out.skip = stats[0];
    assign(guard_variable(graph, kOverflowVariable, init::zeros(), DType::f32), cast(out.skip, DType::f32, kLoc), kLoc);
    // The scale's update, as torch.amp.GradScaler: back off on overflow and restart the count;
    // otherwise count, and grow (restarting the count) after growth_interval clean steps.
    const Value tracker = guard_variable(graph, kGrowthTrackerVariable, init::zeros(), DType::i64);
    const Value counted = where(out.skip, gr.scalar(0, DType::i64), tracker + gr.scalar(1, DType::i64), kLoc);
    const Value grow = ge(counted, gr.scalar(static_cast<double>(settings.growth_interval), DType::i64), kLoc);
    const Value next_scale = where(out.skip, scale * settings.backoff_factor,
                                   where(grow, scale * settings.growth_factor, scale, kLoc), kLoc);
    assign(scale, next_scale, kLoc);
    assign(tracker, where(grow, gr.scalar(0, DType::i64), counted, kLoc), kLoc);
  }
  if (settings.max_grad_norm > 0) {
    assign(guard_variable(graph, kGradNormVariable, init::zeros(), DType::f32), norm, kLoc);
    const Value coef =
        minimum(gr.scalar(settings.max_grad_norm, DType::f32) / (norm + 1e-6), gr.scalar(1.0, DType::f32), kLoc);
    for (Value& g : out.grads) g = g * cast(coef, g.dtype(), kLoc);
  }
  graph->set_phase(saved);
  return out;
}

}  // namespace trainrt::detail
