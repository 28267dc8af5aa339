// dist/nccl/emulated_nccl.cpp — NCCL for the emulated CUDA device (DESIGN decision 12): the
// entry points of NcclLibrary::Api over in-process communicators. The NCCL communicator
// (nccl_communicator.cpp) runs on it unchanged, so the path that enqueues NCCL calls is the
// one tested.
//
// Ranks are communicators of this process (one per emulated device, each with its own
// stream). A collective is enqueued on its stream as a host function (cuLaunchHostFunc of the
// emulated driver, with its byte ranges declared for the happens-before check); there it waits
// for the same collective (by sequence number) of every other rank, the last to arrive
// computes it over all ranks' buffers (device memory is host memory), and all continue. The
// ranks' calls must agree (kind, count, dtype, reduction, root): a mismatch fails every one of
// them, as NCCL would hang or corrupt. ncclCommAbort wakes ranks that wait for a peer that
// never comes; their communicator then reports ncclRemoteError. Reductions are in rank order,
// in double for floating types, so results are the same bits on every run.
// Not emulated: communicators across processes (mpirun over emulated devices).
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "dist/nccl/nccl_api.h"
#include "dist/nccl/nccl_call.h"
#include "runtime/cuda/driver.h"

namespace trainrt::detail {

namespace {

constexpr char kIdMagic[] = "trainrt emulated nccl";

struct Call {
  CollectiveKind kind = CollectiveKind::AllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  std::size_t count = 0;
  ncclDataType_t type = ncclFloat32;
  ncclRedOp_t op = ncclSum;
  int root = 0;
};

struct Group;

/// One rank.
struct Comm {
  std::shared_ptr<Group> group;
  int rank = 0;
  std::atomic<int> state{ncclInProgress};  // ncclInProgress until every rank joined
  std::uint64_t next = 0;                  // sequence number of the next collective it issues
  std::string last_error;
};

/// The ranks of one unique id.
struct Group {
  int size = 0;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Comm*> members;
  int joined = 0;
  bool aborted = false;
  std::string failure;  // a mismatch between the ranks' calls
  struct Slot {
    std::vector<Call> calls;
    std::vector<bool> arrived;
    int count = 0;
    bool done = false;
  };
  std::map<std::uint64_t, Slot> slots;
};

std::mutex g_registry_mutex;                           // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
std::map<std::string, std::weak_ptr<Group>> g_groups;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
std::atomic<std::uint64_t> g_ids{0};                   // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

std::size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    default: return 8;
  }
}

bool is_float(ncclDataType_t t) {
  return t == ncclFloat16 || t == ncclBfloat16 || t == ncclFloat32 || t == ncclFloat64;
}

double load_d(const void* p, ncclDataType_t t, std::size_t i) {
  switch (t) {
    case ncclFloat16: return half_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case ncclBfloat16: return bf16_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case ncclFloat32: return static_cast<const float*>(p)[i];
    default: return static_cast<const double*>(p)[i];
  }
}
void store_d(void* p, ncclDataType_t t, std::size_t i, double v) {
  switch (t) {
    case ncclFloat16: static_cast<std::uint16_t*>(p)[i] = float_to_half(static_cast<float>(v)); break;
    case ncclBfloat16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    case ncclFloat32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    default: static_cast<double*>(p)[i] = v;
  }
}
std::int64_t load_i(const void* p, ncclDataType_t t, std::size_t i) {
  switch (t) {
    case ncclInt8: return static_cast<const std::int8_t*>(p)[i];
    case ncclUint8: return static_cast<const std::uint8_t*>(p)[i];
    case ncclInt32: return static_cast<const std::int32_t*>(p)[i];
    case ncclUint32: return static_cast<const std::uint32_t*>(p)[i];
    default: return static_cast<const std::int64_t*>(p)[i];
  }
}
void store_i(void* p, ncclDataType_t t, std::size_t i, std::int64_t v) {
  switch (t) {
    case ncclInt8: static_cast<std::int8_t*>(p)[i] = static_cast<std::int8_t>(v); break;
    case ncclUint8: static_cast<std::uint8_t*>(p)[i] = static_cast<std::uint8_t>(v); break;
    case ncclInt32: static_cast<std::int32_t*>(p)[i] = static_cast<std::int32_t>(v); break;
    case ncclUint32: static_cast<std::uint32_t*>(p)[i] = static_cast<std::uint32_t>(v); break;
    default: static_cast<std::int64_t*>(p)[i] = v;
  }
}

