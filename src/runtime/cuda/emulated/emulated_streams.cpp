// runtime/cuda/emulated/emulated_streams.cpp — the emulated device's streams (queues run by
// worker threads), the legacy default stream's ordering, capture into graphs, graph replay, and
// the happens-before clocks of all of them.
#include <algorithm>

#include "core/error.h"
#include "runtime/cuda/emulated/emulator_state.h"

namespace trainrt::detail::emu {

std::uint64_t Stream::push(Op op) {
  std::uint64_t position = 0;
  {
    std::lock_guard lock(mutex);
    queue.push_back(std::move(op));
    position = ++enqueued;
  }
  changed.notify_all();
  return position;
}

void Stream::wait(std::uint64_t position) {
  std::unique_lock lock(mutex);
  changed.wait(lock, [&] { return completed >= position; });
}

bool Stream::done(std::uint64_t position) {
  std::lock_guard lock(mutex);
  return completed >= position;
}

void Stream::stop() {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  changed.notify_all();
  if (worker.joinable()) worker.join();
}

void Stream::run() {
  Emulator& emu = Emulator::get();
  for (;;) {
    Op op;
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return !queue.empty() || stopping; });
      if (queue.empty()) return;
      op = std::move(queue.front());
      queue.pop_front();
    }
    if (op.wait_for) op.wait_for->wait(op.wait_position);
    // After a fault the context is broken, as a GPU's is: later work is skipped (and every
    // call reports the error), but the queue still drains so that nobody waits forever.
    if (op.work && !context->failed()) {
      try {
        op.work();
      } catch (const Fault& f) {
        context->set_error(f.code, f.message);
      } catch (const Error& e) {
        context->set_error(kCudaErrorLaunchFailed, cat(op.name, " on ", name, ": ", e.what()));
      } catch (const std::exception& e) {
        context->set_error(kCudaErrorLaunchFailed, cat(op.name, " on ", name, " failed: ", e.what()));
      }
      if (emu.config.check && !context->failed()) {
        if (std::string damaged = emu.memory.verify(cat("after ", op.name, " on ", name)); !damaged.empty())
          context->set_error(kCudaErrorIllegalAddress, damaged);
      }
    }
    if (op.on_done) op.on_done();
    {
      std::lock_guard lock(mutex);
      ++completed;
    }
    changed.notify_all();
  }
}

