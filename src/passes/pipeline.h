// passes/pipeline.h — the compiler: from a user's graph to a scheduled training or
// evaluation graph. pipeline.cpp lists the passes in order; read it first.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "optim/gradient_guard.h"
#include "passes/rewrite.h"
#include "trainrt/optim.hpp"

namespace trainrt::detail {

/// A graph ready for a backend: lowered, differentiated (training), legalized, scheduled.
struct ScheduledGraph {
  std::shared_ptr<GraphImpl> graph;
  ValueMap from_source;                // values of the source graph -> this graph
  std::vector<std::int32_t> schedule;  // node order of one run
  std::size_t recomputed = 0;          // nodes recompute_activations cloned into backward
  std::size_t fused = 0;               // Fused nodes made by the fusion passes
};

/// The backend a graph is compiled for. Target-specific passes are chosen by it: the CPU
/// computes f16/bf16 elementwise work in f32 (passes/legalize_dtypes.h); CUDA keeps them native.
enum class CompileTarget : std::uint8_t { cpu, cuda };

const char* name(CompileTarget target) noexcept;

struct TrainingRequest {
  ValueId loss;
  std::vector<ValueId> outputs;  // extra values the step returns
  optim::Optimizer optimizer;
  std::uint64_t seed = 0;
  std::size_t memory_budget = 0;  // 0: keep every activation (CompileOptions::memory_budget)
  bool fuse = true;               // run the fusion passes (CompileOptions::fusion)
  // Data parallelism (CompileOptions::data_parallel): world > 0 averages the gradients over
  // that many ranks with bucketed collectives (passes/bucket_gradients.h).
  std::int64_t world = 0;
  std::size_t bucket_bytes = std::size_t{25} << 20;
  // Optimizer-state sharding (DataParallel::shard_optimizer_state): this rank's blocks only.
  bool shard = false;
  std::int64_t rank = 0;
  // Mixed precision (CompileOptions::precision): f16 or bf16 runs passes/autocast.h; f32 not.
  DType autocast = DType::f32;
  GuardSettings guard{};  // loss scaling and clipping (optim/gradient_guard.h)
  CompileTarget target = CompileTarget::cpu;
};

/// `source` must hold the step counter variable (passes/lower_mode.h). Throws on invalid
/// graphs (the verifier) and optimizer settings.
ScheduledGraph compile_training_graph(const GraphImpl& source, const TrainingRequest& request);
/// The forward pass in evaluation mode, reduced to what `fetches` need.
ScheduledGraph compile_evaluation_graph(const GraphImpl& source, const std::vector<ValueId>& fetches, bool fuse,
                                        DType autocast, CompileTarget target = CompileTarget::cpu);

}  // namespace trainrt::detail
