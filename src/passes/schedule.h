// passes/schedule.h — the order of one step, and the dependencies that may run it in
// parallel.
//
// schedule_nodes gives a topological order of the live nodes in which assignments come
// last: run in that order, one node at a time, every read of a variable's old value happens
// before it is overwritten, and a step stopped by the finite-loss check leaves every
// variable untouched.
//
// build_dag gives, for the same nodes, what must finish before each may start, so that an
// executor can run independent nodes at once: every node after the producers of its
// operands; an assignment after every other reader of its variable; and every assignment
// after the barriers — the guard node (the finite-loss check) and every node whose kernel
// checks its data (checks_data) or is a collective: a step that throws leaves every variable
// as it was. Collectives also wait for each other in schedule order, the order every rank
// issues them in. The
// memory plan adds no edges: it only reuses memory between nodes this DAG already orders
// (passes/plan_memory.h), and lets a producer write into a variable only when the barriers
// are among its ancestors.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph_impl.h"

namespace trainrt::detail {

std::vector<std::int32_t> schedule_nodes(const GraphImpl& graph);

struct Dag {
  std::vector<std::vector<std::int32_t>> preds;  // by node index; empty for unscheduled nodes
  std::vector<std::int32_t> barriers;            // must run before any variable is written
};

/// The DAG over `order` (a schedule of `graph`). With `parallel` false each node also waits
/// for the node before it in `order`: a chain, for a sequential run. `guard_node` may be -1.
Dag build_dag(const GraphImpl& graph, const std::vector<std::int32_t>& order, bool parallel, std::int32_t guard_node);

/// Bit sets of ancestors in a DAG, indexed by schedule position: ancestors(p) holds every
/// position that must finish before the node at position p starts.
class Ancestors {
 public:
  Ancestors(const std::vector<std::int32_t>& order, const Dag& dag);
  /// Whether the node at position `a` happens before the node at position `b`.
  bool before(int a, int b) const {
    return (bits_[static_cast<std::size_t>(b) * words_ + static_cast<std::size_t>(a) / 64] >> (a % 64)) & 1u;
  }

 private:
  std::size_t words_;
  std::vector<std::uint64_t> bits_;
};

}  // namespace trainrt::detail
