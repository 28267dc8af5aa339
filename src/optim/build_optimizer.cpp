#include "optim/build_optimizer.h"

#include <cmath>
#include <functional>
#include <map>
#include <numbers>

#include "core/error.h"
#include "ir/builder.h"
#include "ir/internal_ops.h"
#include "ir/node.h"
#include "passes/bucket_gradients.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

namespace {

const Loc kLoc = Loc::current();

void require(bool ok, std::string_view opt, std::string_view field, double value, std::string_view rule) {
  if (!ok) fail(ErrorKind::InvalidArgument, cat("optim::", opt, ": ", field, " must be ", rule, ", got ", value));
}

void validate_schedule(std::string_view opt, const optim::Schedule& s) {
  require(s.warmup_steps >= 0, opt, "schedule.warmup_steps", double(s.warmup_steps), ">= 0");
  if (s.kind == optim::Schedule::Kind::step) {
    require(s.step_size >= 1, opt, "schedule.step_size", double(s.step_size), ">= 1");
    require(s.gamma > 0, opt, "schedule.gamma", s.gamma, "> 0");
  }
  if (s.kind == optim::Schedule::Kind::cosine) {
    require(s.total_steps >= 1, opt, "schedule.total_steps", double(s.total_steps), ">= 1");
    require(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1, opt, "schedule.min_lr_ratio", s.min_lr_ratio, "in [0, 1]");
  }
}

template <class AdamLike>
void validate_adam(std::string_view name, const AdamLike& o) {
  require(o.lr >= 0, name, "lr", o.lr, ">= 0");
  require(o.beta1 >= 0 && o.beta1 < 1, name, "beta1", o.beta1, "in [0, 1)");
  require(o.beta2 >= 0 && o.beta2 < 1, name, "beta2", o.beta2, "in [0, 1)");
  require(o.eps > 0, name, "eps", o.eps, "> 0");
  require(o.weight_decay >= 0, name, "weight_decay", o.weight_decay, ">= 0");
  validate_schedule(name, o.schedule);
}

/// A scalar value of `like`'s dtype.
Value scalar_of(const Value& s, const Value& like) { return cast(s, like.dtype(), kLoc); }

/// The schedule's factor at step t (f64 scalar), warm-up included.
Value schedule_factor(const optim::Schedule& s, const Value& t) {
  Graph g = t.graph();
  auto c = [&](double v) { return g.scalar(v, DType::f64); };
  Value factor = c(1.0);
  const auto w = static_cast<double>(s.warmup_steps);
  const Value since = w > 0 ? maximum(t - w, c(0.0), kLoc) : t;  // steps after warm-up
  switch (s.kind) {
    case optim::Schedule::Kind::constant: break;
    case optim::Schedule::Kind::step:
      factor = pow(c(s.gamma), floor(since / static_cast<double>(s.step_size), kLoc), kLoc);
      break;
    case optim::Schedule::Kind::cosine: {
      const Value progress = minimum(since / static_cast<double>(s.total_steps), c(1.0), kLoc);
      const Value cosine = (cos(progress * std::numbers::pi, kLoc) + 1.0) * 0.5;
      factor = s.min_lr_ratio + cosine * (1.0 - s.min_lr_ratio);
      break;
    }
  }
  if (w > 0) factor = where(lt(t, c(w), kLoc), (t + 1.0) / w, factor, kLoc);
  return factor;
}

struct Context {
  std::shared_ptr<GraphImpl> graph;
  Value step;   // i64 count of updates applied before this step (the step counter, or
                // kAppliedStepsVariable when steps can be skipped)
  Value t;      // that count as f64
  Value clock;  // f64 step counter, skipped steps included: the schedule's time
  Value lr;     // f64 learning rate of this step
  Value skip;   // bool scalar: leave everything unchanged this step (invalid: never)
  // Scalars shared by every parameter of one dtype (-lr, momentum, ...), made once.
  std::map<std::pair<int, DType>, Value> shared;
  Value once(int what, DType dtype, const std::function<Value()>& make) {
    auto [it, fresh] = shared.try_emplace({what, dtype});
    if (fresh) it->second = make();
    return it->second;
  }
};
enum Shared {
  kNegLr,
  kMomentum,
  kDecay,
  kBeta1,
  kBeta2,
  kEps,
  kStepSize,
  kInvSqrtBc2,
  kDecoupled,
  kInvBc1,
  kZero,
  kOne
};

/// Writes the new value of optimizer state or of a parameter. Every update writes through
/// here, so a step that must be skipped (a gradient overflow under loss scaling) can keep
/// every piece of state as it was.
void commit(const Context& c, const Value& target, const Value& next) {
  assign(target, c.skip.valid() ? where(c.skip, target, next, kLoc) : next, kLoc);
}

/// Creates the state tensor "<owner>.<suffix>" shaped like `param`, zero-initialized.
Value state_of(const Context& c, const Value& param, const std::string& owner, const char* suffix) {
  return optimizer_variable(c.graph, owner + "." + suffix, param.shape(), init::zeros(), param.dtype());
}

/// The updated value of `p` (a parameter, or a shard of parameters) given its gradient; its
/// state tensors are named after `owner`.
Value sgd(Context& c, const optim::SGD& o, const Value& p, const Value& grad, const std::string& owner) {
  Graph gr = p.graph();
  const DType dt = p.dtype();
  const Value g = o.weight_decay != 0
                      ? fma(p, c.once(kDecay, dt, [&] { return gr.scalar(o.weight_decay, dt); }), grad, kLoc)
                      : grad;
  const Value momentum = o.momentum != 0 ? c.once(kMomentum, dt, [&] { return gr.scalar(o.momentum, dt); }) : Value{};
  Value d = g;
  if (o.momentum != 0) {
    const Value buf = state_of(c, p, owner, "momentum_buffer");
    Value buf_new;
    if (o.dampening == 0) {
      buf_new = fma(buf, momentum, g, kLoc);  // buf is 0 before the first step
    } else {
      // The first step takes the gradient undamped (buf = g), as in PyTorch.
      const Value first = eq(c.step, gr.scalar(0, DType::i64), kLoc);
      const Value keep =
          scalar_of(where(first, gr.scalar(0.0, DType::f64), gr.scalar(o.momentum, DType::f64), kLoc), p);
      const Value take =
          scalar_of(where(first, gr.scalar(1.0, DType::f64), gr.scalar(1.0 - o.dampening, DType::f64), kLoc), p);
      buf_new = fma(buf, keep, g * take, kLoc);
    }
    commit(c, buf, buf_new);
    d = o.nesterov ? fma(buf_new, momentum, g, kLoc) : buf_new;
  }
  return fma(d, c.once(kNegLr, dt, [&] { return scalar_of(neg(c.lr, kLoc), p); }), p, kLoc);
}

template <class AdamLike>
Value adam(Context& c, const AdamLike& o, bool decoupled, const Value& p, const Value& grad, const std::string& owner) {
  Graph gr = p.graph();
  const DType dt = p.dtype();
  const Value g = !decoupled && o.weight_decay != 0
                      ? fma(p, c.once(kDecay, dt, [&] { return gr.scalar(o.weight_decay, dt); }), grad, kLoc)
                      : grad;
  const Value m = state_of(c, p, owner, "exp_avg"), v = state_of(c, p, owner, "exp_avg_sq");
  const Value m_new = fma(m, c.once(kBeta1, dt, [&] { return gr.scalar(o.beta1, dt); }), g * (1.0 - o.beta1), kLoc);
  const Value v_new =
      fma(v, c.once(kBeta2, dt, [&] { return gr.scalar(o.beta2, dt); }), (g * g) * (1.0 - o.beta2), kLoc);
  commit(c, m, m_new);
  commit(c, v, v_new);
  // Bias corrections at step t + 1 (scalars): step_size = lr / (1 - b1^(t+1)),
  // denom = sqrt(v) / sqrt(1 - b2^(t+1)) + eps.
  const Value step_size = c.once(kStepSize, dt, [&] {
    const Value bc1 = 1.0 - pow(gr.scalar(o.beta1, DType::f64), c.t + 1.0, kLoc);
    return scalar_of(neg(c.lr / bc1, kLoc), p);
  });
  const Value inv_sqrt_bc2 = c.once(kInvSqrtBc2, dt, [&] {
    const Value bc2 = 1.0 - pow(gr.scalar(o.beta2, DType::f64), c.t + 1.0, kLoc);
    return scalar_of(rsqrt(bc2, kLoc), p);
  });
  const Value denom =
      fma(sqrt(v_new, kLoc), inv_sqrt_bc2, c.once(kEps, dt, [&] { return gr.scalar(o.eps, dt); }), kLoc);
  Value base = p;
  if (decoupled && o.weight_decay != 0)
    base = p * c.once(kDecoupled, dt, [&] { return scalar_of(1.0 - c.lr * o.weight_decay, p); });
  return fma(m_new / denom, step_size, base, kLoc);
}

/// LAMB (optim::LAMB): the Adam direction plus decoupled decay, scaled per parameter by the
/// trust ratio ||p|| / ||u||. The norms are reductions over the whole of `p`, accumulated in
/// f32 (f64 for f64 parameters) whatever the parameter's dtype.
Value lamb(Context& c, const optim::LAMB& o, const Value& p, const Value& grad, const std::string& owner) {
  Graph gr = p.graph();
  const DType dt = p.dtype();
  const Value m = state_of(c, p, owner, "exp_avg"), v = state_of(c, p, owner, "exp_avg_sq");
  const Value m_new = fma(m, c.once(kBeta1, dt, [&] { return gr.scalar(o.beta1, dt); }), grad * (1.0 - o.beta1), kLoc);
  const Value v_new =
      fma(v, c.once(kBeta2, dt, [&] { return gr.scalar(o.beta2, dt); }), (grad * grad) * (1.0 - o.beta2), kLoc);
  commit(c, m, m_new);
  commit(c, v, v_new);
  const Value eps = c.once(kEps, dt, [&] { return gr.scalar(o.eps, dt); });
  Value u;
  if (o.bias_correction) {
    // At step t + 1: mhat = m / (1 - b1^(t+1)), sqrt(vhat) = sqrt(v) / sqrt(1 - b2^(t+1)).
    const Value inv_bc1 = c.once(kInvBc1, dt, [&] {
      const Value bc1 = 1.0 - pow(gr.scalar(o.beta1, DType::f64), c.t + 1.0, kLoc);
      return scalar_of(1.0 / bc1, p);
    });
    const Value inv_sqrt_bc2 = c.once(kInvSqrtBc2, dt, [&] {
      const Value bc2 = 1.0 - pow(gr.scalar(o.beta2, DType::f64), c.t + 1.0, kLoc);
      return scalar_of(rsqrt(bc2, kLoc), p);
    });
    u = (m_new * inv_bc1) / fma(sqrt(v_new, kLoc), inv_sqrt_bc2, eps, kLoc);
  } else {
    u = m_new / (sqrt(v_new, kLoc) + eps);
  }
  if (o.weight_decay != 0) u = fma(p, c.once(kDecay, dt, [&] { return gr.scalar(o.weight_decay, dt); }), u, kLoc);

  // The trust ratio, a scalar of the norms' dtype: 1 where either norm is 0, then clamped.
  const DType nt = dt == DType::f64 ? DType::f64 : DType::f32;
  auto norm = [&](const Value& x) {
    const Value xn = x.dtype() == nt ? x : cast(x, nt, kLoc);
    return sqrt(sum(xn * xn, {}, false, kLoc), kLoc);
  };
  const Value p_norm = norm(p), u_norm = norm(u);
  const Value zero = c.once(kZero, nt, [&] { return gr.scalar(0.0, nt); }),
              one = c.once(kOne, nt, [&] { return gr.scalar(1.0, nt); });
  const Value both = logical_and(gt(p_norm, zero, kLoc), gt(u_norm, zero, kLoc), kLoc);
  // The divisor is never 0, so the branch not taken holds no inf or NaN either.
  Value ratio = where(both, p_norm / where(both, u_norm, one, kLoc), one, kLoc);
  if (o.max_trust_ratio > 0) ratio = minimum(ratio, gr.scalar(o.max_trust_ratio, nt), kLoc);
  const Value neg_lr = c.once(kNegLr, dt, [&] { return scalar_of(neg(c.lr, kLoc), p); });
  return fma(u, neg_lr * (nt == dt ? ratio : cast(ratio, dt, kLoc)), p, kLoc);
}

/// The updated `p` under `optimizer` (None: p itself).
Value update(Context& c, const optim::Optimizer& optimizer, const Value& p, const Value& grad,
             const std::string& owner) {
  if (const auto* s = std::get_if<optim::SGD>(&optimizer)) return sgd(c, *s, p, grad, owner);
  if (const auto* a = std::get_if<optim::Adam>(&optimizer)) return adam(c, *a, false, p, grad, owner);
  if (const auto* w = std::get_if<optim::AdamW>(&optimizer)) return adam(c, *w, true, p, grad, owner);
  if (const auto* l = std::get_if<optim::LAMB>(&optimizer)) return lamb(c, *l, p, grad, owner);
  return p;
}

const optim::Schedule* schedule_of(const optim::Optimizer& o) {
  if (const auto* s = std::get_if<optim::SGD>(&o)) return &s->schedule;
  if (const auto* a = std::get_if<optim::Adam>(&o)) return &a->schedule;
  if (const auto* w = std::get_if<optim::AdamW>(&o)) return &w->schedule;
  if (const auto* l = std::get_if<optim::LAMB>(&o)) return &l->schedule;
  return nullptr;
}

double base_lr_of(const optim::Optimizer& o) {
  if (const auto* s = std::get_if<optim::SGD>(&o)) return s->lr;
  if (const auto* a = std::get_if<optim::Adam>(&o)) return a->lr;
  if (const auto* w = std::get_if<optim::AdamW>(&o)) return w->lr;
  if (const auto* l = std::get_if<optim::LAMB>(&o)) return l->lr;
  return 0.0;
}

}  // namespace

