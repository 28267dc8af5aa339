#include "passes/plan_memory.h"

#include <algorithm>
#include <climits>
#include <map>

#include "core/aligned.h"
#include "core/error.h"

namespace trainrt::detail {

namespace {

std::size_t bytes_of(const TensorType& t) {
  return align_up(static_cast<std::size_t>(t.shape.numel()) * size_of(t.dtype));
}

/// Best-fit placement of blocks in a growing arena.
class ArenaAllocator {
 public:
  std::size_t allocate(std::size_t size) {
    if (size == 0) return 0;
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= size && (best == free_.end() || it->second < best->second)) best = it;
    if (best != free_.end()) {
      const std::size_t off = best->first, rest = best->second - size;
      free_.erase(best);
      if (rest) free_[off + size] = rest;
      return off;
    }
    // Grow: reuse a free block that ends at the arena's end, else append.
    std::size_t off = end_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == end_) {
        off = last->first;
        free_.erase(last);
      }
    }
    end_ = off + size;
    peak_ = std::max(peak_, end_);
    return off;
  }

  void release(std::size_t off, std::size_t size) {
    if (size == 0) return;
    auto [it, inserted] = free_.emplace(off, size);
    check_internal(inserted, "arena block released twice");
    auto next = std::next(it);
    if (next != free_.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_.erase(it);
      }
    }
  }

  std::size_t peak() const noexcept { return peak_; }

 private:
  std::map<std::size_t, std::size_t> free_;  // offset -> size
  std::size_t end_ = 0, peak_ = 0;
};

}  // namespace

