// runtime/cuda/streams.cpp — streams and events of a StreamPlan; CUDA graph capture of a step.
#include "runtime/cuda/streams.h"

#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {

StreamSet::StreamSet(const CudaDevice& device, const StreamPlan& plan) : device_(device), plan_(plan) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  // Created one by one, so that release() frees exactly what exists when one fails.
  try {
    for (int i = 0; i < plan_.streams(); ++i) {
      void* s = nullptr;
      check(d.stream_create(&s, kCudaStreamNonBlocking), "cuStreamCreate");
      streams_.push_back(s);
    }
    auto event = [&](std::vector<void*>& into) {
      void* e = nullptr;
      check(d.event_create(&e, kCudaEventDisableTiming), "cuEventCreate");
      into.push_back(e);
    };
    for (std::int32_t i = 0; i < plan_.events; ++i) event(events_);
    for (int i = 0; i < plan_.streams(); ++i) {
      event(fork_);
      event(join_);
    }
  } catch (...) {
    release();
    throw;
  }
}

StreamSet::~StreamSet() { release(); }

void StreamSet::release() noexcept {
  release_in_context(device_, [&](const CudaDriver& d) {
    for (void* s : streams_) (void)d.stream_synchronize(s);
    for (const auto* list : {&events_, &fork_, &join_})
      for (void* e : *list) (void)d.event_destroy(e);
    for (void* s : streams_) (void)d.stream_destroy(s);
  });
  streams_.clear();
  events_.clear();
  fork_.clear();
  join_.clear();
}

void StreamSet::check(int status, const char* what) const {
  if (status != kCudaSuccess)
    fail(ErrorKind::Runtime, cat(what, " on ", device_.name(), " failed: ", device_.driver().describe(status)));
}

void StreamSet::fork() const {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  check(d.event_record(fork_[0], streams_[0]), "cuEventRecord (fork)");
  for (std::size_t i = 1; i < streams_.size(); ++i)
    check(d.stream_wait_event(streams_[i], fork_[0], 0), "cuStreamWaitEvent (fork)");
}

void StreamSet::issue(const std::function<void(std::size_t, void*)>& launch) const {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  for (std::size_t p = 0; p < plan_.stream.size(); ++p) {
    const std::int32_t s = plan_.stream[p];
    if (s < 0) continue;
    void* stream = streams_[static_cast<std::size_t>(s)];
    for (std::int32_t producer : plan_.waits[p]) {
      const std::int32_t e = plan_.event_of[static_cast<std::size_t>(producer)];
      check_internal(e >= 0, "a waited-on position records an event");
      check(d.stream_wait_event(stream, events_[static_cast<std::size_t>(e)], 0), "cuStreamWaitEvent");
    }
    launch(p, stream);
    if (const std::int32_t e = plan_.event_of[p]; e >= 0)
      check(d.event_record(events_[static_cast<std::size_t>(e)], stream), "cuEventRecord");
  }
}

void StreamSet::join() const {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  for (std::size_t i = 1; i < streams_.size(); ++i) {
    check(d.event_record(join_[i], streams_[i]), "cuEventRecord (join)");
    check(d.stream_wait_event(streams_[0], join_[i], 0), "cuStreamWaitEvent (join)");
  }
}

CudaGraphStep::CudaGraphStep(const StreamSet& streams, const std::function<void()>& issue) : streams_(streams) {
  const CudaDevice& device = streams_.device();
  const CudaDriver& d = device.driver();
  const ScopedContext scope(d, device.context());
  void* origin = streams_.stream(0);
  d.check(d.stream_begin_capture(origin, kCudaCaptureThreadLocal), cat("cuStreamBeginCapture on ", device.name()));
  void* graph = nullptr;
  try {
    streams_.fork();  // the other streams join the capture through the fork event
    issue();
    streams_.join();
  } catch (...) {
    if (d.stream_end_capture(origin, &graph) == kCudaSuccess && graph != nullptr) (void)d.graph_destroy(graph);
    throw;
  }
  d.check(d.stream_end_capture(origin, &graph), cat("cuStreamEndCapture on ", device.name()));
  const int status = d.graph_instantiate(&exec_, graph, 0);
  (void)d.graph_destroy(graph);  // the executable graph keeps what it needs
  d.check(status, cat("cuGraphInstantiate on ", device.name()));
}

CudaGraphStep::~CudaGraphStep() {
  if (exec_ != nullptr)
    release_in_context(streams_.device(), [&](const CudaDriver& d) { (void)d.graph_exec_destroy(exec_); });
}

void CudaGraphStep::replay() const {
  const CudaDevice& device = streams_.device();
  const CudaDriver& d = device.driver();
  const ScopedContext scope(d, device.context());
  d.check(d.graph_launch(exec_, streams_.stream(0)), cat("cuGraphLaunch on ", device.name()));
}

}  // namespace trainrt::detail
