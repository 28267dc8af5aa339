// exec/variables.h — the persistent tensors of a Program: parameters, state, optimizer state.
//
// A variable is created once, initialized from its Init recipe with Philox keyed by
// (seed, name) — so values do not depend on creation order — and then shared by every plan
// of the Program (training step and evaluations). Entries never move once created.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "core/aligned.h"
#include "ir/graph_impl.h"
#include "trainrt/tensor.hpp"

namespace trainrt::detail {

struct VariableEntry {
  std::string name;
  TensorType type;
  VariableKind kind = VariableKind::parameter;
  AlignedBuffer data;
  std::size_t bytes() const { return static_cast<std::size_t>(type.shape.numel()) * size_of(type.dtype); }
};

class VariableStore {
 public:
  /// Adds (and initializes) every variable of `graph` that is not yet in the store; a
  /// variable already present must have the same type.
  void add_from(const GraphImpl& graph, std::uint64_t seed);
  /// The entry called `name`, or nullptr.
  VariableEntry* find(std::string_view name);
  const VariableEntry* find(std::string_view name) const;
  const std::deque<VariableEntry>& entries() const noexcept { return entries_; }
  std::deque<VariableEntry>& entries() noexcept { return entries_; }
  std::size_t total_bytes() const;
  /// Throws NotFound listing the known names.
  [[noreturn]] void not_found(std::string_view name) const;

 private:
  std::deque<VariableEntry> entries_;
};

/// Fills `data` (numel elements of dtype) from `init`, as described in trainrt/init.hpp.
void initialize(void* data, const TensorType& type, const Init& init, std::uint64_t seed, std::string_view name);

}  // namespace trainrt::detail
