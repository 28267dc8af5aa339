// dist/local.cpp — ranks joined inside one process (threads), behind the Communicator
// interface: for tests, and for applications that run data-parallel replicas as threads.
//
// Each collective is a rendezvous: every rank posts its buffers, and the last to arrive
// checks that all posted the same operation, computes every rank's result (the others are
// blocked, their buffers stay valid) and wakes them. A rank that waits past the timeout marks
// the group broken, so no late arrival ever writes into the buffer of a rank that gave up.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/element.h"
#include "core/error.h"
#include "trainrt/dist.hpp"

namespace trainrt::dist {

namespace {

using detail::cat;
using detail::fail;

enum class Op { all_reduce, reduce_scatter, all_gather, broadcast, barrier };

const char* op_name(Op op) {
  switch (op) {
    case Op::all_reduce: return "all_reduce";
    case Op::reduce_scatter: return "reduce_scatter";
    case Op::all_gather: return "all_gather";
    case Op::broadcast: return "broadcast";
    case Op::barrier: return "barrier";
  }
  return "?";
}

struct Post {
  Op op = Op::barrier;
  const void* send = nullptr;
  void* recv = nullptr;
  std::size_t count = 0;
  DType dtype = DType::f32;
  ReduceOp reduce = ReduceOp::sum;
  int root = 0;
  bool operator==(const Post& o) const {
    return op == o.op && count == o.count && dtype == o.dtype && reduce == o.reduce && root == o.root;
  }
};

/// element i of every post's `send`, combined in rank order, stored into `out` at `j`.
void combine(const std::vector<Post>& posts, std::size_t from, void* out, std::size_t to, std::size_t count,
             DType dtype, ReduceOp op) {
  for (std::size_t i = 0; i < count; ++i) {
    double acc = 0;
    float accf = 0;
    for (std::size_t r = 0; r < posts.size(); ++r) {
      const double v = detail::load_as_double(posts[r].send, dtype, static_cast<std::int64_t>(from + i));
      if (dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16) {  // f32 arithmetic, as MPI's
        const auto f = static_cast<float>(v);
        accf = r == 0                ? f
               : op == ReduceOp::sum ? accf + f
               : op == ReduceOp::max ? std::max(accf, f)
                                     : std::min(accf, f);
      } else {
        acc = r == 0 ? v : op == ReduceOp::sum ? acc + v : op == ReduceOp::max ? std::max(acc, v) : std::min(acc, v);
      }
    }
    const bool single = dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16;
    detail::store_from_double(out, dtype, static_cast<std::int64_t>(to + i), single ? static_cast<double>(accf) : acc);
  }
}

struct Group {
  explicit Group(int n) : posts(static_cast<std::size_t>(n)) {}
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Post> posts;
  int arrived = 0;
  std::uint64_t generation = 0;
  bool broken = false;
  std::string error;  // why the current round failed (a mismatch), for every rank
  std::uint64_t failed_generation = ~0ULL;

  /// Computes every rank's result of the round in `posts` (called by the last arrival).
  void execute() {
    const Post& p = posts[0];
    const std::size_t elem = size_of(p.dtype), n = posts.size();
    switch (p.op) {
      case Op::all_reduce: {
        std::vector<std::byte> out(p.count * elem);
        combine(posts, 0, out.data(), 0, p.count, p.dtype, p.reduce);
        for (const Post& q : posts) std::memcpy(q.recv, out.data(), out.size());
        break;
      }
      case Op::reduce_scatter:
        for (std::size_t r = 0; r < n; ++r) combine(posts, r * p.count, posts[r].recv, 0, p.count, p.dtype, p.reduce);
        break;
      case Op::all_gather:
        for (const Post& q : posts)
          for (std::size_t r = 0; r < n; ++r)
            std::memcpy(static_cast<std::byte*>(q.recv) + r * p.count * elem, posts[r].send, p.count * elem);
        break;
      case Op::broadcast:
        for (std::size_t r = 0; r < n; ++r)
          if (static_cast<int>(r) != p.root)
            std::memcpy(posts[r].recv, posts[static_cast<std::size_t>(p.root)].send, p.count * elem);
        break;
      case Op::barrier: break;
    }
  }
};

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<Group> group, int rank, std::chrono::milliseconds timeout)
      : group_(std::move(group)), rank_(rank), timeout_(timeout) {}

