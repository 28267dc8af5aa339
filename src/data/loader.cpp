// data/loader.cpp — DataLoader: mini-batches prepared ahead of the step on oneTBB tasks.
//
// Contents:
//   EpochOrder, Slot   one epoch's permutation (computed once, by whoever needs it first); one
//                      ring buffer with its batch, its state and the error of its last fill
//   LoaderImpl         schedule (a slot gets a stream position and a task), fill (the task's
//                      body), next (hand out, waiting only for a batch not ready), seek, stop
//   DataLoader, Batch  the public face
//
// How a batch moves. The stream is numbered by position p (epoch p / B, batch p % B, for B
// batches per epoch); the slots of the ring take consecutive positions in turn, and a slot
// handed back by the caller takes the position `depth` after its last one. A slot's state goes
// Queued -> Running -> Ready. Whoever wins the Queued -> Running exchange fills it: normally
// the TBB task enqueued for it, but when next() finds its batch still Queued (no worker got to
// it yet: a busy or one-core machine) the caller fills it itself rather than sleep. A task
// that loses the exchange just returns; it may also win a later assignment of the same slot,
// which is harmless because a slot's content depends only on its position, never on who
// fills it or when. That is also why batches are the same for any depth or thread timing.
//
// Tasks are deferred into one tbb::task_group and enqueued into the loader's own task_arena:
// enqueue (rather than spawn) gets a worker even when TBB has no spare thread, and the group
// gives destruction and seek() something to wait on. An exception never leaves a task: fill()
// stores it in the slot, and next() rethrows it when that batch is asked for.
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <set>

#include "core/error.h"
#include "data/shuffle.h"
#include "trainrt/data.hpp"

namespace trainrt::detail {

namespace {

using Clock = std::chrono::steady_clock;

enum SlotState : int { kQueued, kRunning, kReady };

/// The order of one epoch. Tasks of different slots may need it at once; the first computes
/// it. Computing it in a task, not in next(), keeps the O(N) shuffle off the caller's path.
struct EpochOrder {
  explicit EpochOrder(std::int64_t e) : epoch(e) {}
  const std::int64_t epoch;
  std::mutex mutex;
  std::atomic<bool> ready{false};
  std::vector<std::int64_t> order;
};

/// One buffer of the ring. `state` is the only member shared with a running task without
/// the happens-before of the exchange; everything else is written by the caller's thread
/// before the release store of kQueued, or by the filler before the release store of kReady.
struct Slot {
  std::atomic<int> state{kReady};
  std::shared_ptr<EpochOrder> order;
  data::Batch batch;
  std::vector<unsigned char*> bases;  // field f's buffer in batch.feeds
  std::vector<void*> destinations;    // scratch for Dataset::read: sample k of each field
  std::exception_ptr error;
};

}  // namespace

class LoaderImpl {
 public:
  LoaderImpl(std::shared_ptr<const data::Dataset> dataset, std::int64_t batch_size, const data::LoaderOptions& o);
  ~LoaderImpl() { stop(); }
  LoaderImpl(const LoaderImpl&) = delete;
  LoaderImpl& operator=(const LoaderImpl&) = delete;

  const data::Batch& next();
  void seek(std::int64_t epoch, std::int64_t batch);
  std::int64_t batches_per_epoch() const noexcept { return batches_per_epoch_; }
  std::int64_t batch_size() const noexcept { return rows_; }
  const std::vector<data::Field>& fields() const noexcept { return fields_; }
  data::LoaderStats stats() const noexcept { return stats_; }

 private:
  /// Assigns every slot from stream position `position` on.
  void start(std::int64_t position);
  /// Gives `slot` stream position `position` and enqueues a task to fill it.
  void schedule(Slot& slot, std::int64_t position);
  /// The body of every task; never throws.
  void fill(Slot& slot) noexcept;
  /// Makes tasks not started return at once and running ones stop at their next sample, then
  /// waits for all of them.
  void stop() noexcept;
  const std::vector<std::int64_t>& order_of(EpochOrder& e) const;

