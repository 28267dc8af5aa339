// passes/pipeline.cpp — the compiler, as a list of passes.
//
// Training step:
//   1. lower_for_training      batch_norm/dropout take their training form
//      autocast               mixed precision: 16-bit matmuls/convolutions, f32 elsewhere
//   2. build_gradients         reverse-mode autodiff of the loss (times the loss scale, with
//                             loss scaling) w.r.t. every parameter
//      bucket_gradients       data-parallel: average the gradients over the ranks, in buckets
//                             (with sharded optimizer state, build_optimizer reduce-scatters
//                             them and all-gathers the updated parameters instead)
//      guard_gradients        loss scaling: unscale, overflow flag, scale update; clipping
//   3. build_optimizer         the update, the learning-rate schedule, the step counter
//   4. eliminate_dead_code     keep what the loss, the outputs and the assignments need
//   5. simplify_algebra        exact local rewrites (x * 1, neg(neg(x)), permute of permute, ...)
//      fold_constants          evaluate ops over constants at compile time
//      eliminate_common_subexpressions   merge nodes computing the same value
//      eliminate_dead_code     (5 repeats, at most 4 rounds, while one of them changes the graph)
//   6. legalize_dtypes         CPU target: f16/bf16 computed in f32 (CUDA keeps them native)
//   7. eliminate_dead_code     drop what legalization made unused
//   8. recompute_activations   with a memory budget: recompute cheap activations in backward
//   9. fuse_elementwise        groups of elementwise ops become one generated kernel each
//  10. fuse_update_groups      the optimizer updates of all parameters become one kernel
//  11. schedule_nodes          the order of one step
// Evaluation: lower_for_evaluation, autocast, then 4, 5, 6, 7, 9 and 11.
// Memory is planned by the executor (plan_memory), which knows each kernel's scratch needs.
//
// TRAINRT_DUMP_IR=1 prints the graph after each pass; TRAINRT_TIME_PASSES=1 prints their
// timings; TRAINRT_VERIFY=1 (default in debug builds) verifies the IR after each pass.
#include "passes/pipeline.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "autodiff/gradients.h"
#include "core/error.h"
#include "core/settings.h"
#include "ir/builder.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "optim/build_optimizer.h"
#include "optim/gradient_guard.h"
#include "passes/autocast.h"
#include "passes/bucket_gradients.h"
#include "passes/eliminate_common_subexpressions.h"
#include "passes/eliminate_dead_code.h"
#include "passes/fold_constants.h"
#include "passes/fuse_elementwise.h"
#include "passes/fuse_update_groups.h"
#include "passes/legalize_dtypes.h"
#include "passes/lower_mode.h"
#include "passes/recompute_activations.h"
#include "passes/schedule.h"
#include "passes/simplify_algebra.h"

namespace trainrt::detail {

namespace {

/// Runs passes with the observability knobs of core/settings.h.
class PassLog {
 public:
  explicit PassLog(const char* pipeline) : pipeline_(pipeline) {}
  ~PassLog() {
    if (!settings().time_passes || timings_.empty()) return;
    std::fprintf(stderr, "[trainrt] pass timings (%s):\n", pipeline_);
    double total = 0;
    for (const auto& [name, ms] : timings_) {
      std::fprintf(stderr, "  %-32s %9.3f ms\n", name.c_str(), ms);
      total += ms;
    }
    std::fprintf(stderr, "  %-32s %9.3f ms\n", "total", total);
  }
  PassLog(const PassLog&) = delete;
  PassLog& operator=(const PassLog&) = delete;

  /// Times `pass` (returning whether it changed the graph), then dumps and verifies `graph`.
  template <class Pass>
  void run(const char* name, Pass&& pass, const std::shared_ptr<GraphImpl>* graph) {
    const auto start = std::chrono::steady_clock::now();
    const bool changed = pass();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    timings_.emplace_back(name, ms);
    if (graph == nullptr) return;
    if (settings().dump_ir)
      std::fprintf(stderr, "[trainrt] ---- %s after %s%s ----\n%s", pipeline_, name, changed ? "" : " (no change)",
                   print_graph(**graph).c_str());
    if (settings().verify) verify(**graph, name);
  }

