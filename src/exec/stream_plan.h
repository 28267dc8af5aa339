// exec/stream_plan.h — places one step's schedule on CUDA streams, with events on the edges
// that cross streams (DESIGN decision 6). Pure and device-independent: the CUDA executor
// issues the plan, and the tests check it on any machine.
//
// Nodes that launch nothing (inputs, views) get no stream: a work node depends on the work
// nodes reached through them. Each stream issues its nodes in schedule order, so an edge
// within one stream needs nothing. Placement, node by node in schedule order:
//  - a collective goes to the communication stream when there is one, which issues the
//    collectives in schedule order: the order every rank issues them in;
//  - a compute node continues a chain: if one of its predecessors is still the last node
//    issued on its compute stream, it takes that stream (the latest such predecessor's);
//  - otherwise (no predecessors, or a fork whose chain has moved on) it takes the compute
//    stream idle the longest: whose last node is earliest in the schedule, an unused one
//    first, the lower index on a tie. Streams are therefore used in index order.
// An edge that crosses streams becomes a wait on an event recorded right after its producer,
// unless the consumer's stream already knows the producer complete. Each stream keeps a
// vector clock (for every stream, the latest position known complete at its current point);
// waiting on the event after position q of stream t teaches it t's clock as of q. So no wait
// is implied by the others or by earlier ones, and only producers waited on record an event.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainrt::detail {

struct Dag;

struct StreamPlanOptions {
  int compute_streams = 2;           // at most this many; >= 1, stream 0 is the main stream
  bool communication_stream = true;  // collectives on a stream of their own, after the compute streams
};

struct StreamPlan {
  int compute_streams = 1;                       // compute streams used (>= 1): streams 0 .. compute_streams-1
  bool communication_stream = false;             // true only when a collective is on it; its index is compute_streams
  std::vector<std::int32_t> stream;              // by schedule position; -1 for positions that are not work
  std::vector<std::vector<std::int32_t>> waits;  // by position, ascending: positions on other streams
                                                 // whose event this node waits for before it is issued
  std::vector<std::int32_t> event_of;            // by position: the event recorded right after it, or -1
  std::int32_t events = 0;                       // events, numbered in schedule order of their producers
  int streams() const { return compute_streams + (communication_stream ? 1 : 0); }
};

/// Places the schedule `order` (node indices) on streams. `dag.preds[node]` are the nodes
/// each must follow (passes/schedule.h); `work[p]` and `collective[p]`, by position, mark
/// the nodes that launch something and the collectives among them. Throws Error:
/// InvalidArgument when `work` or `collective` is not one flag per position, a collective
/// is not work, or options.compute_streams < 1; Internal when a node of `order` is not in
/// `dag`, appears twice, or has a predecessor that is not earlier in `order`.
StreamPlan plan_streams(const std::vector<std::int32_t>& order, const Dag& dag, const std::vector<bool>& work,
                        const std::vector<bool>& collective, const StreamPlanOptions& options);

/// One line per work position, for debugging and logs: "stream 1: node 7 waits [3, 5]
/// records 2" (waits name nodes; "waits" and "records" only when there are any).
std::string describe(const StreamPlan& plan, const std::vector<std::int32_t>& order);

}  // namespace trainrt::detail
