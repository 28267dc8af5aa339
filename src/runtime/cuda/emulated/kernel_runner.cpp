// runtime/cuda/emulated/kernel_runner.cpp — modules, grids, blocks; the fiber scheduler, warp
// primitives, barriers and the shared-memory checks of the kernel emulator.
#include "runtime/cuda/emulated/kernel_runner.h"

#include <tbb/blocked_range.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <random>

#include "compile/host_compiler.h"
#include "core/error.h"
#include "runtime/cuda/emulated/config.h"
#include "runtime/cuda/emulated/fiber.h"

namespace trainrt::detail {

namespace {

constexpr unsigned kWarp = 32;
constexpr unsigned kMaxThreads = 1024;
constexpr std::size_t kFiberStack = std::size_t{128} << 10;

/// What a hook throws when the kernel did something wrong; caught at the block's edge.
struct KernelFault {
  std::string message;
};

const char* warp_op_name(int kind) {
  switch (kind) {
    case TRK_EMU_SHFL: return "__shfl_sync";
    case TRK_EMU_SHFL_UP: return "__shfl_up_sync";
    case TRK_EMU_SHFL_DOWN: return "__shfl_down_sync";
    case TRK_EMU_SHFL_XOR: return "__shfl_xor_sync";
    case TRK_EMU_BALLOT: return "__ballot_sync";
    case TRK_EMU_ANY: return "__any_sync";
    case TRK_EMU_ALL: return "__all_sync";
    case TRK_EMU_SYNCWARP: return "__syncwarp";
    default: return "a warp primitive";
  }
}

enum class State : std::uint8_t { ready, barrier, warp, exited };

struct ThreadState {
  trk_emu_thread t{};  // first: a hook's trk_emu_thread* is this ThreadState's address
  State state = State::ready;
  bool started = false;
  int kind = 0, line = 0, size = 0, arg = 0, width = 32, predicate = 0;
  unsigned mask = 0;
  unsigned long long value = 0, result = 0;
  std::uint32_t vc[kWarp] = {};  // vector clock over the lanes of its warp (shared-memory checks)
  Fiber fiber;
};
static_assert(std::is_standard_layout_v<trk_emu_thread>);

// Per byte of a block's shared memory, in checking mode.
struct Shadow {
  std::uint32_t gen = 0;  // the block run this entry belongs to (older entries read as fresh)
  std::uint32_t write_epoch = 0, read_epoch = 0;
  std::uint32_t write_clock = 0, read_clock = 0;
  std::int16_t writer = -1, reader = -1;
  std::uint8_t written = 0, many_readers = 0;
};

struct Site {
  int site;
  std::size_t offset, bytes;
  const char* name;
};

std::atomic<std::uint32_t> g_block_generation{0};  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

/// One OS thread's block: reused for every block that thread runs (blocks on one OS thread
/// run one after another; a block's fibers never leave it).
struct BlockState {
  const GridLaunch* launch = nullptr;
  void* const* argv = nullptr;
  std::unique_ptr<ThreadState[]> threads = std::make_unique<ThreadState[]>(kMaxThreads);
  unsigned count = 0;
  trk_emu_dim3 index{};
  std::vector<unsigned char> shared;  // static part (kEmulatedSharedBytes), then the dynamic part
  std::size_t static_used = 0;
  std::vector<Site> sites;
  std::vector<Shadow> shadow;
  std::uint32_t gen = 0, epoch = 1;
  int last_barrier = 0;  // line of the last barrier passed, 0 before the first
  Fiber scheduler;
  std::vector<std::unique_ptr<FiberStack>> stacks;
  std::exception_ptr error;
  bool fibers = false;

