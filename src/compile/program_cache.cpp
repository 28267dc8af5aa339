#include "compile/program_cache.h"

#include <chrono>
#include <cstdio>
#include <variant>

#include "compile/kernel_cache.h"
#include "compile/serialize_graph.h"
#include "compiler_identity.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/sha256.h"

namespace trainrt::detail {

namespace {

// With the library's version, every key holds the digest of the sources of its compiler
// (kCompilerIdentity, generated at build time), so that a build whose passes differ never
// reuses a Program compiled by another.
constexpr const char* kProgramKeyVersion = "libtrainrt " TRAINRT_VERSION_STRING " program cache 1";

std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::string describe(const optim::Schedule& s) {
  return cat("schedule ", static_cast<int>(s.kind), " ", s.warmup_steps, " ", s.step_size, " ", exact(s.gamma), " ",
             s.total_steps, " ", exact(s.min_lr_ratio));
}

/// Every field of the optimizer, exactly (hex floats).
std::string describe(const optim::Optimizer& o) {
  struct Visit {
    std::string operator()(const optim::None&) const { return "none"; }
    std::string operator()(const optim::SGD& s) const {
      return cat("sgd ", exact(s.lr), " ", exact(s.momentum), " ", exact(s.dampening), " ", s.nesterov, " ",
                 exact(s.weight_decay), " ", describe(s.schedule));
    }
    std::string operator()(const optim::Adam& a) const {
      return cat("adam ", exact(a.lr), " ", exact(a.beta1), " ", exact(a.beta2), " ", exact(a.eps), " ",
                 exact(a.weight_decay), " ", describe(a.schedule));
    }
    std::string operator()(const optim::AdamW& a) const {
      return cat("adamw ", exact(a.lr), " ", exact(a.beta1), " ", exact(a.beta2), " ", exact(a.eps), " ",
                 exact(a.weight_decay), " ", describe(a.schedule));
    }
    std::string operator()(const optim::LAMB& l) const {
      return cat("lamb ", exact(l.lr), " ", exact(l.beta1), " ", exact(l.beta2), " ", exact(l.eps), " ",
                 exact(l.weight_decay), " ", l.bias_correction, " ", exact(l.max_trust_ratio), " ",
                 describe(l.schedule));
    }
  };
  return std::visit(Visit{}, o);
}

std::string describe(const std::vector<ValueId>& vs) {
  std::string s;
  for (const ValueId& v : vs) s += cat(v.node, ":", v.output, " ");
  return s;
}

Digest program_key(const std::string& what, const GraphImpl& source, const std::string& request) {
  Sha256 h;
  h.update(cat(kProgramKeyVersion, " compiler ", kCompilerIdentity, "\n", what, "\n", request, "\n"));
  h.update(serialize_graph(source));
  return h.finish();
}

/// Empty for the CPU, so that keys of CPU programs are those of caches made before targets.
std::string target_suffix(CompileTarget t) { return t == CompileTarget::cpu ? "" : cat(" target ", name(t)); }

std::string describe(const TrainingRequest& r) {
  return cat("loss ", r.loss.node, ":", r.loss.output, " outputs ", describe(r.outputs), " ", describe(r.optimizer),
             " seed ", r.seed, " budget ", r.memory_budget, " fuse ", r.fuse, " world ", r.world, " bucket ",
             r.bucket_bytes, " shard ", r.shard, " rank ", r.rank, " autocast ", name(r.autocast), " scale ",
             r.guard.scale, " ", exact(r.guard.init_scale), " ", exact(r.guard.growth_factor), " ",
             exact(r.guard.backoff_factor), " ", r.guard.growth_interval, " clip ", exact(r.guard.max_grad_norm),
             target_suffix(r.target));
}

template <class Compile>
ScheduledGraph lookup_or_compile(const std::string& what, const GraphImpl& source, const std::string& request,
                                 KernelCache& cache, bool& hit, const Compile& compile) {
  const Digest key = program_key(what, source, request);
  hit = false;
  if (auto entry = cache.find(key, CacheKind::program)) {
    try {
      ScheduledGraph s = deserialize_scheduled_graph(*entry);
      hit = true;
      log().debug("program cache: hit {} {}", what, key.hex());
      return s;
    } catch (const Error& e) {
      log().warn("program cache: entry {} is unreadable ({}); compiling again", key.hex(), e.what());
    }
  }
  const auto start = std::chrono::steady_clock::now();
  ScheduledGraph s = compile();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  cache.put(key, CacheKind::program, serialize_scheduled_graph(s), seconds);
  return s;
}

}  // namespace

ScheduledGraph cached_training_graph(const GraphImpl& source, const TrainingRequest& r, KernelCache& cache, bool& hit) {
  return lookup_or_compile("training", source, describe(r), cache, hit,
                           [&] { return compile_training_graph(source, r); });
}

Digest training_graph_key(const GraphImpl& source, const TrainingRequest& request) {
  return program_key("training", source, describe(request));
}

ScheduledGraph cached_evaluation_graph(const GraphImpl& source, const std::vector<ValueId>& fetches, bool fuse,
                                       DType autocast, CompileTarget target, KernelCache& cache, bool& hit) {
  const std::string request =
      cat("fetches ", describe(fetches), " fuse ", fuse, " autocast ", name(autocast), target_suffix(target));
  return lookup_or_compile("evaluation", source, request, cache, hit,
                           [&] { return compile_evaluation_graph(source, fetches, fuse, autocast, target); });
}

}  // namespace trainrt::detail
