// tests/dist_mpi_test.cpp — the MPI Communicator's collectives against known results.
//
// Run by ctest under `mpirun -np 2` and `-np 3` (and alone, as an MPI singleton) through
// dist_mpi_test.sh. Every rank runs every case in the same order, so the collectives match;
// value checks use EXPECT_* (never returning early) so that one rank's failure cannot leave
// the others waiting. Contents:
//   - every collective x every dtype x every reduction, with per-rank values whose results
//     are exact in every dtype (|value| <= 8, at most 3 ranks)
//   - in-place all_gather, zero counts (null buffers), large counts
//   - messages split into many MPI calls (a communicator limited to 64 bytes per call)
//   - f16/bf16 sums rounded to nearest even
//   - argument errors (which leave the communicator usable), rank/size vs launch_info()
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "dist/mpi/mpi_communicator.h"
#include "trainrt/dist_mpi.hpp"
#include "trainrt/errors.hpp"

namespace trainrt::dist {
namespace {

using std::chrono::milliseconds;

constexpr DType kAllDtypes[] = {DType::f32, DType::f64, DType::f16,    DType::bf16,
                                DType::i32, DType::i64, DType::boolean};
constexpr ReduceOp kAllOps[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::min};

/// The communicator every case shares (created by the first case, on every rank).
Communicator& comm() {
  static std::shared_ptr<Communicator> c = mpi_communicator({.timeout = milliseconds(60'000)});
  return *c;
}

/// A communicator that carries at most 64 bytes per MPI call, to exercise the splitting.
Communicator& small_comm() {
  static auto c = std::make_shared<detail::MpiCommunicator>(MpiOptions{.timeout = milliseconds(60'000)}, 64);
  return *c;
}

/// Host elements of one dtype, read and written as doubles.
class Buffer {
 public:
  Buffer(DType dtype, std::size_t count) : dtype_(dtype), bytes_(count * size_of(dtype)) {}
  void* data() { return bytes_.empty() ? nullptr : bytes_.data(); }
  std::size_t count() const { return bytes_.size() / size_of(dtype_); }
  void set(std::size_t i, double v) {
    std::byte* p = bytes_.data() + i * size_of(dtype_);
    switch (dtype_) {
      case DType::f32: store(p, static_cast<float>(v)); break;
      case DType::f64: store(p, v); break;
      case DType::f16: store(p, to_half(static_cast<float>(v))); break;
      case DType::bf16: store(p, to_bfloat16(static_cast<float>(v))); break;
      case DType::i32: store(p, static_cast<std::int32_t>(v)); break;
      case DType::i64: store(p, static_cast<std::int64_t>(v)); break;
      case DType::boolean: store(p, v != 0); break;
    }
  }
  double get(std::size_t i) const {
    const std::byte* p = bytes_.data() + i * size_of(dtype_);
    switch (dtype_) {
      case DType::f32: return load<float>(p);
      case DType::f64: return load<double>(p);
      case DType::f16: return to_float(load<Half>(p));
      case DType::bf16: return to_float(load<BFloat16>(p));
      case DType::i32: return load<std::int32_t>(p);
      case DType::i64: return static_cast<double>(load<std::int64_t>(p));
      case DType::boolean: return load<bool>(p) ? 1 : 0;
    }
    return 0;
  }

 private:
  template <class T>
  static void store(std::byte* p, T v) {
    std::memcpy(p, &v, sizeof v);
  }
  template <class T>
  static T load(const std::byte* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  DType dtype_;
  std::vector<std::byte> bytes_;
};

/// Rank r's element i: an integer in [-8, 8] (0 or 1 for boolean), so sums over 3 ranks are
/// exact in every dtype.
double value(DType dtype, int r, std::size_t i) {
  if (dtype == DType::boolean) return (i + static_cast<std::size_t>(r)) % 3 == 0 ? 1 : 0;
  return static_cast<double>(static_cast<long long>((i * 7 + static_cast<std::size_t>(r) * 13) % 17) - 8);
}

Buffer values(DType dtype, int r, std::size_t count, std::size_t first = 0) {
  Buffer b(dtype, count);
  for (std::size_t i = 0; i < count; ++i) b.set(i, value(dtype, r, first + i));
  return b;
}

/// Element i of the combination of every rank's values (logical or/and for boolean).
double combined(DType dtype, ReduceOp op, int ranks, std::size_t i) {
  double acc = value(dtype, 0, i);
  for (int r = 1; r < ranks; ++r) {
    const double v = value(dtype, r, i);
    if (op == ReduceOp::sum) acc = dtype == DType::boolean ? std::max(acc, v) : acc + v;
    if (op == ReduceOp::max) acc = std::max(acc, v);
    if (op == ReduceOp::min) acc = std::min(acc, v);
  }
  return acc;
}

const char* op_name(ReduceOp op) { return op == ReduceOp::sum ? "sum" : op == ReduceOp::max ? "max" : "min"; }

/// Counts the mismatches (so that a failure prints one line per dtype and op, not thousands).
template <class Expected>
void expect_elements(const Buffer& got, Expected expected, const std::string& what) {
  std::size_t wrong = 0, first = 0;
  for (std::size_t i = 0; i < got.count(); ++i)
    if (got.get(i) != expected(i) && wrong++ == 0) first = i;
  EXPECT_EQ(wrong, 0u) << what << " on rank " << comm().rank() << ": first wrong element " << first << " is "
                       << got.get(first) << ", expected " << expected(first);
}

void check_all_reduce(Communicator& c, std::size_t count) {
  for (DType dtype : kAllDtypes)
    for (ReduceOp op : kAllOps) {
      Buffer b = values(dtype, c.rank(), count);
      c.all_reduce(b.data(), count, dtype, op);
      expect_elements(
          b, [&](std::size_t i) { return combined(dtype, op, c.size(), i); },
          std::string("all_reduce ") + op_name(op) + " " + std::string(name(dtype)));
    }
}

void check_reduce_scatter(Communicator& c, std::size_t recv_count) {
  const auto ranks = static_cast<std::size_t>(c.size()), mine = static_cast<std::size_t>(c.rank());
  for (DType dtype : kAllDtypes)
    for (ReduceOp op : kAllOps) {
      const Buffer send = values(dtype, c.rank(), recv_count * ranks);
      Buffer recv(dtype, recv_count);
      c.reduce_scatter(const_cast<Buffer&>(send).data(), recv.data(), recv_count, dtype, op, c.default_timeout());
      expect_elements(
          recv, [&](std::size_t i) { return combined(dtype, op, c.size(), mine * recv_count + i); },
          std::string("reduce_scatter ") + op_name(op) + " " + std::string(name(dtype)));
    }
}

void check_all_gather(Communicator& c, std::size_t send_count, bool in_place) {
  const auto ranks = static_cast<std::size_t>(c.size()), mine = static_cast<std::size_t>(c.rank());
  for (DType dtype : kAllDtypes) {
    Buffer send = values(dtype, c.rank(), send_count);
    Buffer recv(dtype, send_count * ranks);
    const std::size_t e = size_of(dtype);
    if (in_place && send_count != 0)
      std::memcpy(static_cast<std::byte*>(recv.data()) + mine * send_count * e, send.data(), send_count * e);
    const void* from =
        in_place && send_count != 0 ? static_cast<std::byte*>(recv.data()) + mine * send_count * e : send.data();
    c.all_gather(from, recv.data(), send_count, dtype, c.default_timeout());
    expect_elements(
        recv, [&](std::size_t i) { return value(dtype, static_cast<int>(i / send_count), i % send_count); },
        std::string(in_place ? "in-place " : "") + "all_gather " + std::string(name(dtype)));
  }
}

void check_broadcast(Communicator& c, std::size_t count) {
  for (DType dtype : kAllDtypes)
    for (int root = 0; root < c.size(); ++root) {
      Buffer b = values(dtype, c.rank(), count);
      c.broadcast(b.data(), count, dtype, root);
      expect_elements(
          b, [&](std::size_t i) { return value(dtype, root, i); },
          "broadcast from " + std::to_string(root) + " " + std::string(name(dtype)));
    }
}

TEST(DistMpi, AgreesWithTheLauncher) {
  const LaunchInfo info = launch_info();
  EXPECT_EQ(comm().rank(), info.rank);
  EXPECT_EQ(comm().size(), info.size);
  EXPECT_EQ(comm().backend(), "mpi");
  EXPECT_FALSE(comm().device_memory());
  EXPECT_EQ(comm().default_timeout(), milliseconds(60'000));
  const char* expected_size = std::getenv("DIST_MPI_TEST_RANKS");  // set by dist_mpi_test.sh
  ASSERT_NE(expected_size, nullptr);
  EXPECT_EQ(comm().size(), std::atoi(expected_size));
}

TEST(DistMpi, AllReduceEveryDtypeAndOp) {
  check_all_reduce(comm(), 1000);
  check_all_reduce(comm(), 1);
}

TEST(DistMpi, ReduceScatterEveryDtypeAndOp) { check_reduce_scatter(comm(), 37); }

TEST(DistMpi, AllGatherEveryDtype) {
  check_all_gather(comm(), 41, false);
  check_all_gather(comm(), 41, true);
}

TEST(DistMpi, BroadcastEveryDtypeFromEveryRoot) { check_broadcast(comm(), 333); }

TEST(DistMpi, ZeroCountsWithNullBuffers) {
  for (DType dtype : kAllDtypes) {
    comm().all_reduce(nullptr, 0, dtype, ReduceOp::sum);
    comm().reduce_scatter(nullptr, nullptr, 0, dtype, ReduceOp::max, comm().default_timeout());
    comm().all_gather(nullptr, nullptr, 0, dtype, comm().default_timeout());
    comm().broadcast(nullptr, 0, dtype, comm().size() - 1);
  }
  check_all_gather(comm(), 0, false);
  check_reduce_scatter(comm(), 0);
}

TEST(DistMpi, LargeCounts) {
  // 2^24 + 3 f32 (64 MiB) through all_reduce; 2^22 + 1 per rank through the others.
  const std::size_t n = (std::size_t{1} << 24) + 3, m = (std::size_t{1} << 22) + 1;
  const auto ranks = static_cast<std::size_t>(comm().size()), mine = static_cast<std::size_t>(comm().rank());
  std::vector<float> a(n);
  for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<float>(i % 1024) + static_cast<float>(comm().rank());
  comm().all_reduce(a.data(), n, f32, ReduceOp::sum);
  const float rank_sum = static_cast<float>(ranks * (ranks - 1) / 2);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += a[i] != static_cast<float>(ranks * (i % 1024)) + rank_sum;
  EXPECT_EQ(wrong, 0u) << "large all_reduce";

  std::vector<std::int64_t> send(m * ranks), recv(m);
  for (std::size_t i = 0; i < send.size(); ++i) send[i] = static_cast<std::int64_t>(i) * (comm().rank() + 1);
  comm().reduce_scatter(send.data(), recv.data(), m, i64, ReduceOp::sum, comm().default_timeout());
  const auto factor = static_cast<std::int64_t>(ranks * (ranks + 1) / 2);
  wrong = 0;
  for (std::size_t i = 0; i < m; ++i) wrong += recv[i] != static_cast<std::int64_t>(mine * m + i) * factor;
  EXPECT_EQ(wrong, 0u) << "large reduce_scatter";

  std::vector<std::int32_t> gathered(m * ranks), mine_block(m);
  for (std::size_t i = 0; i < m; ++i) mine_block[i] = static_cast<std::int32_t>(i) - comm().rank();
  comm().all_gather(mine_block.data(), gathered.data(), m, i32, comm().default_timeout());
  wrong = 0;
  for (std::size_t i = 0; i < gathered.size(); ++i)
    wrong += gathered[i] != static_cast<std::int32_t>(i % m) - static_cast<std::int32_t>(i / m);
  EXPECT_EQ(wrong, 0u) << "large all_gather";
}

TEST(DistMpi, MessagesSplitIntoManyCalls) {
  // 64 bytes per call: 1000 f64 elements take 125 all_reduce calls; all_gather and
  // reduce_scatter go through the strided-datatype and packed paths.
  check_all_reduce(small_comm(), 1000);
  check_reduce_scatter(small_comm(), 37);
  check_all_gather(small_comm(), 41, false);
  check_all_gather(small_comm(), 41, true);
  check_broadcast(small_comm(), 333);
}

TEST(DistMpi, SixteenBitSumsRoundToNearestEven) {
  // Rank 0 holds 256 (bf16) / 2048 (f16), the first value whose spacing is 2; rank 1 adds 1
  // or 3; other ranks add 0. 257 and 2049 are ties that round down to the even neighbour;
  // 259 and 2051 are ties that round up to it. Any reduction order gives the same result.
  struct Case {
    DType dtype;
    float base, add, expected;
  };
  for (const Case& k : {Case{bf16, 256, 1, 256}, Case{bf16, 256, 3, 260}, Case{f16, 2048, 1, 2048},
                        Case{f16, 2048, 3, 2052}, Case{f16, -2048, -3, -2052}}) {
    Buffer b(k.dtype, 4);
    for (std::size_t i = 0; i < 4; ++i) b.set(i, comm().rank() == 0 ? k.base : comm().rank() == 1 ? k.add : 0);
    comm().all_reduce(b.data(), 4, k.dtype, ReduceOp::sum);
    const float expected = comm().size() == 1 ? k.base : k.expected;
    for (std::size_t i = 0; i < 4; ++i)
      EXPECT_EQ(b.get(i), expected) << name(k.dtype) << " " << k.base << " + " << k.add;
  }
}

TEST(DistMpi, BarrierWaitsForTheLastRank) {
  const auto begin = std::chrono::steady_clock::now();
  if (comm().rank() == 0) std::this_thread::sleep_for(milliseconds(300));
  comm().barrier();
  const auto waited = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(waited, milliseconds(comm().size() == 1 ? 0 : 250)) << "rank " << comm().rank();
}

TEST(DistMpi, BadArgumentsThrowAndLeaveTheCommunicatorUsable) {
  auto expect_invalid = [](auto&& call, const char* needle) {
    try {
      call();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  float x[8] = {};
  expect_invalid([&] { comm().all_reduce(nullptr, 4, f32, ReduceOp::sum); }, "data is null");
  expect_invalid([&] { comm().broadcast(x, 4, f32, comm().size()); }, "is not a rank");
  expect_invalid([&] { comm().broadcast(x, 4, f32, -1); }, "is not a rank");
  expect_invalid([&] { comm().all_reduce(x, 4, f32, ReduceOp::sum, milliseconds(0)); }, "must be > 0");
  expect_invalid([&] { comm().all_reduce(x, 4, static_cast<DType>(99), ReduceOp::sum); }, "DType value 99");
  expect_invalid([&] { comm().all_reduce(x, 4, f32, static_cast<ReduceOp>(7)); }, "ReduceOp value 7");
  expect_invalid([&] { comm().reduce_scatter(x, x, 1, f32, ReduceOp::sum, milliseconds(1000)); }, "recv overlaps send");
  // One byte past this rank's own block: overlapping, but not in place.
  const auto* skewed = reinterpret_cast<const std::byte*>(x) + comm().rank() * 4 + 1;
  expect_invalid([&] { comm().all_gather(skewed, x, 1, f32, milliseconds(1000)); }, "send overlaps recv");
  expect_invalid([] { mpi_communicator({.timeout = milliseconds(-5)}); }, "must be > 0");
  // Nothing was sent: the communicator still works.
  check_all_reduce(comm(), 5);
}

TEST(DistMpi, DefaultTimeoutFromTheEnvironment) {
  ::unsetenv("TRAINRT_DIST_TIMEOUT_MS");
  EXPECT_EQ(mpi_default_timeout(), std::chrono::minutes(5));
  ::setenv("TRAINRT_DIST_TIMEOUT_MS", "1500", 1);
  EXPECT_EQ(mpi_default_timeout(), milliseconds(1500));
  EXPECT_EQ(MpiOptions{}.timeout, milliseconds(1500));
  for (const char* bad : {"0", "-3", "12s", "x"}) {
    ::setenv("TRAINRT_DIST_TIMEOUT_MS", bad, 1);
    try {
      mpi_default_timeout();
      ADD_FAILURE() << "TRAINRT_DIST_TIMEOUT_MS=" << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
      EXPECT_NE(std::string(e.what()).find("TRAINRT_DIST_TIMEOUT_MS"), std::string::npos) << e.what();
    }
  }
  ::unsetenv("TRAINRT_DIST_TIMEOUT_MS");
}

}  // namespace
}  // namespace trainrt::dist