Value optimizer_variable(const std::shared_ptr<GraphImpl>& graph, const std::string& name, const Shape& shape,
                         const Init& init, DType dtype) {
  return add_op(OpKind::Variable, {}, VariableAttrs{init, VariableKind::optimizer}, kLoc, {TensorType{dtype, shape}},
                graph, name)
      .front();
}

void validate(const optim::Optimizer& optimizer) {
  if (const auto* s = std::get_if<optim::SGD>(&optimizer)) {
    require(s->lr >= 0, "SGD", "lr", s->lr, ">= 0");
    require(s->momentum >= 0, "SGD", "momentum", s->momentum, ">= 0");
    require(s->weight_decay >= 0, "SGD", "weight_decay", s->weight_decay, ">= 0");
    require(s->dampening >= 0 && s->dampening <= 1, "SGD", "dampening", s->dampening, "in [0, 1]");
    if (s->nesterov && (s->momentum <= 0 || s->dampening != 0))
      fail(ErrorKind::InvalidArgument, "optim::SGD: nesterov needs momentum > 0 and dampening = 0");
    validate_schedule("SGD", s->schedule);
  } else if (const auto* a = std::get_if<optim::Adam>(&optimizer)) {
    validate_adam("Adam", *a);
  } else if (const auto* w = std::get_if<optim::AdamW>(&optimizer)) {
    validate_adam("AdamW", *w);
  } else if (const auto* l = std::get_if<optim::LAMB>(&optimizer)) {
    validate_adam("LAMB", *l);
    require(l->max_trust_ratio >= 0, "LAMB", "max_trust_ratio", l->max_trust_ratio, ">= 0 (0: no bound)");
  }
}