  std::shared_ptr<const data::Dataset> dataset_;
  std::vector<data::Field> fields_;
  std::vector<std::size_t> sample_bytes_;  // by field
  std::int64_t size_;
  std::int64_t batch_size_;  // the global batch (of every rank together)
  std::int64_t rows_;        // this rank's rows of it
  std::int64_t row0_;        // where they start in the global batch
  data::LoaderOptions options_;
  std::int64_t batches_per_epoch_;
  std::vector<Slot> slots_;                   // never resized: tasks hold pointers into it
  std::shared_ptr<EpochOrder> latest_order_;  // of the last epoch scheduled
  std::size_t head_ = 0;                      // slot of the batch next() returns
  std::int64_t next_position_ = 0;            // its stream position
  bool holding_ = false;                      // the caller holds the slot before head_
  data::LoaderStats stats_;
  std::atomic<bool> stopping_{false};
  tbb::task_arena arena_;
  // The tasks' context is isolated, not bound to the context of whoever built the loader: a
  // bound one would share its cancellation (a loader made inside a TBB task would see its
  // tasks dropped when that task's group is cancelled). With oneTBB 2021.8, cancelling a
  // bound group also left the tasks of later loaders in the same process unserved (every
  // batch then waited); the isolated context showed neither effect.
  tbb::task_group_context context_{tbb::task_group_context::isolated};
  tbb::task_group group_{context_};  // after arena_ and context_: destroyed (empty) first
};

LoaderImpl::LoaderImpl(std::shared_ptr<const data::Dataset> dataset, std::int64_t batch_size,
                       const data::LoaderOptions& o)
    : dataset_(std::move(dataset)),
      batch_size_(batch_size),
      options_(o),
      // One slot is reserved for the caller, so that seek() and the destructor can always
      // join the arena to wait; `threads` slots are for workers.
      arena_(std::max(o.threads, 1) + 1, 1) {
  if (!dataset_) fail(ErrorKind::InvalidArgument, "DataLoader: the dataset is null");
  if (batch_size_ <= 0) fail(ErrorKind::InvalidArgument, cat("DataLoader: batch_size must be > 0, got ", batch_size_));
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world)
    fail(ErrorKind::InvalidArgument,
         cat("DataLoader: rank ", o.rank, " of world ", o.world, " is not a rank (0 <= rank < world)"));
  if (batch_size_ % o.world != 0)
    fail(ErrorKind::InvalidArgument,
         cat("DataLoader: the global batch_size ", batch_size_, " does not divide over ", o.world,
             " ranks; choose a multiple of the world size (e.g. ", (batch_size_ / o.world + 1) * o.world, ")"));
  rows_ = batch_size_ / o.world;
  row0_ = o.rank * rows_;
  if (o.prefetch < 1) fail(ErrorKind::InvalidArgument, cat("DataLoader: prefetch must be >= 1, got ", o.prefetch));
  if (o.threads < 1) fail(ErrorKind::InvalidArgument, cat("DataLoader: threads must be >= 1, got ", o.threads));
  size_ = dataset_->size();
  if (size_ <= 0) fail(ErrorKind::InvalidArgument, cat("DataLoader: the dataset is empty (size ", size_, ")"));
  const bool drop = o.last_batch == data::LastBatch::Drop;
  if (drop && size_ < batch_size_)
    fail(ErrorKind::InvalidArgument, cat("DataLoader: with LastBatch::Drop, ", size_, " samples and batch_size ",
                                         batch_size_, " leave no batch in an epoch (use LastBatch::Pad)"));
  batches_per_epoch_ = drop ? size_ / batch_size_ : (size_ + batch_size_ - 1) / batch_size_;