 private:
  const char* pipeline_;
  std::vector<std::pair<std::string, double>> timings_;
};

/// The passes both pipelines end with: dead code, dtype legalization (CPU target), dead code
/// again, recomputation under a memory budget (0: none), scheduling. `roots` are values of
/// the pipeline's source graph (through out.from_source).
void finish(PassLog& log, std::shared_ptr<GraphImpl>& g, ScheduledGraph& out, const std::vector<ValueId>& roots,
            std::size_t memory_budget, bool fuse, CompileTarget target) {
  auto mapped = [&] {
    std::vector<ValueId> r;
    r.reserve(roots.size());
    for (const ValueId& v : roots) r.push_back(out.from_source(v));
    return r;
  };
  log.run(
      "eliminate_dead_code", [&] { return eliminate_dead_code(*g, mapped()); }, &g);
  // Each of these can make work for the others (a fold makes the full node a rule matches,
  // a rule makes two nodes equal); a round costs a few graph copies, so a few rounds.
  auto copying = [&](const char* name, const std::function<bool(ValueMap&)>& pass) {
    ValueMap map;
    bool changed = false;
    log.run(
        name, [&] { return changed = pass(map); }, &g);
    out.from_source = out.from_source.then(map);
    return changed;
  };
  for (int round = 0; round < 4; ++round) {
    bool changed = copying("simplify_algebra", [&](ValueMap& m) { return simplify_algebra(g, m, mapped()); });
    changed = copying("fold_constants", [&](ValueMap& m) { return fold_constants(g, m); }) || changed;
    changed = copying("eliminate_common_subexpressions",
                      [&](ValueMap& m) { return eliminate_common_subexpressions(g, m); }) ||
              changed;
    if (!changed) break;
    log.run(
        "eliminate_dead_code", [&] { return eliminate_dead_code(*g, mapped()); }, &g);
  }
  if (target == CompileTarget::cpu) {
    ValueMap legal;
    log.run(
        "legalize_dtypes",
        [&] {
          bool changed = false;
          g = legalize_dtypes_for_cpu(*g, legal, changed);
          return changed;
        },
        &g);
    out.from_source = out.from_source.then(legal);
    log.run(
        "eliminate_dead_code", [&] { return eliminate_dead_code(*g, mapped()); }, &g);
  }
  if (memory_budget > 0) {
    ValueMap recomputed;
    log.run(
        "recompute_activations",
        [&] {
          const RecomputeResult r = recompute_activations(g, mapped(), memory_budget, recomputed);
          g = r.graph;
          out.recomputed = r.recomputed;
          return r.recomputed > 0;
        },
        &g);
    out.from_source = out.from_source.then(recomputed);
  }
  if (fuse) {
    ValueMap fused;
    log.run(
        "fuse_elementwise",
        [&] {
          g = fuse_elementwise(*g, mapped(), fused, out.fused);
          return out.fused > 0;
        },
        &g);
    out.from_source = out.from_source.then(fused);
    ValueMap merged_map;
    log.run(
        "fuse_update_groups",
        [&] {
          std::size_t merged = 0;
          g = fuse_update_groups(*g, merged_map, merged);
          out.fused -= merged;
          return merged > 0;
        },
        &g);
    out.from_source = out.from_source.then(merged_map);
  }
  log.run(
      "schedule_nodes",
      [&] {
        out.schedule = schedule_nodes(*g);
        return false;
      },
      nullptr);
  out.graph = g;
}

/// Runs autocast (when `low` is f16 or bf16) on `g`; `roots` (source values) keep their dtypes.
void run_autocast(PassLog& log, std::shared_ptr<GraphImpl>& g, ScheduledGraph& out, const std::vector<ValueId>& roots,
                  DType low) {
  if (low == DType::f32) return;
  std::vector<ValueId> keep;
  keep.reserve(roots.size());
  for (const ValueId& v : roots) keep.push_back(out.from_source(v));
  ValueMap map;
  log.run(
      "autocast",
      [&] {
        g = autocast(*g, low, keep, map);
        return true;
      },
      &g);
  out.from_source = out.from_source.then(map);
}

}  // namespace

const char* name(CompileTarget target) noexcept { return target == CompileTarget::cuda ? "cuda" : "cpu"; }

ScheduledGraph compile_training_graph(const GraphImpl& source, const TrainingRequest& request) {
  validate(request.optimizer);
  validate(request.guard);
  const bool trains = !std::holds_alternative<optim::None>(request.optimizer);
  if (request.shard && request.world > 0 && trains && request.guard.active())
    fail(ErrorKind::Unsupported,
         "compile: loss scaling and gradient clipping (CompileOptions::loss_scaling, max_grad_norm) are not "
         "available with DataParallel::shard_optimizer_state; turn one of them off");
  PassLog log("training step");
  ScheduledGraph out;
  std::shared_ptr<GraphImpl> g;

  log.run(
      "lower_for_training",
      [&] {
        g = lower_for_training(source, request.seed, out.from_source);
        return true;
      },
      &g);
  std::vector<ValueId> roots{request.loss};
  roots.insert(roots.end(), request.outputs.begin(), request.outputs.end());
  run_autocast(log, g, out, roots, request.autocast);

  const ValueId loss = out.from_source(request.loss);
  std::vector<Value> params;
  for (std::int32_t i = 0; i < g->size(); ++i) {
    const Node& n = g->node(i);
    if (n.kind == OpKind::Variable && std::get<VariableAttrs>(n.attrs).kind == VariableKind::parameter)
      params.push_back(make_value(g, {i, 0}));
  }
  std::vector<Value> grads;
  log.run(
      "build_gradients",
      [&] {
        if (!trains || params.empty()) return false;
        std::vector<ValueId> wrt;
        wrt.reserve(params.size());
        for (const Value& p : params) wrt.push_back(id_of(p));
        grads = build_gradients(g, id_of(scaled_loss(g, make_value(g, loss), request.guard)), wrt);
        return true;
      },
      &g);
  const bool sharded = request.shard && request.world > 0 && trains && !params.empty();
  log.run(
      "bucket_gradients",
      [&] {
        if (request.world <= 0 || grads.empty() || sharded) return false;
        const Phase saved = g->phase();
        g->set_phase(Phase::backward);
        grads = average_gradients(grads, request.world, request.bucket_bytes);
        g->set_phase(saved);
        return true;
      },
      &g);
  if (!trains) params.clear();
  Value skip;
  log.run(
      "guard_gradients",
      [&] {
        if (grads.empty() || !request.guard.active()) return false;
        GuardedGradients guarded = guard_gradients(g, grads, request.guard);
        grads = std::move(guarded.grads);
        skip = guarded.skip;
        return true;
      },
      &g);

  log.run(
      "build_optimizer",
      [&] {
        const Value step = make_value(g, {g->find(kStepVariable), 0});
        if (sharded)
          build_sharded_optimizer(g, request.optimizer, params, grads, step, request.world, request.rank,
                                  request.bucket_bytes);
        else build_optimizer(g, request.optimizer, params, grads, step, skip);
        return true;
      },
      &g);

  finish(log, g, out, roots, request.memory_budget, request.fuse, request.target);
  return out;
}

ScheduledGraph compile_evaluation_graph(const GraphImpl& source, const std::vector<ValueId>& fetches, bool fuse,
                                        DType autocast, CompileTarget target) {
  PassLog log("evaluation");
  ScheduledGraph out;
  std::shared_ptr<GraphImpl> g;
  log.run(
      "lower_for_evaluation",
      [&] {
        g = lower_for_evaluation(source, out.from_source);
        return true;
      },
      &g);
  run_autocast(log, g, out, fetches, autocast);
  finish(log, g, out, fetches, 0, fuse, target);
  return out;
}

}  // namespace trainrt::detail