  std::string where() const {
    return cat("kernel '", launch->kernel->name, "', block (", index.x, ",", index.y, ",", index.z, ")");
  }
  std::string thread_name(unsigned linear) const {
    const trk_emu_dim3& d = launch->block;
    return cat("thread (", linear % d.x, ",", linear / d.x % d.y, ",", linear / (d.x * d.y), ")");
  }
  std::string since() const {
    return last_barrier ? cat("since the barrier at line ", last_barrier) : std::string("since the kernel began");
  }
};

ThreadState& state_of(trk_emu_thread* self) { return *reinterpret_cast<ThreadState*>(self); }
BlockState& block_of(trk_emu_thread* self) { return *static_cast<BlockState*>(self->block); }

[[noreturn]] void fault_at(const BlockState& b, const std::string& what) {
  throw KernelFault{cat("the emulated device found a bug in ", b.where(), ": ", what)};
}

// Blocks the calling fiber until the scheduler resumes it.
void park(ThreadState& t, BlockState& b) {
  if (!b.fibers)
    fault_at(b,
             "a barrier or warp primitive in a kernel the emulator runs as a loop (an internal error of the "
             "emulator's source rewrite)");
  switch_fiber(t.fiber, b.scheduler);
}

// ---- hooks (trk_emu_runtime) ----

int hook_syncthreads(trk_emu_thread* self, int kind, int predicate, int line) {
  ThreadState& t = state_of(self);
  BlockState& b = block_of(self);
  t.state = State::barrier;
  t.kind = kind;
  t.predicate = predicate;
  t.line = line;
  park(t, b);
  return static_cast<int>(t.result);
}

unsigned long long hook_warp_op(trk_emu_thread* self, int kind, unsigned mask, unsigned long long value, int size,
                                int arg, int width, int line) {
  ThreadState& t = state_of(self);
  BlockState& b = block_of(self);
  if (kind < 0) {  // __activemask(): the lanes of the warp that have not exited
    const unsigned w = self->linear / kWarp;
    unsigned active = 0;
    for (unsigned l = 0; l < kWarp && w * kWarp + l < b.count; ++l)
      if (b.threads[w * kWarp + l].state != State::exited) active |= 1u << l;
    return active;
  }
  t.state = State::warp;
  t.kind = kind;
  t.mask = mask;
  t.value = value;
  t.size = size;
  t.arg = arg;
  t.width = width;
  t.line = line;
  park(t, b);
  return t.result;
}

void* hook_shared_static(trk_emu_thread* self, int site, const char* name, unsigned long long bytes,
                         unsigned long long align) {
  BlockState& b = block_of(self);
  for (const Site& s : b.sites)
    if (s.site == site) return b.shared.data() + s.offset;
  if (align == 0 || align > 16) align = 16;
  const std::size_t offset = (b.static_used + align - 1) / align * align;
  if (offset + bytes + b.launch->dynamic_shared > kEmulatedSharedBytes)
    fault_at(b, cat("__shared__ ", name, " (", bytes, " bytes) makes the block's shared memory ",
                    offset + bytes + b.launch->dynamic_shared, " bytes (", b.launch->dynamic_shared,
                    " of them dynamic), over the ", kEmulatedSharedBytes, " bytes a block may have"));
  b.static_used = offset + bytes;
  b.sites.push_back({site, offset, static_cast<std::size_t>(bytes), name});
  return b.shared.data() + offset;
}

void* hook_shared_dynamic(trk_emu_thread* self, unsigned long long* bytes) {
  BlockState& b = block_of(self);
  *bytes = b.launch->dynamic_shared;
  return b.shared.data() + kEmulatedSharedBytes;
}

std::string shared_place(const BlockState& b, std::size_t offset) {
  if (offset >= kEmulatedSharedBytes) return cat("dynamic shared memory at byte ", offset - kEmulatedSharedBytes);
  for (const Site& s : b.sites)
    if (offset >= s.offset && offset < s.offset + s.bytes) return cat("'", s.name, "' at byte ", offset - s.offset);
  return cat("shared memory at byte ", offset);
}

void hook_shared_access(trk_emu_thread* self, const void* at, unsigned long long bytes, int write) {
  BlockState& b = block_of(self);
  ThreadState& me = state_of(self);
  const auto offset = static_cast<std::size_t>(static_cast<const unsigned char*>(at) - b.shared.data());
  if (offset + bytes > b.shared.size()) fault_at(b, "an access outside the block's shared memory");
  const unsigned c = self->linear;
  const std::uint32_t mine = me.vc[c % kWarp];
  auto ordered = [&](int p, std::uint32_t clock) {
    return static_cast<unsigned>(p) / kWarp == c / kWarp && me.vc[static_cast<unsigned>(p) % kWarp] >= clock;
  };
  auto race = [&](int other, bool other_wrote) {
    fault_at(b, cat("shared-memory race: ", b.thread_name(c), write ? " writes " : " reads ", shared_place(b, offset),
                    ", which ", b.thread_name(static_cast<unsigned>(other)), other_wrote ? " wrote" : " read",
                    ", with no __syncthreads() or warp synchronization between them (", b.since(), ")"));
  };
  for (std::size_t i = offset; i < offset + bytes; ++i) {
    Shadow& e = b.shadow[i];
    if (e.gen != b.gen) e = Shadow{b.gen};
    if (!write) {
      if (!e.written)
        fault_at(b, cat(b.thread_name(c), " reads ", shared_place(b, i),
                        ", which no thread of the block has written (shared memory starts undefined)"));
      if (e.writer >= 0 && static_cast<unsigned>(e.writer) != c && e.write_epoch == b.epoch &&
          !ordered(e.writer, e.write_clock))
        race(e.writer, true);
      if (e.read_epoch != b.epoch || e.reader < 0) {
        e.reader = static_cast<std::int16_t>(c);
        e.read_clock = mine;
        e.read_epoch = b.epoch;
        e.many_readers = 0;
      } else if (static_cast<unsigned>(e.reader) != c) {
        if (ordered(e.reader, e.read_clock) && !e.many_readers) {
          e.reader = static_cast<std::int16_t>(c);
          e.read_clock = mine;
        } else {
          e.many_readers = 1;
        }
      } else {
        e.read_clock = mine;
      }
    } else {
      if (e.writer >= 0 && static_cast<unsigned>(e.writer) != c && e.write_epoch == b.epoch &&
          !ordered(e.writer, e.write_clock))
        race(e.writer, true);
      if (e.read_epoch == b.epoch && e.reader >= 0) {
        if (e.many_readers) race(e.reader, false);
        if (static_cast<unsigned>(e.reader) != c && !ordered(e.reader, e.read_clock)) race(e.reader, false);
      }
      e.writer = static_cast<std::int16_t>(c);
      e.write_clock = mine;
      e.write_epoch = b.epoch;
      e.written = 1;
      e.reader = -1;
      e.many_readers = 0;
    }
  }
}

void hook_fault(trk_emu_thread* self, const char* message, int line) {
  const BlockState& b = block_of(self);
  fault_at(b, cat(b.thread_name(self->linear), line ? cat(" at line ", line, ": ") : std::string(": "), message));
}

const trk_emu_runtime& runtime_table() {
  static const trk_emu_runtime table{TRK_EMU_ABI_VERSION, emulator_config().check ? 1 : 0,
                                     &hook_syncthreads,   &hook_warp_op,
                                     &hook_shared_static, &hook_shared_dynamic,
                                     &hook_shared_access, &hook_fault};
  return table;
}

// ---- the scheduler ----

void fiber_main(void* arg) {
  ThreadState& t = *static_cast<ThreadState*>(arg);
  BlockState& b = *static_cast<BlockState*>(t.t.block);
  try {
    b.launch->kernel->run(&t.t, b.argv);
  } catch (...) {
    b.error = std::current_exception();
  }
  t.state = State::exited;
  switch_fiber(t.fiber, b.scheduler);  // never resumed
}

std::string describe_wait(const ThreadState& s) {
  switch (s.state) {
    case State::barrier: return cat("waits at the barrier at line ", s.line);
    case State::warp: return cat("waits at ", warp_op_name(s.kind), " at line ", s.line);
    case State::exited: return "has exited";
    case State::ready: break;
  }
  return "is running";
}

// Completes the warp primitives whose lanes have all arrived; true when one did.
bool resolve_warps(BlockState& b) {
  bool progressed = false;
  const unsigned warps = (b.count + kWarp - 1) / kWarp;
  for (unsigned w = 0; w < warps; ++w) {
    for (unsigned l = 0; l < kWarp && w * kWarp + l < b.count; ++l) {
      ThreadState& req = b.threads[w * kWarp + l];
      if (req.state != State::warp) continue;
      const char* op = warp_op_name(req.kind);
      const std::string call = cat(op, " at line ", req.line, " (mask 0x", std::hex, req.mask, std::dec, ")");
      if (!(req.mask >> l & 1u))
        fault_at(b, cat(b.thread_name(req.t.linear), " (lane ", l, ") calls ", call, ", a mask without its own lane"));
      if (req.kind <= TRK_EMU_SHFL_XOR && (req.width < 1 || req.width > 32 || (req.width & (req.width - 1)) != 0))
        fault_at(b, cat(call, ": width ", req.width, " is not a power of two from 1 to 32"));
      // The participants: every lane of the mask that has not exited must be at this call.
      unsigned participants = 0;
      for (unsigned j = 0; j < kWarp; ++j) {
        if (!(req.mask >> j & 1u) || w * kWarp + j >= b.count) continue;
        const ThreadState& s = b.threads[w * kWarp + j];
        if (s.state == State::exited) continue;
        if (s.state == State::warp && s.kind == req.kind && s.line == req.line && s.mask == req.mask &&
            s.size == req.size && s.width == req.width) {
          participants |= 1u << j;
          continue;
        }
        fault_at(b, cat(call, " in warp ", w, " is not reached by every lane of its mask: lane ", j, " (",
                        b.thread_name(s.t.linear), ") ", describe_wait(s)));
      }
      // Results, from the values as they arrived.
      unsigned long long vote = 0;
      if (req.kind == TRK_EMU_BALLOT || req.kind == TRK_EMU_ANY || req.kind == TRK_EMU_ALL) {
        unsigned ballot = 0;
        for (unsigned j = 0; j < kWarp; ++j)
          if (participants >> j & 1u && b.threads[w * kWarp + j].value != 0) ballot |= 1u << j;
        vote = req.kind == TRK_EMU_BALLOT ? ballot : req.kind == TRK_EMU_ANY ? (ballot != 0) : (ballot == participants);
      }
      for (unsigned j = 0; j < kWarp; ++j) {
        if (!(participants >> j & 1u)) continue;
        ThreadState& s = b.threads[w * kWarp + j];
        if (req.kind > TRK_EMU_SHFL_XOR) {
          s.result = vote;
          continue;
        }
        const auto width = static_cast<unsigned>(s.width);
        const unsigned base = j & ~(width - 1);
        long long src = j;
        switch (s.kind) {
          case TRK_EMU_SHFL:
            src = base + static_cast<unsigned>(((s.arg % static_cast<int>(width)) + static_cast<int>(width)) %
                                               static_cast<int>(width));
            break;
          case TRK_EMU_SHFL_UP:
            src = static_cast<long long>(j) - s.arg < base ? j : static_cast<long long>(j) - s.arg;
            break;
          case TRK_EMU_SHFL_DOWN:
            src = j + static_cast<long long>(s.arg) >= base + width ? j : j + static_cast<long long>(s.arg);
            break;
          default: {
            const unsigned x = j ^ static_cast<unsigned>(s.arg);
            src = x >= base + width ? j : x;
          }
        }
        if (src < 0 || src >= static_cast<long long>(kWarp) || !(participants >> src & 1u)) {
          const unsigned src_index = w * kWarp + static_cast<unsigned>(src);
          const std::string why = src < 0 || src >= static_cast<long long>(kWarp) ? std::string("is not a lane")
                                  : src_index >= b.count  ? std::string("does not exist (the block ends before it)")
                                  : !(s.mask >> src & 1u) ? cat("is outside the mask 0x", std::hex, s.mask)
                                                          : std::string("has exited");
          fault_at(b, cat(b.thread_name(s.t.linear), " (lane ", j, ") calls ", op, " at line ", s.line,
                          " and reads lane ", src, ", which ", why, ": the value it gets is undefined"));
        }
        s.result = b.threads[w * kWarp + static_cast<unsigned>(src)].value;
      }
      // The participants synchronize: each learns the others' clocks, then ticks its own.
      std::uint32_t joined[kWarp] = {};
      for (unsigned j = 0; j < kWarp; ++j)
        if (participants >> j & 1u)
          for (unsigned k = 0; k < kWarp; ++k) joined[k] = std::max(joined[k], b.threads[w * kWarp + j].vc[k]);
      for (unsigned j = 0; j < kWarp; ++j)
        if (participants >> j & 1u) {
          ThreadState& s = b.threads[w * kWarp + j];
          std::memcpy(s.vc, joined, sizeof(joined));
          ++s.vc[j];
          s.state = State::ready;
        }
      progressed = true;
    }
  }
  return progressed;
}

// Opens the block barrier when every thread that must has reached it; throws otherwise.
void resolve_barrier(BlockState& b, bool check) {
  unsigned waiting = 0, exited = 0;
  int line = 0;
  const ThreadState* other_line = nullptr;
  const ThreadState* first_exited = nullptr;
  for (unsigned i = 0; i < b.count; ++i) {
    const ThreadState& s = b.threads[i];
    if (s.state == State::warp)
      fault_at(b, cat(b.thread_name(i), " waits at ", warp_op_name(s.kind), " at line ", s.line,
                      ", which cannot complete: the other lanes of its mask are elsewhere"));
    if (s.state == State::exited) {
      ++exited;
      if (!first_exited) first_exited = &s;
      continue;
    }
    ++waiting;
    if (line == 0) line = s.line;
    else if (s.line != line && !other_line) other_line = &s;
  }
  if (check && other_line)
    fault_at(b, cat("divergent barriers: ", b.thread_name(other_line->t.linear), " waits at the barrier at line ",
                    other_line->line, " while others wait at the barrier at line ", line));
  if (check && exited > 0)
    fault_at(b, cat("the barrier at line ", line, " is reached by ", waiting, " of the block's ", b.count,
                    " threads: ", b.thread_name(first_exited->t.linear), " and ", exited - 1,
                    " other(s) exited without reaching it (a __syncthreads() in a branch not every thread takes)"));
  int count = 0, all = 1, any = 0;
  for (unsigned i = 0; i < b.count; ++i) {
    const ThreadState& s = b.threads[i];
    if (s.state != State::barrier) continue;
    count += s.predicate;
    all &= s.predicate;
    any |= s.predicate;
  }
  for (unsigned i = 0; i < b.count; ++i) {
    ThreadState& s = b.threads[i];
    if (s.state != State::barrier) continue;
    s.result = s.kind == TRK_EMU_BARRIER_COUNT ? count
               : s.kind == TRK_EMU_BARRIER_AND ? all
               : s.kind == TRK_EMU_BARRIER_OR  ? any
                                               : 0;
    s.state = State::ready;
  }
  ++b.epoch;
  b.last_barrier = line;
}

// The order a round runs its threads in: forward, or in checking mode forward, reversed and
// shuffled in turn (seeded by the launch's seed, the block and the round).
void round_order(const BlockState& b, unsigned round, bool check, std::vector<unsigned>& order) {
  order.resize(b.count);
  for (unsigned i = 0; i < b.count; ++i) order[i] = i;
  if (!check) return;
  if (round % 3 == 1) std::reverse(order.begin(), order.end());
  if (round % 3 == 2) {
    const std::uint64_t block = b.index.x + static_cast<std::uint64_t>(b.index.y) * 65536u +
                                static_cast<std::uint64_t>(b.index.z) * 65536u * 65536u;
    std::mt19937_64 rng(b.launch->seed * 0x9E3779B97F4A7C15ull ^ block * 0xBF58476D1CE4E5B9ull ^ round);
    std::shuffle(order.begin(), order.end(), rng);
  }
}

void run_block(BlockState& b, const GridLaunch& l, void* const* argv, std::uint64_t linear_block) {
  b.launch = &l;
  b.argv = argv;
  b.count = l.block.x * l.block.y * l.block.z;
  b.index = {static_cast<unsigned>(linear_block % l.grid.x), static_cast<unsigned>(linear_block / l.grid.x % l.grid.y),
             static_cast<unsigned>(linear_block / (static_cast<std::uint64_t>(l.grid.x) * l.grid.y))};
  b.static_used = 0;
  b.sites.clear();
  b.epoch = 1;
  b.last_barrier = 0;
  b.error = nullptr;
  b.fibers = l.kernel->uses_sync != 0;
  const std::size_t shared = kEmulatedSharedBytes + l.dynamic_shared;
  if (b.shared.size() < shared) b.shared.resize(shared);
  if (l.check) {
    std::memset(b.shared.data(), 0xFF, shared);  // shared memory starts poisoned
    if (b.shadow.size() < shared) b.shadow.resize(shared);
    b.gen = g_block_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  for (unsigned i = 0; i < b.count; ++i) {
    ThreadState& s = b.threads[i];
    s.t.thread_idx = {i % l.block.x, i / l.block.x % l.block.y, i / (l.block.x * l.block.y)};
    s.t.block_idx = b.index;
    s.t.block_dim = l.block;
    s.t.grid_dim = l.grid;
    s.t.linear = i;
    s.t.block = &b;
    s.state = State::ready;
    s.started = false;
    std::memset(s.vc, 0, sizeof(s.vc));
    s.vc[i % kWarp] = 1;
  }
  std::vector<unsigned> order;
  if (!b.fibers) {
    round_order(b, static_cast<unsigned>(linear_block % 3), l.check, order);
    for (unsigned i : order) {
      l.kernel->run(&b.threads[i].t, argv);
      b.threads[i].state = State::exited;
    }
    return;
  }
  while (b.stacks.size() < b.count) b.stacks.push_back(std::make_unique<FiberStack>(kFiberStack));
  for (unsigned round = 0;; ++round) {
    round_order(b, round, l.check, order);
    for (unsigned i : order) {
      ThreadState& s = b.threads[i];
      if (s.state != State::ready) continue;
      if (!s.started) {
        make_fiber(s.fiber, *b.stacks[i], &fiber_main, &s);
        s.started = true;
      }
      switch_fiber(b.scheduler, s.fiber);
      if (b.error) std::rethrow_exception(b.error);
    }
    bool done = true;
    for (unsigned i = 0; i < b.count && done; ++i) done = b.threads[i].state == State::exited;
    if (done) return;
    if (resolve_warps(b)) continue;
    resolve_barrier(b, l.check);
  }
}

tbb::task_arena& emulator_arena() {
  static tbb::task_arena arena(tbb::info::default_concurrency());
  return arena;
}

}  // namespace

std::unique_ptr<EmulatedModule> EmulatedModule::load(const void* image) {
  const auto* bytes = static_cast<const char*>(image);
  constexpr std::size_t kMagic = sizeof(TRK_EMU_IMAGE_MAGIC) - 1;
  if (image == nullptr || std::memcmp(bytes, TRK_EMU_IMAGE_MAGIC, kMagic) != 0)
    fail(ErrorKind::InvalidArgument,
         "the emulated device runs host builds of CUDA sources, and this image is not one (a CUBIN or PTX from "
         "NVRTC?): build modules with compile/cuda_build.h's build_cuda_image for the device");
  std::uint64_t size = 0;
  for (std::size_t i = 0; i < 8; ++i)
    size |= static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[kMagic + i])) << (8 * i);
  const std::string object(bytes + kMagic + 8, size);
  auto m = std::unique_ptr<EmulatedModule>(new EmulatedModule());  // NOLINT(modernize-make-unique): private constructor
  m->module_ = LoadedModule::load(object, "emulated CUDA module");
  const auto* version = static_cast<const int*>(m->module_->find("trk_emu_abi_version"));
  auto* bind = reinterpret_cast<void (*)(const trk_emu_runtime*)>(m->module_->find("trk_emu_bind"));
  if (version == nullptr || bind == nullptr)
    fail(ErrorKind::Runtime, "an emulated CUDA module without trk_emu_abi_version/trk_emu_bind (not a host build)");
  if (*version != TRK_EMU_ABI_VERSION)
    fail(ErrorKind::Runtime, cat("an emulated CUDA module of ABI version ", *version, ", where this libtrainrt runs ",
                                 TRK_EMU_ABI_VERSION, " (a cache entry of another build?)"));
  bind(&runtime_table());
  return m;
}

const trk_emu_kernel* EmulatedModule::function(const std::string& name) const {
  return static_cast<const trk_emu_kernel*>(module_->find("trk_emu_kernel_" + name));
}

void run_grid(const GridLaunch& launch) {
  std::vector<void*> argv(launch.offsets.size());
  for (std::size_t i = 0; i < argv.size(); ++i)
    argv[i] = const_cast<unsigned char*>(launch.args.data() + launch.offsets[i]);
  const std::uint64_t blocks = static_cast<std::uint64_t>(launch.grid.x) * launch.grid.y * launch.grid.z;
  if (blocks == 0) return;
  try {
    emulator_arena().execute([&] {
      tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, blocks), [&](const tbb::blocked_range<std::uint64_t>& r) {
        thread_local BlockState block;
        for (std::uint64_t i = r.begin(); i != r.end(); ++i) run_block(block, launch, argv.data(), i);
      });
    });
  } catch (const KernelFault& f) {
    fail(ErrorKind::Runtime, f.message);
  }
}

}  // namespace trainrt::detail