template <class T>
T reduce(ncclRedOp_t op, T a, T b) {
  switch (op) {
    case ncclProd: return a * b;
    case ncclMax: return a < b ? b : a;
    case ncclMin: return b < a ? b : a;
    default: return a + b;
  }
}

// out[i] = reduce over ranks of in_r[offset + i], in rank order.
void reduce_into(const std::vector<Call>& calls, std::size_t offset, std::size_t count,
                 std::vector<unsigned char>& out) {
  const Call& c0 = calls[0];
  out.assign(count * type_size(c0.type), 0);
  for (std::size_t i = 0; i < count; ++i) {
    if (is_float(c0.type)) {
      double v = load_d(c0.send, c0.type, offset + i);
      for (std::size_t r = 1; r < calls.size(); ++r) v = reduce(c0.op, v, load_d(calls[r].send, c0.type, offset + i));
      if (c0.op == ncclAvg) v /= static_cast<double>(calls.size());
      store_d(out.data(), c0.type, i, v);
    } else {
      std::int64_t v = load_i(c0.send, c0.type, offset + i);
      for (std::size_t r = 1; r < calls.size(); ++r) v = reduce(c0.op, v, load_i(calls[r].send, c0.type, offset + i));
      if (c0.op == ncclAvg) v /= static_cast<std::int64_t>(calls.size());
      store_i(out.data(), c0.type, i, v);
    }
  }
}

// Every rank's output, from every rank's input (all of them are host memory here).
void compute(const std::vector<Call>& calls) {
  const Call& c0 = calls[0];
  const std::size_t es = type_size(c0.type), n = c0.count;
  const auto size = calls.size();
  switch (c0.kind) {
    case CollectiveKind::AllReduce: {
      std::vector<unsigned char> result;
      reduce_into(calls, 0, n, result);
      for (const Call& c : calls) std::memcpy(c.recv, result.data(), n * es);
      break;
    }
    case CollectiveKind::ReduceScatter: {
      std::vector<std::vector<unsigned char>> parts(size);
      for (std::size_t r = 0; r < size; ++r) reduce_into(calls, r * n, n, parts[r]);
      for (std::size_t r = 0; r < size; ++r) std::memcpy(calls[r].recv, parts[r].data(), n * es);
      break;
    }
    case CollectiveKind::AllGather: {
      std::vector<unsigned char> all(size * n * es);
      for (std::size_t r = 0; r < size; ++r) std::memcpy(all.data() + r * n * es, calls[r].send, n * es);
      for (const Call& c : calls) std::memcpy(c.recv, all.data(), all.size());
      break;
    }
    case CollectiveKind::Broadcast: {
      const std::vector<unsigned char> data(
          static_cast<const unsigned char*>(calls[static_cast<std::size_t>(c0.root)].send),
          static_cast<const unsigned char*>(calls[static_cast<std::size_t>(c0.root)].send) + n * es);
      for (const Call& c : calls) std::memcpy(c.recv, data.data(), n * es);
      break;
    }
  }
}

std::string describe_call(const Call& c) {
  return cat(name(c.kind), " of ", c.count, " elements of NCCL type ", static_cast<int>(c.type), " (op ",
             static_cast<int>(c.op), ", root ", c.root, ")");
}

/// The host function of one rank's collective.
struct Pending {
  std::shared_ptr<Group> group;
  Comm* comm = nullptr;
  int rank = 0;
  std::uint64_t seq = 0;
  Call call;
  bool keep = false;  // captured into a graph: replays run it again, so it is never freed

  static void run(void* self) {
    auto* p = static_cast<Pending*>(self);
    p->meet();
    if (!p->keep) delete p;  // NOLINT(cppcoreguidelines-owning-memory): made by enqueue, run once
  }

  void meet() {
    Group& g = *group;
    std::unique_lock lock(g.mutex);
    Group::Slot& s = g.slots[seq];
    if (s.calls.empty()) {
      s.calls.resize(static_cast<std::size_t>(g.size));
      s.arrived.assign(static_cast<std::size_t>(g.size), false);
    }
    s.calls[static_cast<std::size_t>(rank)] = call;
    s.arrived[static_cast<std::size_t>(rank)] = true;
    if (++s.count == g.size) {
      for (const Call& c : s.calls)
        if (c.kind != s.calls[0].kind || c.count != s.calls[0].count || c.type != s.calls[0].type ||
            c.op != s.calls[0].op || c.root != s.calls[0].root) {
          g.failure = cat("the ranks' collective #", seq, " differ: rank 0 calls ", describe_call(s.calls[0]),
                          ", another calls ", describe_call(c));
          break;
        }
      if (g.failure.empty()) compute(s.calls);
      s.done = true;
      g.changed.notify_all();
    } else {
      g.changed.wait(lock, [&] { return s.done || g.aborted; });
    }
    if (!g.failure.empty()) {
      for (Comm* m : g.members)
        if (m != nullptr) {
          m->last_error = g.failure;
          m->state = ncclInvalidUsage;
        }
    }
    if (s.done) {
      if (--s.count == 0) g.slots.erase(seq);
    }
  }
};

