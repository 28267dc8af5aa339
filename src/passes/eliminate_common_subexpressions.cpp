// passes/eliminate_common_subexpressions.cpp — see eliminate_common_subexpressions.h.
#include "passes/eliminate_common_subexpressions.h"

#include <unordered_map>
#include <vector>

#include "core/hash.h"
#include "ir/builder.h"

namespace trainrt::detail {

namespace {

/// Whether two nodes of this kind with equal operands and attributes are the same value.
bool mergeable(OpKind kind) {
  switch (kind) {
    case OpKind::Input:     // each input is its own feed
    case OpKind::Variable:  // each variable is its own storage
    case OpKind::Assign:    // a side effect, and it has no value to share
      return false;
    default:
      // Constant/Full: equal attributes mean equal bytes/value. Dropout/DropoutApply: equal
      // key, p and operands mean the same mask (see the header).
      return true;
  }
}

std::uint64_t key_of(OpKind kind, const std::vector<ValueId>& inputs, const Attrs& attrs,
                     const std::vector<TensorType>& outputs) {
  std::uint64_t h = hash_combine(0x637365ull, static_cast<std::uint64_t>(kind));
  for (const ValueId& in : inputs)
    h = hash_combine(h, (static_cast<std::uint64_t>(static_cast<std::uint32_t>(in.node)) << 32) |
                            static_cast<std::uint32_t>(in.output));
  h = hash_combine(h, attrs_hash(attrs));
  for (const TensorType& t : outputs) {
    h = hash_combine(h, static_cast<std::uint64_t>(t.dtype));
    for (std::int64_t d : t.shape) h = hash_combine(h, static_cast<std::uint64_t>(d));
  }
  return h;
}

}  // namespace

bool eliminate_common_subexpressions(std::shared_ptr<GraphImpl>& graph, ValueMap& map) {
  const GraphImpl& source = *graph;
  bool changed = false;
  // Nodes of the new graph by key; a bucket holds more than one node only on a collision.
  std::unordered_map<std::uint64_t, std::vector<std::int32_t>> seen;
  seen.reserve(static_cast<std::size_t>(source.size()));
  std::vector<ValueId> inputs;
  std::shared_ptr<GraphImpl> out = rewrite_graph(
      source,
      [&](std::int32_t i, Rewriter& rw) {
        const Node& n = source.node(i);
        if (!mergeable(n.kind) || n.outputs.empty()) return false;
        inputs.clear();
        for (const ValueId& in : n.inputs) inputs.push_back(in.valid() ? id_of(rw.value(in)) : in);
        const std::uint64_t key = key_of(n.kind, inputs, n.attrs, n.outputs);
        std::vector<std::int32_t>& bucket = seen[key];
        const GraphImpl& target = *rw.target();
        for (std::int32_t j : bucket) {
          const Node& m = target.node(j);
          if (m.kind != n.kind || m.inputs != inputs || m.outputs != n.outputs || !attrs_equal(m.attrs, n.attrs))
            continue;
          for (std::int32_t o = 0; o < static_cast<std::int32_t>(n.outputs.size()); ++o)
            rw.map_output(i, o, make_value(rw.target(), {j, o}));
          changed = true;
          return true;
        }
        rw.copy(i);
        bucket.push_back(target.size() - 1);
        return true;
      },
      map);
  graph = std::move(out);
  return changed;
}

}  // namespace trainrt::detail
