// Stream placement (exec/stream_plan.h): hand-built DAGs for each rule, then random DAGs
// checked against an independent simulation of what the waits guarantee.
#include "exec/stream_plan.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "passes/schedule.h"
#include "trainrt/errors.hpp"

namespace trainrt {
namespace {

using namespace detail;
using Positions = std::vector<std::int32_t>;

// A DAG over nodes 0..n-1 from (node, its predecessors) pairs.
Dag make_dag(std::size_t n, const std::vector<std::pair<std::int32_t, Positions>>& edges) {
  Dag dag{std::vector<std::vector<std::int32_t>>(n), {}};
  for (const auto& [node, preds] : edges) dag.preds[static_cast<std::size_t>(node)] = preds;
  return dag;
}

Positions iota(std::size_t n) {
  Positions order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::int32_t>(i);
  return order;
}

StreamPlanOptions streams(int compute, bool communication = true) { return {compute, communication}; }

// Positions [0, n) ordered before each position by the plan: the previous node of its stream
// and every waited-on event, with what each of those was ordered after. Computed by brute
// force over bit rows, independently of the vector clocks of the implementation.
// Without the `skip_wait`-th wait of position `skip_position`, if that is set.
std::vector<std::vector<bool>> happens_before(const StreamPlan& plan, std::int32_t skip_position = -1,
                                              std::size_t skip_wait = 0) {
  const std::size_t n = plan.stream.size();
  std::vector<std::vector<bool>> before(n, std::vector<bool>(n, false));
  std::vector<std::int32_t> last(static_cast<std::size_t>(plan.streams()), -1);
  auto learn = [&](std::size_t p, std::int32_t q) {
    before[p][static_cast<std::size_t>(q)] = true;
    for (std::size_t i = 0; i < n; ++i)
      if (before[static_cast<std::size_t>(q)][i]) before[p][i] = true;
  };
  for (std::size_t p = 0; p < n; ++p) {
    const int s = plan.stream[p];
    if (s < 0) continue;
    if (last[static_cast<std::size_t>(s)] >= 0) learn(p, last[static_cast<std::size_t>(s)]);
    for (std::size_t w = 0; w < plan.waits[p].size(); ++w) {
      if (static_cast<std::int32_t>(p) != skip_position || w != skip_wait) learn(p, plan.waits[p][w]);
    }
    last[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(p);
  }
  return before;
}

// Work positions each work position depends on, found by walking back through non-work
// nodes recursively (the implementation propagates sets forward instead).
std::vector<std::vector<bool>> effective_edges(const Positions& order, const Dag& dag, const std::vector<bool>& work) {
  std::vector<std::int32_t> position(dag.preds.size(), -1);
  for (std::size_t p = 0; p < order.size(); ++p)
    position[static_cast<std::size_t>(order[p])] = static_cast<std::int32_t>(p);
  std::vector<std::vector<bool>> edge(order.size(), std::vector<bool>(order.size(), false));
  for (std::size_t c = 0; c < order.size(); ++c) {
    if (!work[c]) continue;
    std::vector<std::int32_t> stack = dag.preds[static_cast<std::size_t>(order[c])];
    while (!stack.empty()) {
      const auto q = static_cast<std::size_t>(position[static_cast<std::size_t>(stack.back())]);
      stack.pop_back();
      if (work[q]) edge[c][q] = true;
      else
        stack.insert(stack.end(), dag.preds[static_cast<std::size_t>(order[q])].begin(),
                     dag.preds[static_cast<std::size_t>(order[q])].end());
    }
  }
  return edge;
}

TEST(StreamPlan, ChainStaysOnMainStreamWithoutEvents) {
  const Dag dag = make_dag(4, {{1, {0}}, {2, {1}}, {3, {2}}});
  const std::vector<bool> work(4, true), collective(4, false);
  const StreamPlan plan = plan_streams(iota(4), dag, work, collective, streams(3));
  EXPECT_EQ(plan.stream, Positions({0, 0, 0, 0}));
  EXPECT_EQ(plan.events, 0);
  EXPECT_EQ(plan.event_of, Positions({-1, -1, -1, -1}));
  for (const auto& w : plan.waits) EXPECT_TRUE(w.empty());
  EXPECT_EQ(plan.compute_streams, 1);  // only the streams used
  EXPECT_FALSE(plan.communication_stream);
  EXPECT_EQ(plan.streams(), 1);
}

TEST(StreamPlan, DiamondForksOntoTwoStreamsAndJoinsWithOneWait) {
  // a -> b, a -> c, {b, c} -> d.
  const Dag dag = make_dag(4, {{1, {0}}, {2, {0}}, {3, {1, 2}}});
  const std::vector<bool> work(4, true), collective(4, false);
  const StreamPlan plan = plan_streams(iota(4), dag, work, collective, streams(2));
  EXPECT_EQ(plan.stream, Positions({0, 0, 1, 1}));  // b continues a's chain, c forks, d continues c
  EXPECT_EQ(plan.waits[2], Positions({0}));         // c after a
  EXPECT_EQ(plan.waits[3], Positions({1}));         // d after b: exactly one event
  EXPECT_EQ(plan.event_of, Positions({0, 1, -1, -1}));
  EXPECT_EQ(plan.events, 2);
  EXPECT_EQ(plan.compute_streams, 2);
  EXPECT_EQ(describe(plan, iota(4)),
            "stream 0: node 0 records 0\nstream 0: node 1 records 1\nstream 1: node 2 waits [0]\n"
            "stream 1: node 3 waits [1]\n");
}

TEST(StreamPlan, OneComputeStreamNeverWaits) {
  const Dag dag = make_dag(5, {{1, {0}}, {2, {0}}, {3, {1, 2}}, {4, {0, 3}}});
  const std::vector<bool> work(5, true), collective(5, false);
  const StreamPlan plan = plan_streams(iota(5), dag, work, collective, streams(1));
  EXPECT_EQ(plan.stream, Positions(5, 0));
  for (const auto& w : plan.waits) EXPECT_TRUE(w.empty());
  EXPECT_EQ(plan.events, 0);
}

TEST(StreamPlan, CollectivesGoToTheCommunicationStreamInOrder) {
  // g1 -> r1 (collective), g2 (independent) -> r2 (collective, after r1 as build_dag orders
  // collectives), r1 -> u, {r2, g2} -> v.
  const Positions order = {0, 1, 2, 3, 4, 5};  // g1 r1 g2 r2 u v
  const Dag dag = make_dag(6, {{1, {0}}, {3, {2, 1}}, {4, {1}}, {5, {3, 2}}});
  const std::vector<bool> work(6, true), collective = {false, true, false, true, false, false};
  const StreamPlan plan = plan_streams(order, dag, work, collective, streams(2));
  EXPECT_TRUE(plan.communication_stream);
  EXPECT_EQ(plan.compute_streams, 2);
  EXPECT_EQ(plan.streams(), 3);
  EXPECT_EQ(plan.stream[1], 2);
  EXPECT_EQ(plan.stream[3], 2);
  EXPECT_EQ(plan.waits[1], Positions({0}));  // r1 after g1
  EXPECT_EQ(plan.waits[3], Positions({2}));  // r2 after g2; after r1 by the stream's order
  EXPECT_EQ(plan.waits[4], Positions({1}));  // u, a consumer of r1, waits for it
  EXPECT_EQ(plan.waits[5], Positions({3}));  // v waits for r2, which already knew g2
  EXPECT_NE(plan.event_of[1], -1);
  EXPECT_NE(plan.event_of[3], -1);

  // Without a communication stream collectives are placed like compute nodes.
  const StreamPlan flat = plan_streams(order, dag, work, collective, streams(2, false));
  EXPECT_FALSE(flat.communication_stream);
  for (std::int32_t s : flat.stream) EXPECT_LT(s, 2);
  EXPECT_EQ(flat.stream[1], 0);  // r1 continues g1's chain

  // Compute streams left unused move the communication stream down. The consumer of a
  // collective continues no compute chain, so it takes the stream idle the longest.
  const Dag chain = make_dag(3, {{1, {0}}, {2, {1}}});
  const StreamPlan narrow = plan_streams(iota(3), chain, std::vector<bool>(3, true), {false, true, false}, streams(4));
  EXPECT_EQ(narrow.stream, Positions({0, 2, 1}));
  EXPECT_EQ(narrow.compute_streams, 2);
  EXPECT_EQ(narrow.streams(), 3);
}

TEST(StreamPlan, LooksThroughNodesThatAreNotWork) {
  // x (input) -> a; a -> v1 (view) -> v2 (view) -> b; v1 -> c. Node order differs from
  // positions: order = {x, a, v1, v2, b, c} = nodes {5, 0, 4, 3, 1, 2}.
  const Positions order = {5, 0, 4, 3, 1, 2};
  const Dag dag = make_dag(6, {{0, {5}}, {4, {0}}, {3, {4}}, {1, {3}}, {2, {4}}});
  const std::vector<bool> work = {false, true, false, false, true, true};
  const StreamPlan plan = plan_streams(order, dag, work, std::vector<bool>(6, false), streams(2));
  EXPECT_EQ(plan.stream, Positions({-1, 0, -1, -1, 0, 1}));  // b continues a through two views
  EXPECT_EQ(plan.waits[5], Positions({1}));                  // c forks off a through a view
  EXPECT_TRUE(plan.waits[2].empty());
  EXPECT_EQ(plan.event_of, Positions({-1, 0, -1, -1, -1, -1}));
  EXPECT_EQ(describe(plan, order), "stream 0: node 0 records 0\nstream 0: node 1\nstream 1: node 2 waits [0]\n");
}

TEST(StreamPlan, PrunesWaitsImpliedThroughAThirdStream) {
  // Positions a b d c x: a, b, c start streams 0, 1, 2; d = f(a, b) continues b's chain on
  // stream 1 and waits for a; x = f(a, d, c) continues c's chain on stream 2. x waits for d,
  // and that teaches stream 2 that a (stream 0) is complete: no wait for a.
  const Positions order = {0, 1, 3, 2, 4};
  const Dag dag = make_dag(5, {{3, {0, 1}}, {4, {0, 3, 2}}});
  const StreamPlan plan = plan_streams(order, dag, std::vector<bool>(5, true), std::vector<bool>(5, false), streams(3));
  EXPECT_EQ(plan.stream, Positions({0, 1, 1, 2, 2}));
  EXPECT_EQ(plan.waits[2], Positions({0}));
  EXPECT_EQ(plan.waits[4], Positions({2}));
  EXPECT_EQ(plan.event_of, Positions({0, -1, 1, -1, -1}));
  EXPECT_EQ(plan.events, 2);
}

TEST(StreamPlan, ForkTakesTheStreamIdleLongest) {
  // a, b, c start streams 0, 1, 2; d = f(a) and e = f(b) continue streams 0 and 1; g = f(a)
  // forks (a's chain has moved on to d): stream 2's last node (c) is the earliest, so g goes
  // there and waits for a.
  const Dag dag = make_dag(6, {{3, {0}}, {4, {1}}, {5, {0}}});
  const StreamPlan plan =
      plan_streams(iota(6), dag, std::vector<bool>(6, true), std::vector<bool>(6, false), streams(3));
  EXPECT_EQ(plan.stream, Positions({0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(plan.waits[5], Positions({0}));
}

// Random DAGs: every effective edge is ordered by the plan, no wait can be dropped, events
// are numbered in producer order and recorded exactly where waited on, and the placement
// rules for collectives and stream ranges hold.
TEST(StreamPlan, RandomDagsAreOrderedWithoutRedundantWaits) {
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 200; ++trial) {
    const auto n = static_cast<std::size_t>(std::uniform_int_distribution<int>(5, 60)(rng));
    const auto extra = static_cast<std::size_t>(std::uniform_int_distribution<int>(0, 3)(rng));  // unscheduled nodes
    Positions nodes = iota(n + extra);
    std::shuffle(nodes.begin(), nodes.end(), rng);
    const Positions order(nodes.begin(), nodes.begin() + static_cast<std::ptrdiff_t>(n));
    Dag dag{std::vector<std::vector<std::int32_t>>(n + extra), {}};
    std::vector<bool> work(n), collective(n);
    const double density = std::uniform_real_distribution<double>(0.5, 3.0)(rng);
    std::int32_t last_collective = -1;
    for (std::size_t p = 0; p < n; ++p) {
      work[p] = std::bernoulli_distribution(0.75)(rng);
      collective[p] = work[p] && std::bernoulli_distribution(0.15)(rng);
      auto& preds = dag.preds[static_cast<std::size_t>(order[p])];
      for (std::size_t q = 0; q < p; ++q)
        if (std::bernoulli_distribution(std::min(1.0, density / static_cast<double>(p)))(rng))
          preds.push_back(order[q]);
      if (collective[p] && last_collective >= 0 && std::bernoulli_distribution(0.5)(rng))
        preds.push_back(last_collective);
      if (collective[p]) last_collective = order[p];
    }
    const StreamPlanOptions options = streams(std::uniform_int_distribution<int>(1, 4)(rng), trial % 3 != 0);
    SCOPED_TRACE(testing::Message() << "trial " << trial << " (" << n << " nodes, " << options.compute_streams
                                    << " compute streams)");
    const StreamPlan plan = plan_streams(order, dag, work, collective, options);
    SCOPED_TRACE(describe(plan, order));

    ASSERT_EQ(plan.stream.size(), n);
    ASSERT_GE(plan.compute_streams, 1);
    ASSERT_LE(plan.compute_streams, options.compute_streams);
    bool any_on_comm = false;
    for (std::size_t p = 0; p < n; ++p) {
      const int s = plan.stream[p];
      if (!work[p]) {
        EXPECT_EQ(s, -1);
        EXPECT_TRUE(plan.waits[p].empty());
        continue;
      }
      ASSERT_GE(s, 0);
      ASSERT_LT(s, plan.streams());
      const bool on_comm = plan.communication_stream && s == plan.compute_streams;
      EXPECT_EQ(on_comm, collective[p] && options.communication_stream) << "position " << p;
      any_on_comm |= on_comm;
    }
    EXPECT_EQ(any_on_comm, plan.communication_stream);
    if (options.compute_streams == 1 && !plan.communication_stream) {
      for (const auto& w : plan.waits) EXPECT_TRUE(w.empty());
    }

    // Events: recorded exactly by the positions waited on, numbered 0.. in schedule order.
    std::vector<bool> waited(n, false);
    for (std::size_t c = 0; c < n; ++c) {
      for (std::int32_t q : plan.waits[c]) {
        ASSERT_GE(q, 0);
        ASSERT_LT(static_cast<std::size_t>(q), c);
        EXPECT_NE(plan.stream[static_cast<std::size_t>(q)], plan.stream[c]);
        waited[static_cast<std::size_t>(q)] = true;
      }
      EXPECT_TRUE(std::is_sorted(plan.waits[c].begin(), plan.waits[c].end()));
    }
    std::int32_t next_event = 0;
    for (std::size_t p = 0; p < n; ++p) EXPECT_EQ(plan.event_of[p], waited[p] ? next_event++ : -1) << "position " << p;
    EXPECT_EQ(plan.events, next_event);

    // Every effective edge is ordered by the stream or by the closure of the waits.
    const auto edge = effective_edges(order, dag, work);
    const auto before = happens_before(plan);
    for (std::size_t c = 0; c < n; ++c)
      for (std::size_t q = 0; q < c; ++q)
        if (edge[c][q]) {
          EXPECT_TRUE(before[c][q]) << "edge " << q << " -> " << c << " is not ordered";
        }

    // No wait is redundant: dropping any one leaves its own edge unordered.
    for (std::size_t c = 0; c < n; ++c) {
      for (std::size_t w = 0; w < plan.waits[c].size(); ++w) {
        const std::int32_t q = plan.waits[c][w];
        EXPECT_TRUE(edge[c][static_cast<std::size_t>(q)]) << "wait " << q << " at " << c << " serves no edge";
        const auto without = happens_before(plan, static_cast<std::int32_t>(c), w);
        EXPECT_FALSE(without[c][static_cast<std::size_t>(q)]) << "wait " << q << " at " << c << " is redundant";
      }
    }
  }
}

template <class F>
void expect_error(F&& f, ErrorKind kind, const std::string& text) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(StreamPlan, BadInputsThrow) {
  const Dag dag = make_dag(3, {{1, {0}}, {2, {1}}});
  const std::vector<bool> yes(3, true), no(3, false);
  const Positions order = iota(3);
  expect_error(
      [&] {
        plan_streams(order, dag, {true, true}, no, streams(2));
      },
      ErrorKind::InvalidArgument, "2 work flags and 3 collective flags for 3 schedule positions");
  expect_error([&] { plan_streams(order, dag, yes, {false}, streams(2)); }, ErrorKind::InvalidArgument,
               "1 collective flags");
  expect_error([&] { plan_streams(order, dag, yes, no, streams(0)); }, ErrorKind::InvalidArgument,
               "compute_streams must be at least 1, got 0");
  expect_error(
      [&] {
        plan_streams(order, dag, {true, false, true}, {false, true, false}, streams(2));
      },
      ErrorKind::InvalidArgument, "collective at schedule position 1 (node 1) is not marked as work");
  expect_error(
      [&] {
        plan_streams({0, 2, 1}, dag, yes, no, streams(2));
      },
      ErrorKind::Internal, "node 2 at schedule position 1 depends on node 1, which is not earlier");
  expect_error(
      [&] {
        plan_streams({1, 2}, dag, {true, true}, {false, false}, streams(2));
      },
      ErrorKind::Internal, "depends on node 0, which is not earlier");
  expect_error(
      [&] {
        plan_streams({0, 0, 1}, dag, yes, no, streams(2));
      },
      ErrorKind::Internal, "node 0 appears twice in the schedule");
  expect_error(
      [&] {
        plan_streams({0, 1, 7}, dag, yes, no, streams(2));
      },
      ErrorKind::Internal, "node 7 at schedule position 2 is not in the DAG");
  expect_error([&] { describe(StreamPlan{}, order); }, ErrorKind::InvalidArgument, "has 0 positions");
}

}  // namespace
}  // namespace trainrt
