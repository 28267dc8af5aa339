#include "ir/graph_impl.h"

#include <atomic>

#include "core/error.h"

namespace trainrt::detail {

namespace {
std::uint64_t next_graph_id() {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

std::string TensorType::to_string() const { return std::string(trainrt::name(dtype)) + shape.to_string(); }

GraphImpl::GraphImpl() : id_(next_graph_id()) {}

std::int32_t GraphImpl::append(Node node) {
  const auto index = static_cast<std::int32_t>(nodes_.size());
  if (!node.name.empty()) {
    auto [it, inserted] = names_.emplace(node.name, index);
    if (!inserted) {
      const Node& other = nodes_[static_cast<std::size_t>(it->second)];
      fail(ErrorKind::InvalidArgument, cat(op_name(node.kind), " '", node.name, "' at ",
                                           where(node.loc.file, node.loc.line), ": the name is already used by the ",
                                           op_name(other.kind), " created at ", where(other.loc.file, other.loc.line)));
    }
  }
  node.phase = phase_;
  if (loc_override_.file != nullptr) node.loc = loc_override_;
  nodes_.push_back(std::move(node));
  return index;
}

std::int32_t GraphImpl::find(std::string_view name) const {
  auto it = names_.find(std::string(name));
  return it == names_.end() ? -1 : it->second;
}

std::shared_ptr<GraphImpl> GraphImpl::clone() const {
  auto g = std::make_shared<GraphImpl>();
  g->nodes_ = nodes_;
  g->names_ = names_;
  g->phase_ = phase_;
  return g;
}

}  // namespace trainrt::detail