  fields_ = dataset_->fields();
  if (fields_.empty()) fail(ErrorKind::InvalidArgument, "DataLoader: the dataset has no fields");
  std::set<std::string> names;
  for (const data::Field& f : fields_) {
    if (f.name.empty()) fail(ErrorKind::InvalidArgument, "DataLoader: the dataset has a field with an empty name");
    if (!names.insert(f.name).second)
      fail(ErrorKind::InvalidArgument, cat("DataLoader: the dataset has two fields named '", f.name, "'"));
    sample_bytes_.push_back(static_cast<std::size_t>(f.shape.numel()) * size_of(f.dtype));
  }

  // Every buffer is allocated here, once: a batch only ever overwrites its slot's tensors.
  slots_ = std::vector<Slot>(static_cast<std::size_t>(o.prefetch));
  for (Slot& slot : slots_) {
    for (const data::Field& f : fields_) {
      std::vector<std::int64_t> dims{rows_};
      dims.insert(dims.end(), f.shape.begin(), f.shape.end());
      Tensor t = Tensor::empty(Shape(std::move(dims)), f.dtype);
      slot.bases.push_back(static_cast<unsigned char*>(t.raw_data()));
      slot.batch.feeds.add(f.name, std::move(t));
    }
    slot.destinations.resize(fields_.size());
  }
  try {
    start(0);
  } catch (...) {
    stop();  // a task may already be queued: it must not outlive the members it uses
    throw;
  }
}

const std::vector<std::int64_t>& LoaderImpl::order_of(EpochOrder& e) const {
  if (!e.ready.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(e.mutex);
    if (!e.ready.load(std::memory_order_relaxed)) {
      epoch_order(e.order, size_, options_.shuffle, options_.seed, e.epoch);
      e.ready.store(true, std::memory_order_release);
    }
  }
  return e.order;
}

void LoaderImpl::start(std::int64_t position) {
  head_ = 0;
  next_position_ = position;
  holding_ = false;
  for (std::size_t i = 0; i < slots_.size(); ++i) schedule(slots_[i], position + static_cast<std::int64_t>(i));
}

void LoaderImpl::schedule(Slot& slot, std::int64_t position) {
  const std::int64_t epoch = position / batches_per_epoch_;
  const std::int64_t index = position % batches_per_epoch_;
  // Without shuffling every epoch has the same order: one EpochOrder serves them all.
  const std::int64_t order_key = options_.shuffle ? epoch : 0;
  if (!latest_order_ || latest_order_->epoch != order_key) latest_order_ = std::make_shared<EpochOrder>(order_key);
  slot.order = latest_order_;
  slot.batch.epoch = epoch;
  slot.batch.index = index;
  const std::int64_t distinct = std::min(batch_size_, size_ - index * batch_size_);  // of the global batch
  slot.batch.samples = std::clamp(distinct - row0_, std::int64_t{0}, rows_);
  slot.error = nullptr;
  slot.state.store(kQueued, std::memory_order_release);
  Slot* s = &slot;
  arena_.enqueue(group_.defer([this, s] {
    if (stopping_.load(std::memory_order_relaxed)) return;
    int expected = kQueued;
    if (s->state.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) fill(*s);
  }));
}

void LoaderImpl::fill(Slot& slot) noexcept {
  try {
    const std::vector<std::int64_t>& order = order_of(*slot.order);
    const std::int64_t first = slot.batch.index * batch_size_ + row0_;
    for (std::int64_t k = 0; k < rows_; ++k) {
      if (stopping_.load(std::memory_order_relaxed)) break;  // the batch will never be handed out
      // Past the end of the epoch (LastBatch::Pad only) positions wrap to the start of this
      // epoch's order: the padding repeats its first samples.
      const std::int64_t sample = order[static_cast<std::size_t>((first + k) % size_)];
      for (std::size_t f = 0; f < fields_.size(); ++f)
        slot.destinations[f] = slot.bases[f] + static_cast<std::size_t>(k) * sample_bytes_[f];
      try {
        dataset_->read(sample, slot.destinations);
      } catch (const Error& e) {
        throw Error(e.kind(), cat(e.what(), " [DataLoader: sample ", sample, ", row ", k, " of batch ",
                                  slot.batch.index, " of epoch ", slot.batch.epoch, "]"));
      }
    }
  } catch (...) {
    slot.error = std::current_exception();
  }
  slot.state.store(kReady, std::memory_order_release);
  slot.state.notify_all();
}

