// runtime/cuda/streams.h — a step's schedule issued on CUDA streams as exec/stream_plan.h
// placed it, and the whole step captured into a CUDA graph (DESIGN decision 6).
//
// A step is a closed unit: it starts with fork() (every stream waits for what stream 0 had
// queued before the step) and ends with join() (stream 0 waits for every stream), so the next
// step, the host's read-back and a CUDA graph's capture all order against stream 0 alone.
// Nothing here waits on the host.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "exec/stream_plan.h"
#include "runtime/cuda/device_memory.h"

namespace trainrt::detail {

class StreamSet {
 public:
  /// Creates plan.streams() non-blocking streams and the plan's events (timing off), plus one
  /// fork and one join event per stream, in `device`'s context. `device` and `plan` are
  /// borrowed and must outlive this. Throws Error(Runtime) when the driver refuses.
  StreamSet(const CudaDevice& device, const StreamPlan& plan);
  /// Waits for the streams, then destroys streams and events (never throws).
  ~StreamSet();
  StreamSet(const StreamSet&) = delete;
  StreamSet& operator=(const StreamSet&) = delete;

  const CudaDevice& device() const noexcept { return device_; }
  /// Stream i (0 is the main stream), a CUstream.
  void* stream(int i) const { return streams_.at(static_cast<std::size_t>(i)); }
  int size() const noexcept { return static_cast<int>(streams_.size()); }

  /// Every other stream waits for what stream 0 has queued so far.
  void fork() const;
  /// Issues one pass of the plan: for each work position p in schedule order, p's stream
  /// waits for the events of plan.waits[p], then launch(p, stream) enqueues p's work on it,
  /// then p's event (plan.event_of[p]) is recorded there. Returns without waiting.
  void issue(const std::function<void(std::size_t position, void* stream)>& launch) const;
  /// Stream 0 waits for everything queued on the other streams so far.
  void join() const;

 private:
  void check(int status, const char* what) const;
  void release() noexcept;  // waits for the streams, destroys streams and events
  const CudaDevice& device_;
  const StreamPlan& plan_;
  std::vector<void*> streams_;
  std::vector<void*> events_;       // the plan's, by event index
  std::vector<void*> fork_, join_;  // by stream
};

/// One step captured into a CUDA graph: fork, `issue`, join on a StreamSet, recorded (nothing
/// runs while capturing) and instantiated once; replay() then launches the whole step with one
/// call on stream 0. The StreamSet must outlive it.
class CudaGraphStep {
 public:
  /// Throws Error(Runtime) when capturing or instantiating fails (a launch that cannot be
  /// captured, such as a synchronous copy, ends the capture with the driver's error); the
  /// streams are left usable either way. Whatever `issue` throws ends the capture and is
  /// rethrown.
  CudaGraphStep(const StreamSet& streams, const std::function<void()>& issue);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;
  /// Enqueues the captured step on stream 0 and returns.
  void replay() const;

 private:
  const StreamSet& streams_;
  void* exec_ = nullptr;
};

}  // namespace trainrt::detail