namespace {

/// The shared part of every update: the learning rate from the schedule and the step counter.
Context begin_update(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer, const Value& step,
                     const Value& skip) {
  // Scalar optimizer math (schedule, bias corrections) is f64, as torch.optim's Python
  // floats are; each result is cast once to the parameters' dtype.
  const Value clock = cast(step, DType::f64, kLoc);
  Context c{graph, step, clock, clock, {}, skip, {}};
  if (skip.valid()) {
    // Bias corrections and SGD's first-step rule count the updates applied, as torch.optim's
    // state["step"] does when GradScaler skips optimizer.step(); the schedule keeps the clock.
    c.step = optimizer_variable(graph, kAppliedStepsVariable, Shape{}, init::zeros(), DType::i64);
    c.t = cast(c.step, DType::f64, kLoc);
    commit(c, c.step, c.step + Graph(graph).scalar(1, DType::i64));
  }
  if (const optim::Schedule* s = schedule_of(optimizer)) {
    const Value base =
        optimizer_variable(graph, kBaseLrVariable, Shape{}, init::constant(base_lr_of(optimizer)), DType::f64);
    c.lr = base * schedule_factor(*s, c.clock);
    assign(optimizer_variable(graph, kLrVariable, Shape{}, init::zeros(), DType::f64), c.lr, kLoc);
  }
  return c;
}

/// A copy: the update appends nodes, which may move the graph's node storage.
std::string name_of(const Context& c, const Value& param) { return c.graph->node(param.node()).name; }

}  // namespace