std::shared_ptr<Stream> Emulator::make_stream(Context* ctx, bool is_legacy, bool is_blocking) {
  auto s = std::make_shared<Stream>();
  s->context = ctx;
  s->legacy = is_legacy;
  s->blocking = is_blocking;
  s->name =
      is_legacy ? cat("the legacy default stream of emulated device ", ctx->device) : cat("stream ", next_stream++);
  if (config.check) s->component = happens_before.add_component();
  s->worker = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

Stream* Emulator::resolve_stream(void* handle, Context* ctx) {
  // CU_STREAM_LEGACY is (CUstream)0x1; CU_STREAM_PER_THREAD (0x2) is not emulated.
  if (handle == nullptr || reinterpret_cast<std::uintptr_t>(handle) == 1) {
    if (ctx == nullptr) return nullptr;
    return legacy.at(static_cast<std::size_t>(ctx->device)).get();
  }
  auto it = streams.find(static_cast<Stream*>(handle));
  return it == streams.end() ? nullptr : it->second.get();
}

std::shared_ptr<Capture> Emulator::thread_capture() {
  const auto me = std::this_thread::get_id();
  for (auto& [raw, s] : streams)
    if (s->capture && s->capture->thread == me) return s->capture;
  return nullptr;
}

int Emulator::refuse_in_capture(const std::shared_ptr<Capture>& capture, const std::string& call) {
  if (!capture->invalidated) capture->invalidated_by = call;  // the first unsafe call is the one to name
  capture->invalidated = true;
  return report(kCudaErrorCaptureUnsupported,
                cat(call, " is not allowed while ", capture->origin->name,
                    " is being captured (CU_STREAM_CAPTURE_MODE_THREAD_LOCAL): the capture is invalidated"));
}

int Emulator::enqueue(Stream& s, Op op, std::vector<CudaAccess> accesses, bool kernel) {
  if (const int st = sticky(s.context)) return st;
  if (s.capture) {
    Capture& c = *s.capture;
    if (c.invalidated)
      return report(kCudaErrorCaptureInvalidated,
                    cat(op.name, " on ", s.name, ": the capture was invalidated by ", c.invalidated_by));
    GraphNode n;
    n.op = std::move(op);
    n.accesses = std::move(accesses);
    n.deps = s.capture_deps;
    n.lane = c.lanes.at(&s);
    n.kernel = kernel;
    c.graph.nodes.push_back(std::move(n));
    s.capture_deps = {static_cast<int>(c.graph.nodes.size()) - 1};
    return kCudaSuccess;
  }
  // The legacy default stream waits for the blocking streams, and they wait for it.
  auto order_after = [&](Stream& other) {
    std::uint64_t position = 0;
    {
      std::lock_guard lock(other.mutex);
      position = other.enqueued;
    }
    if (position > 0) {
      Op w;
      w.name = cat("the implicit wait for ", other.name);
      w.wait_for = other.shared_from_this();
      w.wait_position = position;
      s.push(std::move(w));
    }
    join(s.clock, other.clock);
  };
  if (s.legacy) {
    for (auto& [raw, other] : streams)
      if (other->blocking && other->context == s.context) order_after(*other);
  } else if (s.blocking) {
    order_after(*legacy.at(static_cast<std::size_t>(s.context->device)));
  }
  if (config.check) {
    join(s.clock, host_clock);
    if (s.clock.size() <= static_cast<std::size_t>(s.component))
      s.clock.resize(static_cast<std::size_t>(s.component) + 1);
    ++s.clock[static_cast<std::size_t>(s.component)];
    counts.accesses += static_cast<std::int64_t>(accesses.size());
    const auto source = std::make_shared<const AccessSource>(AccessSource{op.name, s.name});
    if (std::string conflict = happens_before.access(s.clock, s.component, source, accesses); !conflict.empty()) {
      s.context->set_error(kCudaErrorUnknown, conflict);
      return report(kCudaErrorUnknown, conflict);
    }
  }
  s.push(std::move(op));
  return kCudaSuccess;
}

void Emulator::replay(const GraphExec& exec) {
  const Emulator& emu = get();
  for (const int i : exec.order) {
    const GraphNode& n = exec.graph.nodes[static_cast<std::size_t>(i)];
    if (!n.op.work) continue;
    try {
      n.op.work();
    } catch (const Fault&) {
      throw;
    } catch (const std::exception& e) {
      throw Fault{kCudaErrorLaunchFailed, cat(n.op.name, " (a node of a replayed graph): ", e.what())};
    }
    if (emu.config.check)
      if (std::string damaged = get().memory.verify(cat("after ", n.op.name, " (a node of a replayed graph)"));
          !damaged.empty())
        throw Fault{kCudaErrorIllegalAddress, damaged};
  }
}

std::string Emulator::check_graph(Stream& s, GraphExec& exec) {
  join(s.clock, host_clock);
  join(s.clock, exec.last);  // a launch is ordered after the exec's previous launch
  if (s.clock.size() <= static_cast<std::size_t>(s.component))
    s.clock.resize(static_cast<std::size_t>(s.component) + 1);
  ++s.clock[static_cast<std::size_t>(s.component)];
  std::vector<VectorClock> clocks(exec.graph.nodes.size());
  for (const int i : exec.order) {
    const GraphNode& n = exec.graph.nodes[static_cast<std::size_t>(i)];
    VectorClock v = s.clock;
    for (const int d : n.deps) join(v, clocks[static_cast<std::size_t>(d)]);
    const auto c = static_cast<std::size_t>(exec.components[static_cast<std::size_t>(n.lane)]);
    if (v.size() <= c) v.resize(c + 1);
    // A lane's nodes form a chain (each depends on the one before it on its stream), so one
    // tick after what the dependencies and the stream know is its own.
    ++v[c];
    counts.accesses += static_cast<std::int64_t>(n.accesses.size());
    const auto source = std::make_shared<const AccessSource>(AccessSource{
        n.op.name,
        cat(exec.graph.lanes[static_cast<std::size_t>(n.lane)], " (replayed in a graph launched on ", s.name, ")")});
    if (std::string conflict = happens_before.access(v, static_cast<int>(c), source, n.accesses); !conflict.empty())
      return conflict;
    clocks[static_cast<std::size_t>(i)] = std::move(v);
  }
  for (const VectorClock& v : clocks) join(s.clock, v);
  exec.last = s.clock;
  return {};
}

void Emulator::drain(Context* ctx) {
  std::vector<std::pair<std::shared_ptr<Stream>, std::uint64_t>> tails;
  {
    std::lock_guard lock(mutex);
    auto add = [&](const std::shared_ptr<Stream>& s) {
      std::lock_guard slock(s->mutex);
      tails.emplace_back(s, s->enqueued);
    };
    for (auto& [raw, s] : streams)
      if (s->context == ctx) add(s);
    add(legacy.at(static_cast<std::size_t>(ctx->device)));
    for (auto& [raw, s] : streams)
      if (s->context == ctx) join(host_clock, s->clock);
    join(host_clock, legacy.at(static_cast<std::size_t>(ctx->device))->clock);
  }
  for (auto& [s, position] : tails) s->wait(position);
}

}  // namespace trainrt::detail::emu