const data::Batch& LoaderImpl::next() {
  const std::size_t depth = slots_.size();
  // Calling next() hands back the previous batch: its slot takes the position `depth - 1`
  // ahead of the one returned now, so that depth - 1 batches are always on their way.
  if (holding_) schedule(slots_[(head_ + depth - 1) % depth], next_position_ + static_cast<std::int64_t>(depth) - 1);
  Slot& slot = slots_[head_];
  if (slot.state.load(std::memory_order_acquire) != kReady) {
    const Clock::time_point t0 = Clock::now();
    ++stats_.waits;
    int state = kQueued;
    if (slot.state.compare_exchange_strong(state, kRunning, std::memory_order_acq_rel)) {
      fill(slot);  // no task has started it: doing it here is faster than waiting for one
    } else {
      while (state != kReady) {
        slot.state.wait(state, std::memory_order_acquire);
        state = slot.state.load(std::memory_order_acquire);
      }
    }
    stats_.wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  ++stats_.batches;
  head_ = (head_ + 1) % depth;
  ++next_position_;
  holding_ = true;
  if (slot.error) std::rethrow_exception(std::exchange(slot.error, nullptr));
  return slot.batch;
}

void LoaderImpl::seek(std::int64_t epoch, std::int64_t batch) {
  if (epoch < 0 || batch < 0 || batch >= batches_per_epoch_)
    fail(ErrorKind::InvalidArgument,
         cat("DataLoader::seek: epoch ", epoch, " batch ", batch,
             " is out of range: epoch must be >= 0 and batch in [0, ", batches_per_epoch_, ")"));
  stop();
  start(epoch * batches_per_epoch_ + batch);
}

void LoaderImpl::stop() noexcept {
  // Tasks see the flag: those not started return at once, a running fill() stops at its next
  // sample. (No task_group::cancel(): the flag does the same without relying on cancellation.)
  stopping_.store(true, std::memory_order_relaxed);
  try {
    // Waiting inside the arena lets this thread run what is left.
    arena_.execute([this] { group_.wait(); });
  } catch (...) {
    // Tasks never throw (fill() keeps their exceptions), so wait() has nothing to report.
  }
  stopping_.store(false, std::memory_order_relaxed);
}

}  // namespace trainrt::detail

namespace trainrt::data {

const Tensor& Batch::tensor(std::string_view name) const {
  std::string known;
  for (const Feed& f : feeds.items()) {
    if (f.name == name) return f.tensor;
    known += detail::cat(known.empty() ? "" : ", ", f.name);
  }
  detail::fail(ErrorKind::NotFound, detail::cat("Batch::tensor: no field '", name, "'; the fields are: ", known));
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, std::int64_t batch_size, const LoaderOptions& options)
    : impl_(std::make_unique<detail::LoaderImpl>(std::move(dataset), batch_size, options)) {}
DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

const Batch& DataLoader::next() { return impl_->next(); }
void DataLoader::seek(std::int64_t epoch, std::int64_t batch) { impl_->seek(epoch, batch); }
std::int64_t DataLoader::batches_per_epoch() const noexcept { return impl_->batches_per_epoch(); }
std::int64_t DataLoader::batch_size() const noexcept { return impl_->batch_size(); }
const std::vector<Field>& DataLoader::fields() const noexcept { return impl_->fields(); }
LoaderStats DataLoader::stats() const noexcept { return impl_->stats(); }

}  // namespace trainrt::data