void build_optimizer(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer,
                     const std::vector<Value>& params, const std::vector<Value>& grads, const Value& step,
                     const Value& skip) {
  check_internal(params.size() == grads.size(), "build_optimizer: one gradient per parameter");
  const Phase saved = graph->phase();
  graph->set_phase(Phase::update);
  Context c = begin_update(graph, optimizer, step, skip);
  for (std::size_t i = 0; i < params.size(); ++i) {
    // Update nodes point at the parameter's creation, for messages and IR dumps.
    graph->set_location_override(graph->node(params[i].node()).loc);
    const Value next = update(c, optimizer, params[i], grads[i], name_of(c, params[i]));
    if (!std::holds_alternative<optim::None>(optimizer)) commit(c, params[i], next);
  }
  graph->set_location_override({});
  assign(step, step + Graph(graph).scalar(1, DType::i64), kLoc);
  graph->set_phase(saved);
}

std::vector<ShardBucket> shard_layout(const std::vector<Value>& params, std::int64_t world, std::size_t bucket_bytes) {
  std::vector<ShardBucket> out;
  for (const std::vector<std::size_t>& members : plan_buckets(params, bucket_bytes)) {
    ShardBucket b;
    b.members = members;
    for (std::size_t k : members) {
      b.offsets.push_back(b.total);
      b.total += params[k].shape().numel();
    }
    b.block = collective_block(b.total, world);
    out.push_back(std::move(b));
  }
  return out;
}

