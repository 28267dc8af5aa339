#include "passes/rewrite.h"

#include "core/error.h"
#include "ir/builder.h"

namespace trainrt::detail {

ValueId ValueMap::operator()(ValueId from) const {
  auto it = map_.find(from);
  check_internal(it != map_.end(), "a value has no counterpart after a rewrite");
  return it->second;
}

ValueMap ValueMap::then(const ValueMap& next) const {
  ValueMap out;
  for (const auto& [from, to] : map_)
    if (next.contains(to)) out.set(from, next(to));
  return out;
}

Value Rewriter::value(ValueId old) const {
  if (!old.valid()) return {};
  return make_value(target_, map_(old));
}

void Rewriter::map_output(std::int32_t node, std::int32_t out, const Value& v) {
  check_internal(v.impl() == target_.get(), "a rewrite mapped a value of another graph");
  map_.set({node, out}, id_of(v));
}

void Rewriter::copy(std::int32_t node) {
  Node n = source_.node(node);
  for (ValueId& in : n.inputs)
    if (in.valid()) in = map_(in);
  const Phase saved = target_->phase();
  target_->set_phase(n.phase);
  const std::int32_t index = target_->append(std::move(n));
  target_->set_phase(saved);
  for (std::int32_t o = 0; o < static_cast<std::int32_t>(target_->node(index).outputs.size()); ++o)
    map_.set({node, o}, {index, o});
}

std::shared_ptr<GraphImpl> rewrite_graph(const GraphImpl& source,
                                         const std::function<bool(std::int32_t, Rewriter&)>& fn, ValueMap& map) {
  auto target = std::make_shared<GraphImpl>();
  Rewriter rw(source, target, map);
  for (std::int32_t i = 0; i < source.size(); ++i) {
    const Node& n = source.node(i);
    if (n.dead) continue;
    target->set_phase(n.phase);
    target->set_location_override(n.loc);
    const bool replaced = fn(i, rw);
    target->set_location_override({});
    if (!replaced) rw.copy(i);
  }
  target->set_phase(Phase::forward);
  return target;
}

}  // namespace trainrt::detail