// ---- the entry points ----

ncclResult_t get_version(int* version) {
  *version = 21900;
  return ncclSuccess;
}

const char* get_error_string(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const char* get_last_error(ncclComm_t comm) {
  if (comm == nullptr) return "";
  return reinterpret_cast<Comm*>(comm)->last_error.c_str();
}

ncclResult_t get_unique_id(ncclUniqueId* id) {
  std::memset(id, 0, sizeof(*id));
  std::memcpy(id->internal, kIdMagic, sizeof(kIdMagic));
  std::uint64_t words[2] = {g_ids.fetch_add(1) + 1, std::random_device{}()};
  std::memcpy(id->internal + sizeof(kIdMagic), words, sizeof(words));
  return ncclSuccess;
}

ncclResult_t comm_init_rank_config(ncclComm_t* out, int nranks, ncclUniqueId id, int rank, ncclConfig_t* config) {
  if (out == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  *out = nullptr;
  if (std::memcmp(id.internal, kIdMagic, sizeof(kIdMagic)) != 0) return ncclInvalidArgument;
  const std::string key(id.internal, sizeof(id.internal));
  std::shared_ptr<Group> group;
  {
    std::lock_guard lock(g_registry_mutex);
    group = g_groups[key].lock();
    if (!group) {
      group = std::make_shared<Group>();
      group->size = nranks;
      group->members.assign(static_cast<std::size_t>(nranks), nullptr);
      g_groups[key] = group;
    }
  }
  auto comm = std::make_unique<Comm>();
  comm->group = group;
  comm->rank = rank;
  {
    std::lock_guard lock(group->mutex);
    if (group->size != nranks || group->members[static_cast<std::size_t>(rank)] != nullptr) return ncclInvalidUsage;
    group->members[static_cast<std::size_t>(rank)] = comm.get();
    if (++group->joined == nranks)
      for (Comm* m : group->members) m->state = ncclSuccess;
  }
  const bool blocking = config == nullptr || config->blocking != 0;
  Comm* raw = comm.release();
  *out = reinterpret_cast<ncclComm_t>(raw);
  if (blocking) {
    std::unique_lock lock(group->mutex);
    group->changed.wait(lock, [&] { return group->joined == nranks || group->aborted; });
    return group->aborted ? ncclRemoteError : ncclSuccess;
  }
  return raw->state.load() == ncclSuccess ? ncclSuccess : ncclInProgress;
}

ncclResult_t comm_get_async_error(ncclComm_t comm, ncclResult_t* state) {
  if (comm == nullptr || state == nullptr) return ncclInvalidArgument;
  *state = static_cast<ncclResult_t>(reinterpret_cast<Comm*>(comm)->state.load());
  return ncclSuccess;
}

ncclResult_t comm_finalize(ncclComm_t comm) { return comm == nullptr ? ncclInvalidArgument : ncclSuccess; }

void leave(Comm* c) {
  Group& g = *c->group;
  std::lock_guard lock(g.mutex);
  g.members[static_cast<std::size_t>(c->rank)] = nullptr;
}

ncclResult_t comm_destroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  Comm* c = reinterpret_cast<Comm*>(comm);
  leave(c);
  delete c;  // NOLINT(cppcoreguidelines-owning-memory): made by comm_init_rank_config
  return ncclSuccess;
}

ncclResult_t comm_abort(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  Comm* c = reinterpret_cast<Comm*>(comm);
  {
    Group& g = *c->group;
    std::lock_guard lock(g.mutex);
    g.aborted = true;  // the peers' waits end; their communicators report the remote error
    for (Comm* m : g.members)
      if (m != nullptr && m != c && m->state.load() == ncclSuccess) {  // an error of its own stays
        m->state = ncclRemoteError;
        m->last_error = cat("rank ", c->rank, " aborted the communicator");
      }
    g.changed.notify_all();
  }
  leave(c);
  delete c;  // NOLINT(cppcoreguidelines-owning-memory)
  return ncclSuccess;
}

ncclResult_t enqueue(const Call& call, ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr) return ncclInvalidArgument;
  Comm* c = reinterpret_cast<Comm*>(comm);
  if (c->state.load() != ncclSuccess) return static_cast<ncclResult_t>(c->state.load());
  if (call.type >= ncclFloat8e4m3 || static_cast<int>(call.op) < 0 || call.op >= ncclNumOps) return ncclInvalidArgument;
  const CudaDriver& d = CudaDriver::get();
  const std::size_t es = type_size(call.type), size = static_cast<std::size_t>(c->group->size);
  const std::size_t in = call.kind == CollectiveKind::ReduceScatter ? size * call.count : call.count;
  const std::size_t out = call.kind == CollectiveKind::AllGather ? size * call.count : call.count;
  const CudaAccess accesses[] = {{reinterpret_cast<CuDevicePtr>(call.send), in * es, false},
                                 {reinterpret_cast<CuDevicePtr>(call.recv), out * es, true}};
  int capturing = kCudaCaptureStatusNone;
  if (d.stream_is_capturing(stream, &capturing) != kCudaSuccess) return ncclInvalidArgument;
  auto* p = new Pending{c->group, c, c->rank, c->next++, call, capturing != kCudaCaptureStatusNone};  // NOLINT
  const std::string what = cat("nccl ", name(call.kind), " (emulated, rank ", c->rank, ")");
  try {
    d.declare(stream, accesses, 2, what.c_str());
    d.check(d.launch_host_func(stream, &Pending::run, p), what);
  } catch (const Error& e) {
    delete p;  // NOLINT(cppcoreguidelines-owning-memory)
    c->last_error = e.what();
    return ncclInvalidArgument;
  }
  return ncclSuccess;
}

