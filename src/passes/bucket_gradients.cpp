#include "passes/bucket_gradients.h"

#include "ir/internal_ops.h"

namespace trainrt::detail {

std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<Value>& grads, std::size_t bucket_bytes) {
  std::vector<std::vector<std::size_t>> buckets;
  std::vector<std::size_t> open;  // the bucket being filled
  std::size_t bytes = 0;
  for (std::size_t k = grads.size(); k-- > 0;) {
    const std::size_t b = static_cast<std::size_t>(grads[k].shape().numel()) * size_of(grads[k].dtype());
    if (!open.empty() && grads[open.front()].dtype() != grads[k].dtype()) {
      buckets.push_back(std::move(open));
      open.clear();
      bytes = 0;
    }
    open.push_back(k);
    bytes += b;
    if (bytes >= bucket_bytes) {
      buckets.push_back(std::move(open));
      open.clear();
      bytes = 0;
    }
  }
  if (!open.empty()) buckets.push_back(std::move(open));
  return buckets;
}

std::vector<Value> average_gradients(const std::vector<Value>& grads, std::int64_t world, std::size_t bucket_bytes) {
  static const Loc loc = Loc::current();
  std::vector<Value> out(grads.size());
  const auto buckets = plan_buckets(grads, bucket_bytes);
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    std::vector<Value> members;
    for (std::size_t k : buckets[b]) members.push_back(grads[k]);
    const CollectiveAttrs attrs{static_cast<std::int64_t>(b), world, 1.0 / static_cast<double>(world)};
    const std::vector<Value> reduced = all_reduce(members, attrs, loc);
    for (std::size_t i = 0; i < buckets[b].size(); ++i) out[buckets[b][i]] = reduced[i];
  }
  return out;
}

}  // namespace trainrt::detail
