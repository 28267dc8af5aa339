#include "exec/stream_plan.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "passes/schedule.h"

namespace trainrt::detail {
namespace {

using Clock = std::vector<std::int32_t>;  // by stream: latest position known complete, -1 for none

// By position: for a work node, the work positions it depends on, looking through nodes that
// are not work; for any other node, the work positions it stands for. Latest first, no
// duplicates: the order in which placement looks for a chain and waits are pruned.
std::vector<std::vector<std::int32_t>> effective_preds(const std::vector<std::int32_t>& order, const Dag& dag,
                                                       const std::vector<bool>& work) {
  const auto nodes = static_cast<std::int32_t>(dag.preds.size());
  std::vector<std::int32_t> position(dag.preds.size(), -1);
  for (std::size_t p = 0; p < order.size(); ++p) {
    const std::int32_t node = order[p];
    if (node < 0 || node >= nodes)
      fail(ErrorKind::Internal, cat("plan_streams: node ", node, " at schedule position ", p, " is not in the DAG (",
                                    nodes, " nodes); a libtrainrt bug"));
    if (position[static_cast<std::size_t>(node)] >= 0)
      fail(ErrorKind::Internal, cat("plan_streams: node ", node, " appears twice in the schedule (positions ",
                                    position[static_cast<std::size_t>(node)], " and ", p, "); a libtrainrt bug"));
    position[static_cast<std::size_t>(node)] = static_cast<std::int32_t>(p);
  }
  std::vector<std::vector<std::int32_t>> eff(order.size());
  for (std::size_t p = 0; p < order.size(); ++p) {
    auto& e = eff[p];
    for (std::int32_t pred : dag.preds[static_cast<std::size_t>(order[p])]) {
      const std::int32_t q = pred >= 0 && pred < nodes ? position[static_cast<std::size_t>(pred)] : -1;
      if (q < 0 || static_cast<std::size_t>(q) >= p)
        fail(ErrorKind::Internal, cat("plan_streams: node ", order[p], " at schedule position ", p, " depends on node ",
                                      pred, ", which is not earlier in the schedule; a libtrainrt bug"));
      const auto& from = eff[static_cast<std::size_t>(q)];
      if (work[static_cast<std::size_t>(q)]) e.push_back(q);
      else e.insert(e.end(), from.begin(), from.end());
    }
    std::sort(e.begin(), e.end(), std::greater<>());
    e.erase(std::unique(e.begin(), e.end()), e.end());
  }
  return eff;
}

}  // namespace

StreamPlan plan_streams(const std::vector<std::int32_t>& order, const Dag& dag, const std::vector<bool>& work,
                        const std::vector<bool>& collective, const StreamPlanOptions& options) {
  const std::size_t n = order.size();
  if (work.size() != n || collective.size() != n)
    fail(ErrorKind::InvalidArgument, cat("plan_streams: ", work.size(), " work flags and ", collective.size(),
                                         " collective flags for ", n, " schedule positions (need one each)"));
  if (options.compute_streams < 1)
    fail(ErrorKind::InvalidArgument,
         cat("plan_streams: compute_streams must be at least 1, got ", options.compute_streams));
  for (std::size_t p = 0; p < n; ++p) {
    if (collective[p] && !work[p])
      fail(ErrorKind::InvalidArgument, cat("plan_streams: the collective at schedule position ", p, " (node ", order[p],
                                           ") is not marked as work"));
  }
  const auto eff = effective_preds(order, dag, work);

  // While planning the communication stream is index `compute`; it moves down to the number
  // of compute streams used at the end.
  const int compute = options.compute_streams;
  const auto streams = static_cast<std::size_t>(compute) + 1;
  StreamPlan plan;
  plan.stream.assign(n, -1);
  plan.waits.assign(n, {});
  plan.event_of.assign(n, -1);
  std::vector<std::int32_t> last(streams, -1);            // last position issued on each stream
  std::vector<Clock> known(streams, Clock(streams, -1));  // each stream's clock at its current point
  std::vector<Clock> clock_after(n);                      // by work position: its stream's clock right after it
  std::vector<bool> waited_on(n, false);
  int used = 1;
  for (std::size_t p = 0; p < n; ++p) {
    if (!work[p]) continue;
    int s = -1;
    if (collective[p] && options.communication_stream) {
      s = compute;
      plan.communication_stream = true;
    } else {
      // Continue the chain of the latest predecessor still last on its compute stream...
      for (std::int32_t q : eff[p]) {
        const int t = plan.stream[static_cast<std::size_t>(q)];
        if (t < compute && last[static_cast<std::size_t>(t)] == q) {
          s = t;
          break;
        }
      }
      // ...or take the compute stream idle the longest (min_element: the lowest index on a tie).
      if (s < 0) s = static_cast<int>(std::min_element(last.begin(), last.begin() + compute) - last.begin());
      used = std::max(used, s + 1);
    }
    Clock& clock = known[static_cast<std::size_t>(s)];
    auto& waits = plan.waits[p];
    // Latest first: an earlier producer may be known complete through a later one's clock,
    // never the other way round, so every wait kept is needed.
    for (std::int32_t q : eff[p]) {
      const auto t = static_cast<std::size_t>(plan.stream[static_cast<std::size_t>(q)]);
      if (static_cast<int>(t) == s || clock[t] >= q) continue;
      waits.push_back(q);
      waited_on[static_cast<std::size_t>(q)] = true;
      const Clock& learned = clock_after[static_cast<std::size_t>(q)];
      for (std::size_t i = 0; i < streams; ++i) clock[i] = std::max(clock[i], learned[i]);
    }
    std::reverse(waits.begin(), waits.end());
    clock[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(p);
    clock_after[p] = clock;
    last[static_cast<std::size_t>(s)] = static_cast<std::int32_t>(p);
    plan.stream[p] = s;
  }
  for (std::size_t p = 0; p < n; ++p) {
    if (waited_on[p]) plan.event_of[p] = plan.events++;
    if (plan.stream[p] == compute) plan.stream[p] = used;
  }
  plan.compute_streams = used;
  return plan;
}

std::string describe(const StreamPlan& plan, const std::vector<std::int32_t>& order) {
  if (plan.stream.size() != order.size() || plan.waits.size() != order.size() || plan.event_of.size() != order.size())
    fail(ErrorKind::InvalidArgument,
         cat("describe: the stream plan has ", plan.stream.size(), " positions, the schedule ", order.size()));
  std::ostringstream os;
  for (std::size_t p = 0; p < order.size(); ++p) {
    if (plan.stream[p] < 0) continue;
    os << "stream " << plan.stream[p] << ": node " << order[p];
    const auto& waits = plan.waits[p];
    if (!waits.empty()) {
      os << " waits [";
      for (std::size_t i = 0; i < waits.size(); ++i) os << (i ? ", " : "") << order[static_cast<std::size_t>(waits[i])];
      os << ']';
    }
    if (plan.event_of[p] >= 0) os << " records " << plan.event_of[p];
    os << '\n';
  }
  return os.str();
}

}  // namespace trainrt::detail
