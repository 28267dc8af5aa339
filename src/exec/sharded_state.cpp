#include "exec/sharded_state.h"

#include <cstring>

#include "core/error.h"
#include "ir/builder.h"

namespace trainrt::detail {

namespace {

/// "optim.shard3.exp_avg" -> {3, "exp_avg"}.
std::optional<std::pair<std::size_t, std::string>> parse_block(const std::string& name) {
  const std::string prefix = shard_state_owner(0).substr(0, shard_state_owner(0).size() - 1);  // "optim.shard"
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return std::nullopt;
  std::size_t bucket = 0;
  for (std::size_t i = prefix.size(); i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    bucket = bucket * 10 + static_cast<std::size_t>(name[i] - '0');
  }
  return std::make_pair(bucket, name.substr(dot + 1));
}

}  // namespace

ShardedState::ShardedState(const std::shared_ptr<GraphImpl>& source, std::shared_ptr<dist::Communicator> comm,
                           std::size_t bucket_bytes)
    : comm_(std::move(comm)) {
  std::vector<Value> params;
  for (std::int32_t i = 0; i < source->size(); ++i) {
    const Node& n = source->node(i);
    if (n.kind == OpKind::Variable && std::get<VariableAttrs>(n.attrs).kind == VariableKind::parameter) {
      params.push_back(make_value(source, {i, 0}));
      params_.push_back({n.name, n.outputs[0], 0, 0});
    }
  }
  layout_ = shard_layout(params, comm_->size(), bucket_bytes);
  for (std::size_t b = 0; b < layout_.size(); ++b)
    for (std::size_t i = 0; i < layout_[b].members.size(); ++i) {
      params_[layout_[b].members[i]].bucket = b;
      params_[layout_[b].members[i]].offset = layout_[b].offsets[i];
    }
}

std::vector<std::string> ShardedState::expand(const std::vector<std::string>& names) const {
  std::vector<std::string> out;
  for (const std::string& n : names) {
    const auto block = parse_block(n);
    if (!block || block->first >= layout_.size()) {
      out.push_back(n);
      continue;
    }
    for (std::size_t k : layout_[block->first].members) out.push_back(params_[k].name + "." + block->second);
  }
  return out;
}

std::optional<std::pair<const ShardedState::Param*, const VariableEntry*>> ShardedState::resolve(
    const VariableStore& vars, std::string_view name) const {
  for (const Param& p : params_) {
    if (name.size() <= p.name.size() + 1 || name.substr(0, p.name.size()) != p.name || name[p.name.size()] != '.')
      continue;
    const std::string block = shard_state_owner(p.bucket) + "." + std::string(name.substr(p.name.size() + 1));
    if (const VariableEntry* e = vars.find(block)) return std::make_pair(&p, e);
  }
  return std::nullopt;
}

std::optional<Tensor> ShardedState::get(const VariableStore& vars, std::string_view name) const {
  const auto found = resolve(vars, name);
  if (!found) return std::nullopt;
  const auto [param, entry] = *found;
  const std::int64_t block = entry->type.shape.numel();
  const std::size_t elem = size_of(entry->type.dtype);
  std::vector<std::byte> all(static_cast<std::size_t>(block * comm_->size()) * elem);
  comm_->all_gather(entry->data.get(), all.data(), static_cast<std::size_t>(block), entry->type.dtype);
  Tensor out = Tensor::empty(param->type.shape, param->type.dtype);
  if (out.nbytes())
    std::memcpy(out.raw_data(), all.data() + static_cast<std::size_t>(param->offset) * elem, out.nbytes());
  return out;
}

bool ShardedState::set(VariableStore& vars, std::string_view name, const Tensor& value) const {
  const auto found = resolve(vars, name);
  if (!found) return false;
  const auto [param, entry] = *found;
  if (!value.defined() || value.dtype() != param->type.dtype || !(value.shape() == param->type.shape))
    fail(ErrorKind::ShapeMismatch, cat("Program::set('", name, "'): expected ", param->type.to_string(),
                                       " (the state of ", param->name, ", sharded over ", comm_->size(), " ranks)"));
  // This rank's block covers [r * block, (r + 1) * block) of the bucket's flat layout.
  const std::int64_t block = entry->type.shape.numel(), first = comm_->rank() * block;
  const std::int64_t lo = std::max(first, param->offset), hi = std::min(first + block, param->offset + value.numel());
  if (lo >= hi) return true;
  const std::size_t elem = size_of(param->type.dtype);
  VariableEntry* target = vars.find(entry->name);
  std::byte* dst = target->data.get() + static_cast<std::size_t>(lo - first) * elem;
  std::memcpy(dst,
              static_cast<const std::byte*>(value.raw_data()) + static_cast<std::size_t>(lo - param->offset) * elem,
              static_cast<std::size_t>(hi - lo) * elem);
  return true;
}

}  // namespace trainrt::detail
