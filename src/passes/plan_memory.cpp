#include "passes/plan_memory.h"

#include <algorithm>
#include <climits>
#include <map>

#include "core/aligned.h"
#include "core/error.h"
#include "ir/fused.h"
#include "passes/schedule.h"

namespace trainrt::detail {

namespace {

/// Whether `value`'s producer, which reads variable `var`, may write `value` straight into
/// the variable: every operand that is the variable must be safe to write over in place.
bool writes_over(const GraphImpl& graph, ValueId value, ValueId var) {
  const Node& producer = graph.node(value.node);
  for (std::size_t k = 0; k < producer.inputs.size(); ++k)
    if (producer.inputs[k] == var && !may_write_over_operand(graph, value.node, value.output, k)) return false;
  return true;
}

std::size_t bytes_of(const TensorType& t) {
  return align_up(static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype));
}

/// Ancestor sets by schedule position, grown while planning: the plan's own ordering edges
/// (to the node being placed, from earlier ones) extend the current node's set, and later
/// nodes inherit it through their predecessors.
class Order {
 public:
  Order(std::size_t nodes) : words_((nodes + 63) / 64), bits_(nodes * words_, 0) {}
  bool before(int a, int b) const {
    return (bits_[static_cast<std::size_t>(b) * words_ + static_cast<std::size_t>(a) / 64] >> (a % 64)) & 1u;
  }
  /// Makes a (and its ancestors) ancestors of b.
  void add(int a, int b) {
    std::uint64_t* to = bits_.data() + static_cast<std::size_t>(b) * words_;
    const std::uint64_t* from = bits_.data() + static_cast<std::size_t>(a) * words_;
    for (std::size_t w = 0; w < words_; ++w) to[w] |= from[w];
    to[static_cast<std::size_t>(a) / 64] |= std::uint64_t{1} << (a % 64);
  }

 private:
  std::size_t words_;
  std::vector<std::uint64_t> bits_;
};

/// Best-fit placement of blocks in a growing arena. A free block remembers the schedule
/// positions of the nodes that last touched it. The node at position p takes, in order of
/// preference: the best-fitting block all of whose users happen before p; the best-fitting
/// block at all, ordering its users before p (their positions go to `ordered`); new space.
class ArenaAllocator {
 public:
  explicit ArenaAllocator(Order& order) : order_(order) {}

  std::size_t allocate(std::size_t size, int p, std::vector<int>& ordered) {
    if (size == 0) return 0;
    auto best = free_.end(), any = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->second.size < size) continue;
      if (safe(it->second, p) && (best == free_.end() || it->second.size < best->second.size)) best = it;
      if (any == free_.end() || it->second.size < any->second.size) any = it;
    }
    if (best == free_.end() && any != free_.end()) {
      for (int u : any->second.users)
        if (!order_.before(u, p)) {
          order_.add(u, p);
          ordered.push_back(u);
        }
      best = any;
    }
    if (best != free_.end()) {
      const std::size_t off = best->first;
      Block rest = best->second;
      free_.erase(best);
      if (rest.size > size) {
        rest.size -= size;
        free_.emplace(off + size, std::move(rest));
      }
      return off;
    }
    // Grow: start from a safe free block that ends at the arena's end, else append.
    std::size_t off = end_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second.size == end_ && safe(last->second, p)) {
        off = last->first;
        free_.erase(last);
      }
    }
    end_ = off + size;
    peak_ = std::max(peak_, end_);
    return off;
  }

  /// Frees [off, off + size), last touched by the nodes at `users`.
  void release(std::size_t off, std::size_t size, std::vector<int> users) {
    if (size == 0) return;
    auto [it, inserted] = free_.emplace(off, Block{size, std::move(users)});
    check_internal(inserted, "arena block released twice");
    // Merge with free neighbours; the merged block remembers every user.
    auto next = std::next(it);
    if (next != free_.end() && it->first + it->second.size == next->first) {
      it->second.size += next->second.size;
      merge(it->second.users, next->second.users);
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second.size == it->first) {
        prev->second.size += it->second.size;
        merge(prev->second.users, it->second.users);
        free_.erase(it);
      }
    }
  }

  std::size_t peak() const noexcept { return peak_; }

 private:
  struct Block {
    std::size_t size;
    std::vector<int> users;  // schedule positions, sorted, unique
  };

  bool safe(const Block& b, int p) const {
    for (int u : b.users)
      if (!order_.before(u, p)) return false;
    return true;
  }
  static void merge(std::vector<int>& into, const std::vector<int>& from) {
    std::vector<int> out;
    std::set_union(into.begin(), into.end(), from.begin(), from.end(), std::back_inserter(out));
    into.swap(out);
  }

  Order& order_;
  std::map<std::size_t, Block> free_;  // offset -> block
  std::size_t end_ = 0, peak_ = 0;
};

}  // namespace