std::string shard_state_owner(std::size_t bucket) { return cat("optim.shard", bucket); }

void build_sharded_optimizer(const std::shared_ptr<GraphImpl>& graph, const optim::Optimizer& optimizer,
                             const std::vector<Value>& params, const std::vector<Value>& grads, const Value& step,
                             std::int64_t world, std::int64_t rank, std::size_t bucket_bytes) {
  check_internal(params.size() == grads.size(), "build_sharded_optimizer: one gradient per parameter");
  check_internal(rank >= 0 && rank < world, "build_sharded_optimizer: rank outside the world");
  if (std::holds_alternative<optim::LAMB>(optimizer))
    fail(ErrorKind::Unsupported,
         "compile: optim::LAMB cannot shard its state (DataParallel::shard_optimizer_state): its trust ratio needs "
         "the norm of each whole parameter, and a rank holds only a block of a bucket; use "
         "shard_optimizer_state = false");
  const std::vector<ShardBucket> layout = shard_layout(params, world, bucket_bytes);
  const Phase saved = graph->phase();
  // Every bucket's gradients are reduce-scattered as soon as backward has made them: these
  // collectives come first, so their order is the order backward finishes the buckets.
  graph->set_phase(Phase::backward);
  std::vector<Value> grad_blocks;
  for (std::size_t b = 0; b < layout.size(); ++b) {
    std::vector<Value> members;
    for (std::size_t k : layout[b].members) members.push_back(grads[k]);
    grad_blocks.push_back(
        reduce_scatter(members, {static_cast<std::int64_t>(b), world, 1.0 / static_cast<double>(world)}, kLoc));
  }
  graph->set_phase(Phase::update);
  Context c = begin_update(graph, optimizer, step, {});
  Graph gr(graph);
  for (std::size_t b = 0; b < layout.size(); ++b) {
    const ShardBucket& bucket = layout[b];
    // This rank's block of the bucket's parameters, flattened and zero-padded like the
    // gradients; the update runs on the block with state tensors of the block's size.
    std::vector<Value> flat;
    flat.reserve(bucket.members.size() + 1);
    for (std::size_t k : bucket.members) flat.push_back(reshape(params[k], {params[k].shape().numel()}, kLoc));
    const std::int64_t padded = bucket.block * world;
    const DType dtype = params[bucket.members.front()].dtype();
    if (padded > bucket.total) flat.push_back(gr.full(Shape{padded - bucket.total}, 0.0, dtype));
    const Value all = flat.size() == 1 ? flat.front() : concat(flat, 0, kLoc);
    const Value mine = slice(all, 0, rank * bucket.block, (rank + 1) * bucket.block, 1, kLoc);
    const Value next = update(c, optimizer, mine, grad_blocks[b], shard_state_owner(b));
    const Value gathered = all_gather(next, {static_cast<std::int64_t>(layout.size() + b), world, 1.0}, kLoc);
    for (std::size_t i = 0; i < bucket.members.size(); ++i) {
      const Value& p = params[bucket.members[i]];
      const std::int64_t at = bucket.offsets[i], n = p.shape().numel();
      assign(p, reshape(slice(gathered, 0, at, at + n, 1, kLoc), p.shape().dims(), kLoc), kLoc);
    }
  }
  assign(step, step + gr.scalar(1, DType::i64), kLoc);
  graph->set_phase(saved);
}

}  // namespace trainrt::detail