MemoryPlan plan_memory(const GraphImpl& graph, const std::vector<std::int32_t>& schedule, const PlanOptions& options) {
  const std::size_t n = static_cast<std::size_t>(graph.size());
  MemoryPlan plan;
  plan.buffers.resize(n);
  plan.scratch_offset.assign(n, 0);
  plan.elided.assign(n, false);
  for (std::size_t i = 0; i < n; ++i) plan.buffers[i].resize(graph.node(static_cast<std::int32_t>(i)).outputs.size());

  std::vector<int> pos(n, -1);
  for (std::size_t p = 0; p < schedule.size(); ++p) pos[static_cast<std::size_t>(schedule[p])] = static_cast<int>(p);

  // Last reader of every value (keep-alive values: the end of the step).
  std::map<ValueId, int> last_use;
  for (std::int32_t node : schedule) {
    const Node& nd = graph.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) last_use[{node, o}] = pos[static_cast<std::size_t>(node)];
    for (const ValueId& in : nd.inputs)
      if (in.valid()) last_use[in] = std::max(last_use[in], pos[static_cast<std::size_t>(node)]);
  }
  for (const ValueId& v : options.keep_alive) last_use[v] = INT_MAX;

  // Which assignments can be elided: see the header.
  std::map<ValueId, std::int32_t> write_into_variable;  // value -> variable node
  const int guard_pos = options.guard_node >= 0 ? pos[static_cast<std::size_t>(options.guard_node)] : -1;
  for (std::int32_t a : schedule) {
    const Node& an = graph.node(a);
    if (an.kind != OpKind::Assign) continue;
    const ValueId var = an.inputs[0], value = an.inputs[1];
    const Node& producer = graph.node(value.node);
    const int ppos = pos[static_cast<std::size_t>(value.node)];
    if (op_family(producer.kind) == OpFamily::State || producer.kind == OpKind::Reshape) continue;
    if (ppos <= guard_pos || write_into_variable.count(value)) continue;
    bool ok = true;
    for (std::int32_t r : schedule) {
      if (r == a) continue;
      const Node& rn = graph.node(r);
      for (std::size_t k = 0; ok && k < rn.inputs.size(); ++k) {
        if (rn.inputs[k] != var) continue;
        if (r == value.node)  // the producer reads the old value: safe only elementwise, same type
          ok = is_elementwise(rn.kind) && graph.type(var) == rn.outputs[static_cast<std::size_t>(value.output)];
        else
          ok = pos[static_cast<std::size_t>(r)] < ppos;
      }
      if (!ok) break;
    }
    if (!ok) continue;
    write_into_variable[value] = var.node;
    plan.elided[static_cast<std::size_t>(a)] = true;
  }

  // Arena buffers are groups: a value and the reshapes that alias it. A group lives from
  // its producer to the last reader of any member.
  struct Group {
    std::size_t bytes = 0;
    std::size_t offset = 0;
    int last = -1;
    std::int32_t producer = -1;
  };
  std::vector<Group> groups;
  std::map<ValueId, int> group_of;
  for (std::int32_t node : schedule) {
    const Node& nd = graph.node(node);
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) {
      const ValueId v{node, o};
      if (nd.kind == OpKind::Reshape && group_of.count(nd.inputs[0])) {
        const int gi = group_of[nd.inputs[0]];
        group_of[v] = gi;
        groups[static_cast<std::size_t>(gi)].last = std::max(groups[static_cast<std::size_t>(gi)].last, last_use[v]);
        continue;
      }
      if (op_family(nd.kind) == OpFamily::State || nd.kind == OpKind::Reshape || write_into_variable.count(v)) continue;
      group_of[v] = static_cast<int>(groups.size());
      groups.push_back({bytes_of(nd.outputs[static_cast<std::size_t>(o)]), 0, last_use[v], node});
    }
  }

  ArenaAllocator arena;
  std::vector<bool> placed(groups.size(), false);
  std::vector<std::vector<int>> release_at(schedule.size());
  for (std::size_t p = 0; p < schedule.size(); ++p) {
    const std::int32_t node = schedule[p];
    const Node& nd = graph.node(node);
    std::vector<int> taken;  // operand groups handed over to outputs (in place)
    for (std::int32_t o = 0; o < static_cast<std::int32_t>(nd.outputs.size()); ++o) {
      const ValueId v{node, o};
      auto it = group_of.find(v);
      if (it == group_of.end() || placed[static_cast<std::size_t>(it->second)]) continue;
      Group& g = groups[static_cast<std::size_t>(it->second)];
      bool in_place = false;
      if (is_elementwise(nd.kind)) {
        for (const ValueId& in : nd.inputs) {
          auto git = group_of.find(in);
          if (git == group_of.end() || !placed[static_cast<std::size_t>(git->second)]) continue;
          Group& src = groups[static_cast<std::size_t>(git->second)];
          if (src.last != static_cast<int>(p) || src.bytes != g.bytes || !(graph.type(in) == nd.outputs[static_cast<std::size_t>(o)]))
            continue;
          if (std::find(taken.begin(), taken.end(), git->second) != taken.end()) continue;
          g.offset = src.offset;
          taken.push_back(git->second);
          in_place = true;
          break;
        }
      }
      if (!in_place) g.offset = arena.allocate(g.bytes);
      placed[static_cast<std::size_t>(it->second)] = true;
      if (g.last != INT_MAX) release_at[static_cast<std::size_t>(std::max(g.last, static_cast<int>(p)))].push_back(it->second);
    }
    const std::size_t scratch = static_cast<std::size_t>(node) < options.scratch_bytes.size()
                                    ? align_up(options.scratch_bytes[static_cast<std::size_t>(node)])
                                    : 0;
    if (scratch) {
      plan.scratch_offset[static_cast<std::size_t>(node)] = arena.allocate(scratch);
      arena.release(plan.scratch_offset[static_cast<std::size_t>(node)], scratch);
      plan.naive_bytes += scratch;
    }
    for (int gi : release_at[p]) {
      if (std::find(taken.begin(), taken.end(), gi) != taken.end()) continue;  // lives on as an output
      arena.release(groups[static_cast<std::size_t>(gi)].offset, groups[static_cast<std::size_t>(gi)].bytes);
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