  using Communicator::all_gather;
  using Communicator::all_reduce;
  using Communicator::barrier;
  using Communicator::broadcast;
  using Communicator::reduce_scatter;

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return static_cast<int>(group_->posts.size()); }
  std::string_view backend() const noexcept override { return "local"; }
  bool device_memory() const noexcept override { return false; }
  std::chrono::milliseconds default_timeout() const noexcept override { return timeout_; }

  void all_reduce(void* data, std::size_t count, DType dtype, ReduceOp op, std::chrono::milliseconds timeout) override {
    // The result goes to every rank at once: read from a copy so no rank's input changes
    // before all are read.
    meet({Op::all_reduce, data, data, count, dtype, op, 0}, timeout);
  }
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, ReduceOp op,
                      std::chrono::milliseconds timeout) override {
    meet({Op::reduce_scatter, send, recv, recv_count, dtype, op, 0}, timeout);
  }
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                  std::chrono::milliseconds timeout) override {
    meet({Op::all_gather, send, recv, send_count, dtype, ReduceOp::sum, 0}, timeout);
  }
  void broadcast(void* data, std::size_t count, DType dtype, int root, std::chrono::milliseconds timeout) override {
    if (root < 0 || root >= size())
      fail(ErrorKind::InvalidArgument, cat("broadcast: root ", root, " is not a rank of ", size()));
    meet({Op::broadcast, data, data, count, dtype, ReduceOp::sum, root}, timeout);
  }
  void barrier(std::chrono::milliseconds timeout) override { meet({}, timeout); }

 private:
  void meet(const Post& post, std::chrono::milliseconds timeout) {
    Group& g = *group_;
    std::unique_lock lock(g.mutex);
    if (g.broken)
      fail(ErrorKind::Runtime, cat("local communicator, rank ", rank_, ": ", op_name(post.op),
                                   " on a broken communicator (an earlier collective failed or timed out)"));
    g.posts[static_cast<std::size_t>(rank_)] = post;
    const std::uint64_t round = g.generation;
    if (++g.arrived == size()) {
      g.arrived = 0;
      ++g.generation;
      const auto mismatch =
          std::find_if(g.posts.begin(), g.posts.end(), [&](const Post& q) { return !(q == g.posts[0]); });
      if (mismatch != g.posts.end()) {
        g.broken = true;
        g.failed_generation = round;
        g.error = cat("ranks called different collectives: rank 0 ", op_name(g.posts[0].op), " of ", g.posts[0].count,
                      " ", name(g.posts[0].dtype), ", rank ", mismatch - g.posts.begin(), " ", op_name(mismatch->op),
                      " of ", mismatch->count, " ", name(mismatch->dtype));
      } else {
        g.execute();
      }
      g.cv.notify_all();
    } else {
      const bool done = g.cv.wait_for(lock, timeout, [&] { return g.generation != round || g.broken; });
      if (!done) {
        g.broken = true;
        g.cv.notify_all();
        fail(ErrorKind::Runtime,
             cat("local communicator, rank ", rank_, " of ", size(), ": ", op_name(post.op), " of ", post.count, " ",
                 name(post.dtype), " timed out after ", timeout.count(),
                 " ms waiting for the other ranks (a rank stalled, failed, or called another collective)"));
      }
    }
    if (g.failed_generation == round) fail(ErrorKind::Runtime, cat("local communicator, rank ", rank_, ": ", g.error));
    if (g.broken && g.generation == round)
      fail(ErrorKind::Runtime, cat("local communicator, rank ", rank_, ": ", op_name(post.op),
                                   " failed: another rank timed out and broke the communicator"));
  }

  std::shared_ptr<Group> group_;
  int rank_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::vector<std::shared_ptr<Communicator>> local_communicators(int size, std::chrono::milliseconds timeout) {
  if (size < 1) fail(ErrorKind::InvalidArgument, cat("local_communicators: size must be >= 1, got ", size));
  if (timeout.count() <= 0) fail(ErrorKind::InvalidArgument, "local_communicators: the timeout must be positive");
  auto group = std::make_shared<Group>(size);
  std::vector<std::shared_ptr<Communicator>> out;
  out.reserve(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) out.push_back(std::make_shared<LocalCommunicator>(group, r, timeout));
  return out;
}

}  // namespace trainrt::dist