ncclResult_t all_reduce(const void* send, void* recv, std::size_t count, ncclDataType_t type, ncclRedOp_t op,
                        ncclComm_t comm, cudaStream_t stream) {
  return enqueue({CollectiveKind::AllReduce, send, recv, count, type, op, 0}, comm, stream);
}
ncclResult_t reduce_scatter(const void* send, void* recv, std::size_t count, ncclDataType_t type, ncclRedOp_t op,
                            ncclComm_t comm, cudaStream_t stream) {
  return enqueue({CollectiveKind::ReduceScatter, send, recv, count, type, op, 0}, comm, stream);
}
ncclResult_t all_gather(const void* send, void* recv, std::size_t count, ncclDataType_t type, ncclComm_t comm,
                        cudaStream_t stream) {
  return enqueue({CollectiveKind::AllGather, send, recv, count, type, ncclSum, 0}, comm, stream);
}
ncclResult_t broadcast(const void* send, void* recv, std::size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                       cudaStream_t stream) {
  if (comm != nullptr && (root < 0 || root >= reinterpret_cast<Comm*>(comm)->group->size)) return ncclInvalidArgument;
  return enqueue({CollectiveKind::Broadcast, send, recv, count, type, ncclSum, root}, comm, stream);
}
// A group only batches calls for NCCL's scheduler; each call here is its own rendezvous.
ncclResult_t group_start() { return ncclSuccess; }
ncclResult_t group_end() { return ncclSuccess; }

}  // namespace

std::unique_ptr<NcclLibrary> NcclLibrary::emulated() {
  std::unique_ptr<NcclLibrary> lib(new NcclLibrary());
  lib->api_ = std::make_unique<Api>();
  Api& a = *lib->api_;
  a.get_version = &get_version;
  a.get_error_string = &get_error_string;
  a.get_last_error = &get_last_error;
  a.get_unique_id = &get_unique_id;
  a.comm_init_rank_config = &comm_init_rank_config;
  a.comm_get_async_error = &comm_get_async_error;
  a.comm_finalize = &comm_finalize;
  a.comm_abort = &comm_abort;
  a.comm_destroy = &comm_destroy;
  a.all_reduce = &all_reduce;
  a.reduce_scatter = &reduce_scatter;
  a.all_gather = &all_gather;
  a.broadcast = &broadcast;
  a.group_start = &group_start;
  a.group_end = &group_end;
  lib->path_ = "libtrainrt's emulated NCCL (in-process ranks)";
  (void)get_version(&lib->version_);
  return lib;
}

}  // namespace trainrt::detail