MemoryPlan plan_memory(const GraphImpl& graph, const std::vector<std::int32_t>& schedule, const Dag& dag,
                       const PlanOptions& options) {
  const auto n = static_cast<std::size_t>(graph.size());
  MemoryPlan plan;
  plan.buffers.resize(n);
  plan.scratch_offset.assign(n, 0);
  plan.elided.assign(n, false);
  plan.extra_preds.resize(n);
  for (std::size_t i = 0; i < n; ++i) plan.buffers[i].resize(graph.node(static_cast<std::int32_t>(i)).outputs.size());

  std::vector<int> pos(n, -1);
  for (std::size_t p = 0; p < schedule.size(); ++p) pos[static_cast<std::size_t>(schedule[p])] = static_cast<int>(p);
  const Ancestors anc(schedule, dag);
  auto before = [&](std::int32_t a, std::int32_t b) {
    return anc.before(pos[static_cast<std::size_t>(a)], pos[static_cast<std::size_t>(b)]);
  };

  // Readers of every value, in schedule order; the last one ends its life (keep-alive
  // values live to the end of the step).
  std::map<ValueId, std::vector<std::int32_t>> readers;
  for (std::int32_t node : schedule)
    for (const ValueId& in : graph.node(node).inputs)
      if (in.valid()) readers[in].push_back(node);
  std::map<ValueId, int> last_use;
  for (std::int32_t node : schedule) {
    const Node& nd = graph.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o)
      last_use[{node, o}] = pos[static_cast<std::size_t>(node)];
    for (const ValueId& in : nd.inputs)
      if (in.valid()) last_use[in] = std::max(last_use[in], pos[static_cast<std::size_t>(node)]);
  }
  for (const ValueId& v : options.keep_alive) last_use[v] = INT_MAX;

  // Which assignments can be elided: the producer writes straight into the variable.
  std::map<ValueId, std::int32_t> write_into_variable;  // value -> variable node
  for (std::int32_t a : schedule) {
    const Node& an = graph.node(a);
    if (an.kind != OpKind::Assign) continue;
    const ValueId var = an.inputs[0], value = an.inputs[1];
    const Node& producer = graph.node(value.node);
    if (op_family(producer.kind) == OpFamily::State || producer.kind == OpKind::Reshape) continue;
    if (write_into_variable.contains(value)) continue;
    if (!std::all_of(dag.barriers.begin(), dag.barriers.end(), [&](std::int32_t b) { return before(b, value.node); }))
      continue;
    bool ok = true;
    for (std::int32_t r : readers[var]) {
      if (r == a) continue;
      if (r == value.node)  // the producer reads the old value: safe only elementwise, same type
        ok = writes_over(graph, value, var);
      else ok = before(r, value.node);
      if (!ok) break;
    }
    if (!ok) continue;
    write_into_variable[value] = var.node;
    plan.elided[static_cast<std::size_t>(a)] = true;
  }

  // Arena buffers are groups: a value and the reshapes that alias it. A group lives from
  // its producer to the last reader of any member; `users` are the positions that touch it.
  struct Group {
    std::size_t bytes = 0;
    std::size_t offset = 0;
    int last = -1;
    std::int32_t producer = -1;
    std::vector<int> users;
  };
  std::vector<Group> groups;
  std::map<ValueId, int> group_of;
  for (std::int32_t node : schedule) {
    const Node& nd = graph.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) {
      const ValueId v{node, o};
      int gi = -1;
      if (nd.kind == OpKind::Reshape && group_of.contains(nd.inputs[0])) {
        gi = group_of[nd.inputs[0]];
      } else if (op_family(nd.kind) != OpFamily::State && nd.kind != OpKind::Reshape &&
                 !write_into_variable.contains(v)) {
        gi = static_cast<int>(groups.size());
        groups.push_back({bytes_of(nd.outputs[static_cast<std::size_t>(o)]), 0, -1, node, {}});
      }
      if (gi < 0) continue;
      group_of[v] = gi;
      Group& g = groups[static_cast<std::size_t>(gi)];
      g.last = std::max(g.last, last_use[v]);
      g.users.push_back(pos[static_cast<std::size_t>(node)]);
      for (std::int32_t r : readers[v]) g.users.push_back(pos[static_cast<std::size_t>(r)]);
    }
  }
  for (Group& g : groups) {
    std::sort(g.users.begin(), g.users.end());
    g.users.erase(std::unique(g.users.begin(), g.users.end()), g.users.end());
  }

  Order order(schedule.size());
  ArenaAllocator arena(order);
  std::vector<bool> placed(groups.size(), false);
  std::vector<std::vector<int>> release_at(schedule.size());
  for (std::size_t p = 0; p < schedule.size(); ++p) {
    const std::int32_t node = schedule[p];
    const Node& nd = graph.node(node);
    // This node's ancestors: its DAG predecessors' and the orderings the plan added to them.
    for (std::int32_t pred : dag.preds[static_cast<std::size_t>(node)])
      order.add(pos[static_cast<std::size_t>(pred)], static_cast<int>(p));
    std::vector<int> ordered;  // positions this node must now wait for
    std::vector<int> taken;    // operand groups handed over to outputs (in place)
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) {
      auto it = group_of.find({node, o});
      if (it == group_of.end() || placed[static_cast<std::size_t>(it->second)]) continue;
      Group& g = groups[static_cast<std::size_t>(it->second)];
      bool in_place = false;
      if (is_elementwise(nd.kind) || nd.kind == OpKind::Fused) {
        for (std::size_t k = 0; k < nd.inputs.size(); ++k) {
          const ValueId& in = nd.inputs[k];
          auto git = group_of.find(in);
          if (git == group_of.end() || !placed[static_cast<std::size_t>(git->second)]) continue;
          if (!may_write_over_operand(graph, node, o, k)) continue;
          const Group& src = groups[static_cast<std::size_t>(git->second)];
          if (src.last != static_cast<int>(p) || src.bytes != g.bytes ||
              !(graph.type(in) == nd.outputs[static_cast<std::size_t>(o)]))
            continue;
          if (std::find(taken.begin(), taken.end(), git->second) != taken.end()) continue;
          // Every other node that touches the operand must be done before this one writes.
          const bool exclusive = std::all_of(src.users.begin(), src.users.end(), [&](int u) {
            return u == static_cast<int>(p) || order.before(u, static_cast<int>(p));
          });
          if (!exclusive) continue;
          g.offset = src.offset;
          taken.push_back(git->second);
          in_place = true;
          break;
        }
      }
      if (!in_place) g.offset = arena.allocate(g.bytes, static_cast<int>(p), ordered);
      placed[static_cast<std::size_t>(it->second)] = true;
      if (g.last != INT_MAX)
        release_at[static_cast<std::size_t>(std::max(g.last, static_cast<int>(p)))].push_back(it->second);
    }
    const std::size_t scratch = static_cast<std::size_t>(node) < options.scratch_bytes.size()
                                    ? align_up(options.scratch_bytes[static_cast<std::size_t>(node)])
                                    : 0;
    if (scratch) {
      plan.scratch_offset[static_cast<std::size_t>(node)] = arena.allocate(scratch, static_cast<int>(p), ordered);
      arena.release(plan.scratch_offset[static_cast<std::size_t>(node)], scratch, {static_cast<int>(p)});
      plan.naive_bytes += scratch;
    }
    for (int u : ordered)
      plan.extra_preds[static_cast<std::size_t>(node)].push_back(schedule[static_cast<std::size_t>(u)]);
    for (int gi : release_at[p]) {
      if (std::find(taken.begin(), taken.end(), gi) != taken.end()) continue;  // lives on as an output
      // Users of a group this one was written in place over all happen before its writer,
      // which is among its own users: the group's users alone guard the block.
      const Group& g = groups[static_cast<std::size_t>(gi)];
      arena.release(g.offset, g.bytes, g.users);
    }
  }

  // Fill in every value's buffer.
  for (std::int32_t node : schedule) {
    const Node& nd = graph.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) {
      const ValueId v{node, o};
      BufferRef& ref = plan.buffers[static_cast<std::size_t>(node)][static_cast<std::size_t>(o)];
      if (auto it = group_of.find(v); it != group_of.end()) {
        ref = {Storage::arena, -1, groups[static_cast<std::size_t>(it->second)].offset};
      } else if (auto w = write_into_variable.find(v); w != write_into_variable.end()) {
        ref = {Storage::variable, w->second, 0};
      } else if (nd.kind == OpKind::Input) {
        ref = {Storage::input, node, 0};
      } else if (nd.kind == OpKind::Variable) {
        ref = {Storage::variable, node, 0};
      } else if (nd.kind == OpKind::Constant || nd.kind == OpKind::Full) {
        ref = {Storage::constant, node, 0};
      } else if (nd.kind == OpKind::Reshape) {
        ref = plan.at(nd.inputs[0]);  // an alias of a feed, variable or constant
      }
    }
  }
  for (const Group& g : groups) plan.naive_bytes += g.bytes;
  plan.arena_bytes = arena.peak();
  for (const Group& g : groups) plan.largest.emplace_back(g.bytes, g.producer);
  std::sort(plan.largest.begin(), plan.largest.end(), std::greater<>());
  if (plan.largest.size() > 10) plan.largest.resize(10);
  return plan;
}

}  // namespace trainrt::detail
