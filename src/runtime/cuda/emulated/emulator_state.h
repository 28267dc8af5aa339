// runtime/cuda/emulated/emulator_state.h — the emulated driver's objects (private to
// runtime/cuda/emulated): contexts, streams and their operations, events, captures, graphs,
// modules. emulator.cpp has the entry points of the table, emulated_streams.cpp the streams,
// events, captures and graphs.
//
// Locking: Emulator::mutex guards the object tables, every stream's clock and capture state,
// the events, the happens-before checker and the host's clock; it is taken by the entry points
// (the host's threads) only. Each stream's own mutex guards its queue and counters, and is what
// its worker thread takes; a worker never takes Emulator::mutex. Order: Emulator::mutex, then a
// stream's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/cuda/emulated/config.h"
#include "runtime/cuda/emulated/emulator.h"
#include "runtime/cuda/emulated/happens_before.h"
#include "runtime/cuda/emulated/kernel_runner.h"
#include "runtime/cuda/emulated/memory.h"

namespace trainrt::detail::emu {

/// An error an operation's work throws on a worker: the context's sticky error.
struct Fault {
  int code;
  std::string message;
};

struct Context {
  int device = 0;
  int refs = 0;
  std::mutex error_mutex;
  int error_code = 0;  // the sticky error: every later call returns it
  std::string error_message;
  void set_error(int code, const std::string& message) {
    std::lock_guard lock(error_mutex);
    if (error_code == 0) {
      error_code = code;
      error_message = message;
    }
  }
  bool failed() {
    std::lock_guard lock(error_mutex);
    return error_code != 0;
  }
};

struct Stream;

/// One queued operation.
struct Op {
  std::string name;                  // "kernel axpy", for errors and reports
  std::function<void()> work;        // null for a pure wait
  std::shared_ptr<Stream> wait_for;  // wait until this stream has completed `wait_position`
  std::uint64_t wait_position = 0;
  std::function<void()> on_done;  // after the work (a pageable copy's host side)
};

struct Capture;

struct Stream : std::enable_shared_from_this<Stream> {
  Context* context = nullptr;
  bool legacy = false;               // the context's legacy default stream (handle nullptr)
  bool blocking = false;             // created without CU_STREAM_NON_BLOCKING: orders against the legacy stream
  std::string name;                  // "stream 3", "the legacy default stream of emulated device 0"
  int component = -1;                // its happens-before component (checking mode)
  VectorClock clock;                 // under Emulator::mutex
  std::shared_ptr<Capture> capture;  // under Emulator::mutex: the capture it belongs to
  std::vector<int> capture_deps;     // nodes of that capture its next node depends on

  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Op> queue;
  std::uint64_t enqueued = 0, completed = 0;
  bool stopping = false;
  std::thread worker;

  /// Appends an operation (under `mutex`); returns its position.
  std::uint64_t push(Op op);
  /// Blocks until `position` has completed.
  void wait(std::uint64_t position);
  bool done(std::uint64_t position);
  /// Finishes what is queued and stops the worker.
  void stop();
  void run();  // the worker
};

/// An operation recorded into a graph instead of run.
struct GraphNode {
  Op op;
  std::vector<CudaAccess> accesses;
  std::vector<int> deps;
  int lane = 0;  // the captured stream it came from
  bool kernel = false;
};

struct Graph {
  std::vector<GraphNode> nodes;
  std::vector<std::string> lanes;  // names of the captured streams
};

struct Capture {
  Stream* origin = nullptr;
  std::thread::id thread;  // the capturing thread (CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
  bool invalidated = false;
  std::string invalidated_by;
  Graph graph;
  std::map<Stream*, int> lanes;
  std::vector<Stream*> members;
};

struct Event {
  Context* context = nullptr;
  std::shared_ptr<Stream> stream;  // of the last record outside capture (null: never recorded)
  std::uint64_t position = 0;
  VectorClock clock;
  std::shared_ptr<Capture> capture;  // a record inside a capture
  std::vector<int> capture_deps;
};

struct GraphExec {
  Context* context = nullptr;
  Graph graph;
  std::vector<int> order;       // replay order: dependencies first, otherwise latest-captured first
  std::vector<int> components;  // happens-before component of each lane (checking mode)
  VectorClock last;             // the clock after its last launch (checking mode)
};

struct Function;
struct Module {
  Context* context = nullptr;
  std::unique_ptr<EmulatedModule> image;
  std::map<std::string, std::unique_ptr<Function>> functions;
};
struct Function {
  Module* module = nullptr;
  const trk_emu_kernel* kernel = nullptr;
  std::string name;
};

/// The declaration a thread made for its next operation on a stream.
struct PendingAccesses {
  void* stream = nullptr;
  bool set = false;
  std::vector<CudaAccess> accesses;
  std::string what;
};

class Emulator {
 public:
  static Emulator& get();
  const EmulatorConfig config;
  EmulatedMemory memory;
  std::mutex mutex;
  std::vector<std::unique_ptr<Context>> contexts;
  std::map<Stream*, std::shared_ptr<Stream>> streams;
  std::vector<std::shared_ptr<Stream>> legacy;  // by device
  std::map<Event*, std::unique_ptr<Event>> events;
  std::map<Graph*, std::unique_ptr<Graph>> graphs;
  std::map<GraphExec*, std::shared_ptr<GraphExec>> execs;  // shared: a queued replay holds its exec
  std::map<Module*, std::unique_ptr<Module>> modules;
  std::set<const Function*> functions;
  HappensBefore happens_before;
  VectorClock host_clock;
  int next_stream = 1;

  struct Waits {
    std::atomic<std::int64_t> stream{0}, event{0}, context{0}, copy{0}, pageable{0}, free{0};
  } waits;
  struct Counts {
    std::atomic<std::int64_t> launches{0}, host_functions{0}, graphs{0}, accesses{0};
  } counts;

  /// The context current on this thread, or nullptr.
  static Context*& current();

  Stream* resolve_stream(void* handle, Context* ctx);  // nullptr/0x1: ctx's legacy stream
  std::shared_ptr<Stream> make_stream(Context* ctx, bool legacy, bool blocking);

  /// Enqueues `op` on `s` (under `mutex`): in capture it becomes a graph node; otherwise the
  /// legacy-stream ordering, the happens-before check (checking mode) and the queue. Returns a
  /// CUDA status (with the thread's error message set).
  int enqueue(Stream& s, Op op, std::vector<CudaAccess> accesses, bool kernel);
  /// The capture that the calling thread runs (thread-local mode), or nullptr.
  std::shared_ptr<Capture> thread_capture();
  /// Invalidates the calling thread's capture for an unsafe call; returns its error status.
  static int refuse_in_capture(const std::shared_ptr<Capture>& capture, const std::string& call);
  /// Runs a graph exec's nodes (on the launching stream's worker).
  static void replay(const GraphExec& exec);
  /// Clocks and checks of one graph launch on `s` (under `mutex`); "" or the conflict.
  std::string check_graph(Stream& s, GraphExec& exec);
  /// Waits for every stream of `ctx`.
  void drain(Context* ctx);

 private:
  Emulator();
};

/// Sets the calling thread's detailed message for `status` (what cuGetErrorString returns for
/// it next) and returns `status`.
int report(int status, const std::string& message);
/// The sticky error of `ctx` (reported), or 0.
int sticky(Context* ctx);

}  // namespace trainrt::detail::emu
