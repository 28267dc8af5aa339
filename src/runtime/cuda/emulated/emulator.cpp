// runtime/cuda/emulated/emulator.cpp — the emulated driver's entry points: devices, contexts,
// memory, copies, modules and launches, events, capture and graphs, errors. Each has the C
// signature of the CudaDriver member it fills and returns the status the real driver would.
#include "runtime/cuda/emulated/emulator.h"

#include <tbb/info.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "runtime/cuda/emulated/emulator_state.h"

namespace trainrt::detail {

namespace emu {

namespace {

thread_local int t_status = 0;           // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
thread_local std::string t_message;      // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
thread_local std::string t_text;         // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)
thread_local PendingAccesses t_pending;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

struct ErrorText {
  int code;
  const char* name;
  const char* text;
};
constexpr ErrorText kErrors[] = {
    {kCudaSuccess, "CUDA_SUCCESS", "no error"},
    {kCudaErrorInvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {kCudaErrorOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {kCudaErrorInvalidDevice, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {kCudaErrorInvalidImage, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {kCudaErrorInvalidContext, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {kCudaErrorInvalidHandle, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {kCudaErrorIllegalState, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
    {kCudaErrorNotFound, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {kCudaErrorNotReady, "CUDA_ERROR_NOT_READY", "device not ready"},
    {kCudaErrorIllegalAddress, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {kCudaErrorLaunchOutOfResources, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {kCudaErrorLaunchFailed, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {kCudaErrorNotSupported, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {kCudaErrorCaptureUnsupported, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
     "operation not permitted when stream is capturing"},
    {kCudaErrorCaptureInvalidated, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
     "operation failed due to a previous error during capture"},
    {kCudaErrorCaptureUnmatched, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED", "the capture was not initiated in this stream"},
    {kCudaErrorCaptureUnjoined, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
     "capture sequence contains a fork that was not joined to the primary stream"},
    {kCudaErrorCaptureIsolation, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
     "dependency created on uncaptured work in another stream"},
    {kCudaErrorCaptureImplicit, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
     "operation would make the legacy stream depend on a capturing blocking stream"},
    {kCudaErrorUnknown, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const ErrorText* find_error(int code) {
  for (const ErrorText& e : kErrors)
    if (e.code == code) return &e;
  return nullptr;
}

Context* current_or_null() { return Emulator::current(); }

}  // namespace

int report(int status, const std::string& message) {
  t_status = status;
  t_message = message;
  return status;
}

int sticky(Context* ctx) {
  std::lock_guard lock(ctx->error_mutex);
  if (ctx->error_code == 0) return kCudaSuccess;
  return report(ctx->error_code, ctx->error_message);
}

Context*& Emulator::current() {
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): per thread, as the driver's
  thread_local Context* ctx = nullptr;
  return ctx;
}

Emulator::Emulator()
    : config(emulator_config()),
      memory(std::vector<std::uint64_t>(static_cast<std::size_t>(config.devices), config.memory), config.check) {
  for (int i = 0; i < config.devices; ++i) {
    contexts.push_back(std::make_unique<Context>());
    contexts.back()->device = i;
  }
  for (int i = 0; i < config.devices; ++i)
    legacy.push_back(make_stream(contexts[static_cast<std::size_t>(i)].get(), true, false));
}

Emulator& Emulator::get() {
  // Never destroyed: worker threads may still be parked at exit, and the driver of a real
  // device outlives every static of the process too.
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-non-const-global-variables): the one device, shared by every thread
  static auto* e = new Emulator();
  return *e;
}

namespace {

// ---- devices and contexts ----

int device_get(int* device, int ordinal) {
  if (device == nullptr) return kCudaErrorInvalidValue;
  if (ordinal < 0 || ordinal >= Emulator::get().config.devices)
    return report(kCudaErrorInvalidDevice, cat("the emulator has ", Emulator::get().config.devices, " device(s)"));
  *device = ordinal;
  return kCudaSuccess;
}

int primary_ctx_retain(void** ctx, int device) {
  Emulator& e = Emulator::get();
  if (ctx == nullptr || device < 0 || device >= e.config.devices) return kCudaErrorInvalidDevice;
  std::lock_guard lock(e.mutex);
  Context* c = e.contexts[static_cast<std::size_t>(device)].get();
  ++c->refs;
  *ctx = c;
  return kCudaSuccess;
}

int primary_ctx_release(int device) {
  Emulator& e = Emulator::get();
  if (device < 0 || device >= e.config.devices) return kCudaErrorInvalidDevice;
  Context* c = e.contexts[static_cast<std::size_t>(device)].get();
  {
    std::lock_guard lock(e.mutex);
    if (c->refs == 0) return kCudaErrorInvalidContext;
    if (--c->refs > 0) return kCudaSuccess;
  }
  // The last release resets the context, as the driver's does: its sticky error goes.
  e.drain(c);
  std::lock_guard lock(c->error_mutex);
  c->error_code = 0;
  c->error_message.clear();
  return kCudaSuccess;
}

int ctx_get_current(void** ctx) {
  if (ctx == nullptr) return kCudaErrorInvalidValue;
  *ctx = Emulator::current();
  return kCudaSuccess;
}

int ctx_set_current(void* ctx) {
  Emulator& e = Emulator::get();
  if (ctx != nullptr) {
    const auto it = std::find_if(e.contexts.begin(), e.contexts.end(),
                                 [&](const std::unique_ptr<Context>& c) { return c.get() == ctx; });
    if (it == e.contexts.end()) return report(kCudaErrorInvalidContext, "not a context of the emulated device");
  }
  Emulator::current() = static_cast<Context*>(ctx);
  return kCudaSuccess;
}

Context* need_context(int& status) {
  Context* c = current_or_null();
  status = c ? sticky(c) : report(kCudaErrorInvalidContext, "no context is current on this thread");
  return status == kCudaSuccess ? c : nullptr;
}

int device_get_attribute(int* value, int attribute, int device) {
  Emulator& e = Emulator::get();
  if (value == nullptr || device < 0 || device >= e.config.devices) return kCudaErrorInvalidValue;
  switch (attribute) {
    case kCudaAttributeCcMajor: *value = e.config.arch / 10; return kCudaSuccess;
    case kCudaAttributeCcMinor: *value = e.config.arch % 10; return kCudaSuccess;
    case 1: *value = 1024; return kCudaSuccess;                                    // MAX_THREADS_PER_BLOCK
    case 8: *value = static_cast<int>(kEmulatedSharedBytes); return kCudaSuccess;  // MAX_SHARED_MEMORY_PER_BLOCK
    case 10: *value = 32; return kCudaSuccess;                                     // WARP_SIZE
    case 16: *value = tbb::info::default_concurrency(); return kCudaSuccess;       // MULTIPROCESSOR_COUNT
    default: return report(kCudaErrorInvalidValue, cat("device attribute ", attribute, " is not emulated"));
  }
}

int device_get_name(char* name, int length, int device) {
  Emulator& e = Emulator::get();
  if (name == nullptr || length <= 0 || device < 0 || device >= e.config.devices) return kCudaErrorInvalidValue;
  const std::string text = cat("libtrainrt emulated CUDA device ", device, " (sm_", e.config.arch, ", on the CPU)");
  std::snprintf(name, static_cast<std::size_t>(length), "%s", text.c_str());
  return kCudaSuccess;
}

int device_total_mem(std::size_t* bytes, int device) {
  Emulator& e = Emulator::get();
  if (bytes == nullptr || device < 0 || device >= e.config.devices) return kCudaErrorInvalidValue;
  *bytes = e.memory.capacity(device);
  return kCudaSuccess;
}

// ---- memory ----

int mem_get_info(std::size_t* free_bytes, std::size_t* total) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  Emulator& e = Emulator::get();
  if (total) *total = e.memory.capacity(c->device);
  if (free_bytes) *free_bytes = e.memory.capacity(c->device) - e.memory.used(c->device);
  return kCudaSuccess;
}

int mem_alloc(CuDevicePtr* ptr, std::size_t bytes) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  if (ptr == nullptr) return kCudaErrorInvalidValue;
  Emulator& e = Emulator::get();
  st = e.memory.allocate(c->device, bytes, *ptr);
  if (st == kCudaErrorOutOfMemory)
    return report(
        st, cat("cuMemAlloc of ", bytes, " bytes: emulated device ", c->device, " holds ", e.memory.used(c->device),
                " of its ", e.memory.capacity(c->device), " bytes (TRAINRT_CUDA_EMULATED_MEMORY)"));
  return st;
}

int mem_free(CuDevicePtr ptr) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  if (ptr == 0) return kCudaSuccess;
  Emulator& e = Emulator::get();
  // Like cudaFree, the free waits for the context's work: nothing in flight reads poison.
  e.waits.free.fetch_add(1, std::memory_order_relaxed);
  e.drain(c);
  std::string error;
  std::size_t span = 0;
  st = e.memory.free(ptr, error, span);
  if (st == kCudaErrorInvalidValue) return report(st, error);
  if (e.config.check) {  // a later allocation may reuse the addresses
    std::lock_guard lock(e.mutex);
    e.happens_before.forget(ptr - EmulatedMemory::kRedZone, ptr + span + EmulatedMemory::kRedZone);
  }
  if (st != kCudaSuccess) {
    c->set_error(st, error);
    return report(st, error);
  }
  return kCudaSuccess;
}

int mem_host_alloc(void** ptr, std::size_t bytes, unsigned) {
  if (ptr == nullptr) return kCudaErrorInvalidValue;
  return Emulator::get().memory.host_allocate(bytes, *ptr);
}

int mem_free_host(void* ptr) {
  std::string error;
  const int st = Emulator::get().memory.host_free(ptr, error);
  return st == kCudaSuccess ? st : report(st, error);
}

int pointer_get_attribute(void* data, int attribute, CuDevicePtr ptr) {
  const int owner = Emulator::get().memory.owner(ptr);
  if (data == nullptr) return kCudaErrorInvalidValue;
  if (owner == -2) return report(kCudaErrorInvalidValue, cat(hex(ptr), " is not memory of the emulated device"));
  switch (attribute) {
    case 2:  // CU_POINTER_ATTRIBUTE_MEMORY_TYPE: CU_MEMORYTYPE_HOST 1, _DEVICE 2
      *static_cast<unsigned*>(data) = owner >= 0 ? 2u : 1u;
      return kCudaSuccess;
    case 9:  // CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
      *static_cast<int*>(data) = owner >= 0 ? owner : 0;
      return kCudaSuccess;
    default: return report(kCudaErrorInvalidValue, cat("pointer attribute ", attribute, " is not emulated"));
  }
}

// The stream `handle` in the current context, or a status.
Stream* stream_for(void* handle, int& status, const char* call) {
  Context* c = need_context(status);
  if (!c) return nullptr;
  Emulator& e = Emulator::get();
  Stream* s = e.resolve_stream(handle, c);
  if (s == nullptr) {
    status = report(kCudaErrorInvalidHandle, cat(call, ": ",
                                                 reinterpret_cast<std::uintptr_t>(handle) == 2
                                                     ? std::string("CU_STREAM_PER_THREAD is not emulated")
                                                     : cat("the stream ", handle, " does not exist (destroyed?)")));
    return nullptr;
  }
  if (s->context != c) {
    status =
        report(kCudaErrorInvalidHandle, cat(call, ": ", s->name, " belongs to emulated device ", s->context->device,
                                            " but device ", c->device, "'s context is current"));
    return nullptr;
  }
  return s;
}

// Takes the thread's declared accesses for its next operation on `handle`, if it made some.
bool take_declared(void* handle, std::vector<CudaAccess>& accesses, std::string& what) {
  if (!t_pending.set || t_pending.stream != handle) return false;
  accesses = std::move(t_pending.accesses);
  what = std::move(t_pending.what);
  t_pending = PendingAccesses{};
  return true;
}

// Every copy and memset. `synchronous`: the caller waits for it anyway (cuMemcpyHtoD ...).
int copy_async(CuDevicePtr dst_dev, void* dst_host, CuDevicePtr src_dev, const void* src_host, std::size_t bytes,
               unsigned char value, void* handle, const char* call, bool synchronous = false) {
  Emulator& e = Emulator::get();
  std::unique_lock lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(handle, st, call);
  if (!s) return st;
  const std::string name = cat(call, " of ", bytes, " bytes");
  std::vector<CudaAccess> accesses;
  if (dst_dev) {
    if (std::string bad = e.memory.check_range(dst_dev, bytes, true, cat(name, ": the destination")); !bad.empty())
      return report(kCudaErrorInvalidValue, bad);
    accesses.push_back({dst_dev, bytes, true});
  }
  if (src_dev) {
    if (std::string bad = e.memory.check_range(src_dev, bytes, true, cat(name, ": the source")); !bad.empty())
      return report(kCudaErrorInvalidValue, bad);
    accesses.push_back({src_dev, bytes, false});
  }
  std::vector<CudaAccess> declared;
  std::string what;
  if (take_declared(handle, declared, what)) accesses.insert(accesses.end(), declared.begin(), declared.end());
  Op op;
  op.name = name;
  bool wait_for_it = false;
  const bool fill = !src_dev && !src_host;
  if (src_host && !e.memory.is_pinned(reinterpret_cast<std::uint64_t>(src_host), bytes)) {
    // From pageable memory the driver stages the bytes before it returns: the caller may
    // reuse its buffer at once.
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src_host),
                                                               static_cast<const unsigned char*>(src_host) + bytes);
    op.work = [dst_dev, staged] { std::memcpy(host_address(dst_dev), staged->data(), staged->size()); };
  } else if (fill) {
    op.work = [dst_dev, value, bytes] { std::memset(host_address(dst_dev), value, bytes); };
  } else {
    void* to = dst_dev ? host_address(dst_dev) : dst_host;
    const void* from = src_dev ? host_address(src_dev) : src_host;
    op.work = [to, from, bytes] { std::memmove(to, from, bytes); };
    // Into pageable memory the driver cannot let the copy run behind the caller's back.
    wait_for_it = !synchronous && dst_host && !e.memory.is_pinned(reinterpret_cast<std::uint64_t>(dst_host), bytes);
  }
  if (wait_for_it && s->capture)
    return report(kCudaErrorCaptureUnsupported, cat(name, " into pageable memory cannot be captured"));
  st = e.enqueue(*s, std::move(op), std::move(accesses), false);
  if (st != kCudaSuccess || !wait_for_it) return st;
  std::uint64_t position = 0;
  {
    std::lock_guard slock(s->mutex);
    position = s->enqueued;
  }
  join(e.host_clock, s->clock);
  lock.unlock();
  e.waits.pageable.fetch_add(1, std::memory_order_relaxed);
  s->wait(position);
  return sticky(s->context);
}

int memcpy_htod_async(CuDevicePtr dst, const void* src, std::size_t bytes, void* stream) {
  return copy_async(dst, nullptr, 0, src, bytes, 0, stream, "cuMemcpyHtoDAsync");
}
int memcpy_dtoh_async(void* dst, CuDevicePtr src, std::size_t bytes, void* stream) {
  return copy_async(0, dst, src, nullptr, bytes, 0, stream, "cuMemcpyDtoHAsync");
}
int memcpy_dtod_async(CuDevicePtr dst, CuDevicePtr src, std::size_t bytes, void* stream) {
  return copy_async(dst, nullptr, src, nullptr, bytes, 0, stream, "cuMemcpyDtoDAsync");
}
int memset_d8_async(CuDevicePtr dst, unsigned char value, std::size_t bytes, void* stream) {
  return copy_async(dst, nullptr, 0, nullptr, bytes, value, stream, "cuMemsetD8Async");
}

// A synchronous copy: on the legacy stream, then the host waits for it.
int synchronous(const char* call, const std::function<int()>& enqueue) {
  Emulator& e = Emulator::get();
  {
    std::lock_guard lock(e.mutex);
    if (auto capture = e.thread_capture()) return Emulator::refuse_in_capture(capture, call);
  }
  const int st = enqueue();
  if (st != kCudaSuccess) return st;
  Context* c = current_or_null();
  e.waits.copy.fetch_add(1, std::memory_order_relaxed);
  Stream& legacy = *e.legacy.at(static_cast<std::size_t>(c->device));
  std::uint64_t position = 0;
  {
    std::lock_guard lock(e.mutex);
    std::lock_guard slock(legacy.mutex);
    position = legacy.enqueued;
    join(e.host_clock, legacy.clock);
  }
  legacy.wait(position);
  return sticky(c);
}

int memcpy_htod(CuDevicePtr dst, const void* src, std::size_t bytes) {
  return synchronous("cuMemcpyHtoD",
                     [&] { return copy_async(dst, nullptr, 0, src, bytes, 0, nullptr, "cuMemcpyHtoD", true); });
}
int memcpy_dtoh(void* dst, CuDevicePtr src, std::size_t bytes) {
  return synchronous("cuMemcpyDtoH",
                     [&] { return copy_async(0, dst, src, nullptr, bytes, 0, nullptr, "cuMemcpyDtoH", true); });
}
int memset_d8(CuDevicePtr dst, unsigned char value, std::size_t bytes) {
  return synchronous("cuMemsetD8",
                     [&] { return copy_async(dst, nullptr, 0, nullptr, bytes, value, nullptr, "cuMemsetD8", true); });
}

// ---- modules and launches ----

int module_load_data(void** module, const void* image) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  if (module == nullptr) return kCudaErrorInvalidValue;
  auto m = std::make_unique<Module>();
  m->context = c;
  try {
    m->image = EmulatedModule::load(image);
  } catch (const Error& err) {
    return report(kCudaErrorInvalidImage, err.what());
  }
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  *module = m.get();
  e.modules.emplace(m.get(), std::move(m));
  return kCudaSuccess;
}

int module_unload(void* module) {
  Emulator& e = Emulator::get();
  std::unique_lock lock(e.mutex);
  auto it = e.modules.find(static_cast<Module*>(module));
  if (it == e.modules.end()) return report(kCudaErrorInvalidHandle, "cuModuleUnload of a module that is not loaded");
  for (auto& [name, f] : it->second->functions) e.functions.erase(f.get());
  // A launch still queued keeps using the code: the module's shared object stays loaded until
  // the queue drains (the GPU's driver, too, keeps what is in flight).
  Context* c = it->second->context;
  std::unique_ptr<Module> held = std::move(it->second);
  e.modules.erase(it);
  lock.unlock();
  e.drain(c);
  return kCudaSuccess;
}

int module_get_function(void** function, void* module, const char* name) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  auto it = e.modules.find(static_cast<Module*>(module));
  if (it == e.modules.end() || function == nullptr || name == nullptr) return kCudaErrorInvalidHandle;
  Module& m = *it->second;
  auto f = m.functions.find(name);
  if (f == m.functions.end()) {
    const trk_emu_kernel* k = m.image->function(name);
    if (k == nullptr) return report(kCudaErrorNotFound, cat("the module has no extern \"C\" kernel '", name, "'"));
    auto fn = std::make_unique<Function>(Function{&m, k, name});
    e.functions.insert(fn.get());
    f = m.functions.emplace(name, std::move(fn)).first;
  }
  *function = f->second.get();
  return kCudaSuccess;
}

int launch_kernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                  unsigned shared, void* handle, void** params, void** extra) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  const auto* f = static_cast<const Function*>(function);
  if (!e.functions.contains(f))
    return report(kCudaErrorInvalidHandle, "cuLaunchKernel of a function whose module is gone");
  const std::string name = cat("kernel ", f->name);
  int st = 0;
  Stream* s = stream_for(handle, st, "cuLaunchKernel");
  if (!s) return st;
  if (extra != nullptr)
    return report(kCudaErrorInvalidValue, cat(name, ": the `extra` parameter form is not emulated"));
  const std::uint64_t threads = std::uint64_t{bx} * by * bz;
  if (bx == 0 || by == 0 || bz == 0 || gx == 0 || gy == 0 || gz == 0 || bx > 1024 || by > 1024 || bz > 64 ||
      threads > 1024 || gy > 65535 || gz > 65535 || gx > 0x7fffffffu)
    return report(kCudaErrorInvalidValue, cat(name, ": grid (", gx, ",", gy, ",", gz, ") x block (", bx, ",", by, ",",
                                              bz, ") is outside the device's limits (1024 threads per block)"));
  if (shared > kEmulatedSharedBytes)
    return report(kCudaErrorInvalidValue, cat(name, ": ", shared, " bytes of dynamic shared memory, over the ",
                                              kEmulatedSharedBytes, " a block may have"));
  const trk_emu_kernel& k = *f->kernel;
  if (k.params > 0 && params == nullptr) return report(kCudaErrorInvalidValue, cat(name, ": no parameters given"));
  GridLaunch l;
  l.kernel = &k;
  l.grid = {gx, gy, gz};
  l.block = {bx, by, bz};
  l.dynamic_shared = shared;
  l.check = e.config.check;
  l.seed = e.config.seed;
  std::vector<CudaAccess> fallback;
  for (int i = 0; i < k.params; ++i) {
    const std::size_t size = k.param_sizes[i];
    const std::size_t offset = (l.args.size() + 15) / 16 * 16;
    l.args.resize(offset + size);
    std::memcpy(l.args.data() + offset, params[i], size);
    l.offsets.push_back(offset);
    if (k.param_kinds[i] == TRK_EMU_PARAM_VALUE) continue;
    std::uint64_t p = 0;
    std::memcpy(&p, params[i], sizeof(p));
    if (p == 0) continue;
    if (std::string bad = e.memory.check_range(p, 0, true, cat("launching ", name, ": parameter ", i)); !bad.empty())
      return report(kCudaErrorIllegalAddress, bad);
    fallback.push_back({p, 1, k.param_kinds[i] == TRK_EMU_PARAM_POINTER});
  }
  // What the launch reads and writes: as declared, else (conservatively little) the first
  // byte behind each pointer parameter: read through const pointers, written otherwise.
  std::vector<CudaAccess> accesses;
  std::string what;
  if (take_declared(handle, accesses, what)) {
    for (const CudaAccess& a : accesses)
      if (std::string bad = e.memory.check_range(a.address, a.bytes, true, cat(name, ": a declared access"));
          !bad.empty())
        return report(kCudaErrorIllegalAddress, bad);
  } else {
    accesses = std::move(fallback);
  }
  Op op;
  op.name = what.empty() ? name : cat(name, " (", what, ")");
  op.work = [launch = std::move(l)] {
    Emulator::get().counts.launches.fetch_add(1, std::memory_order_relaxed);
    run_grid(launch);
  };
  return e.enqueue(*s, std::move(op), std::move(accesses), true);
}

int launch_host_func(void* handle, void (*fn)(void*), void* data) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(handle, st, "cuLaunchHostFunc");
  if (!s) return st;
  if (fn == nullptr) return kCudaErrorInvalidValue;
  std::vector<CudaAccess> accesses;
  std::string what;
  take_declared(handle, accesses, what);
  const std::string name = what.empty() ? std::string("a host function") : what;
  for (const CudaAccess& a : accesses)
    if (std::string bad = e.memory.check_range(a.address, a.bytes, true, cat(name, ": a declared access"));
        !bad.empty())
      return report(kCudaErrorIllegalAddress, bad);
  Op op;
  op.name = name;
  op.work = [fn, data] {
    Emulator::get().counts.host_functions.fetch_add(1, std::memory_order_relaxed);
    fn(data);
  };
  return e.enqueue(*s, std::move(op), std::move(accesses), false);
}

int declare_accesses(void* handle, const CudaAccess* accesses, std::size_t count, const char* what) {
  if (count > 0 && accesses == nullptr) return kCudaErrorInvalidValue;
  t_pending.stream = handle;
  t_pending.set = true;
  t_pending.accesses.assign(accesses, accesses + count);
  t_pending.what = what ? what : "";
  return kCudaSuccess;
}

// ---- streams ----

int stream_create(void** stream, unsigned flags) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  if (stream == nullptr || (flags & ~kCudaStreamNonBlocking) != 0) return kCudaErrorInvalidValue;
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  auto s = e.make_stream(c, false, (flags & kCudaStreamNonBlocking) == 0);
  *stream = s.get();
  e.streams.emplace(s.get(), std::move(s));
  return kCudaSuccess;
}

int stream_destroy(void* stream) {
  Emulator& e = Emulator::get();
  std::shared_ptr<Stream> s;
  {
    std::lock_guard lock(e.mutex);
    auto it = e.streams.find(static_cast<Stream*>(stream));
    if (it == e.streams.end())
      return report(kCudaErrorInvalidHandle, "cuStreamDestroy of a stream that does not exist");
    if (it->second->capture) return report(kCudaErrorCaptureUnsupported, "cuStreamDestroy of a stream being captured");
    s = std::move(it->second);
    e.streams.erase(it);
  }
  s->stop();  // what is queued still runs, as with the driver
  return kCudaSuccess;
}

int stream_query(void* stream) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(stream, st, "cuStreamQuery");
  if (!s) return st;
  if (s->capture) return Emulator::refuse_in_capture(s->capture, cat("cuStreamQuery of ", s->name));
  std::lock_guard slock(s->mutex);
  if (s->completed < s->enqueued) return kCudaErrorNotReady;
  join(e.host_clock, s->clock);
  return sticky(s->context);
}

int stream_synchronize(void* stream) {
  Emulator& e = Emulator::get();
  std::shared_ptr<Stream> s;
  std::uint64_t position = 0;
  {
    std::lock_guard lock(e.mutex);
    int st = 0;
    Stream* raw = stream_for(stream, st, "cuStreamSynchronize");
    if (!raw) return st;
    if (raw->capture) return Emulator::refuse_in_capture(raw->capture, cat("cuStreamSynchronize of ", raw->name));
    if (auto capture = e.thread_capture()) return Emulator::refuse_in_capture(capture, "cuStreamSynchronize");
    s = raw->shared_from_this();
    std::lock_guard slock(s->mutex);
    position = s->enqueued;
    join(e.host_clock, s->clock);
  }
  e.waits.stream.fetch_add(1, std::memory_order_relaxed);
  s->wait(position);
  if (const int st = sticky(s->context)) return st;
  if (std::string damaged = e.memory.verify(cat("at cuStreamSynchronize of ", s->name)); !damaged.empty()) {
    s->context->set_error(kCudaErrorIllegalAddress, damaged);
    return report(kCudaErrorIllegalAddress, damaged);
  }
  return kCudaSuccess;
}

int ctx_synchronize() {
  Emulator& e = Emulator::get();
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  {
    std::lock_guard lock(e.mutex);
    if (auto capture = e.thread_capture()) return Emulator::refuse_in_capture(capture, "cuCtxSynchronize");
  }
  e.waits.context.fetch_add(1, std::memory_order_relaxed);
  e.drain(c);
  st = sticky(c);
  if (st != kCudaSuccess) return st;
  if (std::string damaged = e.memory.verify("at cuCtxSynchronize"); !damaged.empty()) {
    c->set_error(kCudaErrorIllegalAddress, damaged);
    return report(kCudaErrorIllegalAddress, damaged);
  }
  return kCudaSuccess;
}

int stream_is_capturing(void* stream, int* status) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(stream, st, "cuStreamIsCapturing");
  if (!s) return st;
  if (status == nullptr) return kCudaErrorInvalidValue;
  *status = !s->capture               ? kCudaCaptureStatusNone
            : s->capture->invalidated ? kCudaCaptureStatusInvalidated
                                      : kCudaCaptureStatusActive;
  return kCudaSuccess;
}

// ---- events ----

int event_create(void** event, unsigned flags) {
  int st = 0;
  Context* c = need_context(st);
  if (!c) return st;
  if (event == nullptr || (flags & ~3u) != 0) return kCudaErrorInvalidValue;
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  auto ev = std::make_unique<Event>();
  ev->context = c;
  *event = ev.get();
  e.events.emplace(ev.get(), std::move(ev));
  return kCudaSuccess;
}

Event* find_event(void* event) {
  Emulator& e = Emulator::get();
  auto it = e.events.find(static_cast<Event*>(event));
  return it == e.events.end() ? nullptr : it->second.get();
}

int event_destroy(void* event) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  if (e.events.erase(static_cast<Event*>(event)) == 0)
    return report(kCudaErrorInvalidHandle, "cuEventDestroy of an event that does not exist");
  return kCudaSuccess;
}

int event_record(void* event, void* stream) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  Event* ev = find_event(event);
  if (!ev) return report(kCudaErrorInvalidHandle, "cuEventRecord of an event that does not exist");
  int st = 0;
  Stream* s = stream_for(stream, st, "cuEventRecord");
  if (!s) return st;
  if (s->capture) {
    if (s->capture->invalidated) return kCudaErrorCaptureInvalidated;
    ev->capture = s->capture;
    ev->capture_deps = s->capture_deps;
    ev->stream.reset();
    return kCudaSuccess;
  }
  ev->capture.reset();
  ev->stream = s->shared_from_this();
  std::lock_guard slock(s->mutex);
  ev->position = s->enqueued;
  ev->clock = s->clock;
  return kCudaSuccess;
}

int stream_wait_event(void* stream, void* event, unsigned flags) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  Event* ev = find_event(event);
  if (!ev) return report(kCudaErrorInvalidHandle, "cuStreamWaitEvent on an event that does not exist");
  int st = 0;
  Stream* s = stream_for(stream, st, "cuStreamWaitEvent");
  if (!s) return st;
  if (flags != 0) return kCudaErrorInvalidValue;
  if (ev->capture) {
    Capture& c = *ev->capture;
    if (s->capture && s->capture != ev->capture)
      return report(kCudaErrorCaptureIsolation, cat(s->name, " is being captured into another graph"));
    if (!s->capture) {  // the stream joins the capture (a fork)
      s->capture = ev->capture;
      c.lanes.emplace(s, static_cast<int>(c.graph.lanes.size()));
      c.graph.lanes.push_back(s->name);
      c.members.push_back(s);
      s->capture_deps = ev->capture_deps;
    } else {
      for (int d : ev->capture_deps)
        if (std::find(s->capture_deps.begin(), s->capture_deps.end(), d) == s->capture_deps.end())
          s->capture_deps.push_back(d);
    }
    return kCudaSuccess;
  }
  if (s->capture)
    return report(kCudaErrorCaptureIsolation,
                  cat(s->name, " is being captured and waits on an event recorded outside the capture"));
  if (!ev->stream) return kCudaSuccess;  // never recorded: nothing to wait for
  if (const int sticky_status = sticky(s->context)) return sticky_status;
  Op w;
  w.name = cat("a wait for an event of ", ev->stream->name);
  w.wait_for = ev->stream;
  w.wait_position = ev->position;
  join(s->clock, ev->clock);
  s->push(std::move(w));
  return kCudaSuccess;
}

int event_query(void* event) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  Event* ev = find_event(event);
  if (!ev) return report(kCudaErrorInvalidHandle, "cuEventQuery of an event that does not exist");
  if (ev->capture) return report(kCudaErrorCaptureUnsupported, "cuEventQuery of an event recorded in a capture");
  if (!ev->stream) return kCudaSuccess;
  if (!ev->stream->done(ev->position)) return kCudaErrorNotReady;
  join(e.host_clock, ev->clock);
  return sticky(ev->context);
}

int event_synchronize(void* event) {
  Emulator& e = Emulator::get();
  std::shared_ptr<Stream> s;
  std::uint64_t position = 0;
  Context* ctx = nullptr;
  {
    std::lock_guard lock(e.mutex);
    Event* ev = find_event(event);
    if (!ev) return report(kCudaErrorInvalidHandle, "cuEventSynchronize of an event that does not exist");
    if (ev->capture)
      return report(kCudaErrorCaptureUnsupported, "cuEventSynchronize of an event recorded in a capture");
    if (auto capture = e.thread_capture()) return Emulator::refuse_in_capture(capture, "cuEventSynchronize");
    s = ev->stream;
    position = ev->position;
    ctx = ev->context;
    join(e.host_clock, ev->clock);
  }
  e.waits.event.fetch_add(1, std::memory_order_relaxed);
  if (s) s->wait(position);
  return sticky(ctx);
}

// ---- capture and graphs ----

int stream_begin_capture(void* stream, int mode) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(stream, st, "cuStreamBeginCapture");
  if (!s) return st;
  if (s->legacy) return report(kCudaErrorCaptureUnsupported, "the legacy default stream cannot be captured");
  if (s->capture) return report(kCudaErrorIllegalState, cat(s->name, " is being captured already"));
  if (mode != kCudaCaptureThreadLocal)
    return report(kCudaErrorNotSupported, "the emulator captures in CU_STREAM_CAPTURE_MODE_THREAD_LOCAL only");
  auto c = std::make_shared<Capture>();
  c->origin = s;
  c->thread = std::this_thread::get_id();
  c->lanes.emplace(s, 0);
  c->graph.lanes.push_back(s->name);
  c->members.push_back(s);
  s->capture = std::move(c);
  s->capture_deps.clear();
  return kCudaSuccess;
}

int stream_end_capture(void* stream, void** graph) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  int st = 0;
  Stream* s = stream_for(stream, st, "cuStreamEndCapture");
  if (!s) return st;
  if (graph == nullptr) return kCudaErrorInvalidValue;
  *graph = nullptr;
  if (!s->capture) return report(kCudaErrorIllegalState, cat(s->name, " is not being captured"));
  std::shared_ptr<Capture> c = s->capture;
  if (c->origin != s)
    return report(kCudaErrorCaptureUnmatched, cat("the capture was begun on ", c->origin->name, ", not ", s->name));
  auto leave = [&] {
    for (Stream* m : c->members) {
      m->capture.reset();
      m->capture_deps.clear();
    }
  };
  if (c->invalidated) {
    leave();
    return report(kCudaErrorCaptureInvalidated,
                  cat("the capture of ", s->name, " was invalidated by ", c->invalidated_by));
  }
  // Every node must lead to the origin's last nodes: a fork never joined back is refused.
  std::vector<bool> reached(c->graph.nodes.size(), false);
  std::vector<int> todo = s->capture_deps;
  while (!todo.empty()) {
    const int n = todo.back();
    todo.pop_back();
    if (reached[static_cast<std::size_t>(n)]) continue;
    reached[static_cast<std::size_t>(n)] = true;
    for (int d : c->graph.nodes[static_cast<std::size_t>(n)].deps) todo.push_back(d);
  }
  for (std::size_t n = 0; n < reached.size(); ++n)
    if (!reached[n]) {
      const GraphNode& node = c->graph.nodes[n];
      leave();
      return report(kCudaErrorCaptureUnjoined,
                    cat(node.op.name, " captured on ", c->graph.lanes[static_cast<std::size_t>(node.lane)],
                        " is not joined back into ", s->name, " (record an event there and wait for it on ", s->name,
                        " before ending the capture)"));
    }
  auto g = std::make_unique<Graph>(std::move(c->graph));
  *graph = g.get();
  e.graphs.emplace(g.get(), std::move(g));
  leave();
  return kCudaSuccess;
}

int graph_destroy(void* graph) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  return e.graphs.erase(static_cast<Graph*>(graph)) ? kCudaSuccess
                                                    : report(kCudaErrorInvalidHandle, "cuGraphDestroy of no graph");
}

int graph_instantiate(void** exec, void* graph, unsigned long long flags) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  auto it = e.graphs.find(static_cast<Graph*>(graph));
  if (it == e.graphs.end() || exec == nullptr) return report(kCudaErrorInvalidHandle, "cuGraphInstantiate of no graph");
  if (flags != 0) return report(kCudaErrorNotSupported, "cuGraphInstantiate flags are not emulated");
  Context* c = current_or_null();
  if (c == nullptr) return kCudaErrorInvalidContext;
  auto x = std::make_shared<GraphExec>();
  x->context = c;
  x->graph = *it->second;
  // The replay order: a node runs when its dependencies have; among the nodes ready, the one
  // captured last goes first, so that an order the capture implied but no dependency states
  // is not what the replay follows.
  const std::size_t n = x->graph.nodes.size();
  std::vector<int> waiting(n, 0);
  std::vector<std::vector<int>> users(n);
  for (std::size_t i = 0; i < n; ++i)
    for (int d : x->graph.nodes[i].deps) {
      ++waiting[i];
      users[static_cast<std::size_t>(d)].push_back(static_cast<int>(i));
    }
  std::vector<int> ready;
  for (std::size_t i = 0; i < n; ++i)
    if (waiting[i] == 0) ready.push_back(static_cast<int>(i));
  while (!ready.empty()) {
    std::sort(ready.begin(), ready.end());
    const int next = ready.back();
    ready.pop_back();
    x->order.push_back(next);
    for (int u : users[static_cast<std::size_t>(next)])
      if (--waiting[static_cast<std::size_t>(u)] == 0) ready.push_back(u);
  }
  if (e.config.check)
    for (std::size_t l = 0; l < x->graph.lanes.size(); ++l) x->components.push_back(e.happens_before.add_component());
  *exec = x.get();
  e.execs.emplace(x.get(), std::move(x));
  return kCudaSuccess;
}

int graph_exec_destroy(void* exec) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  return e.execs.erase(static_cast<GraphExec*>(exec))
             ? kCudaSuccess
             : report(kCudaErrorInvalidHandle, "cuGraphExecDestroy of no executable graph");
}

int graph_launch(void* exec, void* stream) {
  Emulator& e = Emulator::get();
  std::lock_guard lock(e.mutex);
  auto it = e.execs.find(static_cast<GraphExec*>(exec));
  if (it == e.execs.end()) return report(kCudaErrorInvalidHandle, "cuGraphLaunch of no executable graph");
  int st = 0;
  Stream* s = stream_for(stream, st, "cuGraphLaunch");
  if (!s) return st;
  if (s->capture) return report(kCudaErrorNotSupported, "capturing a graph launch (a child graph) is not emulated");
  st = sticky(s->context);
  if (st != kCudaSuccess) return st;
  std::shared_ptr<GraphExec> x = it->second;
  if (e.config.check) {
    if (std::string conflict = e.check_graph(*s, *x); !conflict.empty()) {
      s->context->set_error(kCudaErrorUnknown, conflict);
      return report(kCudaErrorUnknown, conflict);
    }
  }
  Op op;
  op.name = cat("a graph of ", x->graph.nodes.size(), " nodes");
  op.work = [x] {
    Emulator::get().counts.graphs.fetch_add(1, std::memory_order_relaxed);
    Emulator::replay(*x);
  };
  // The clocks were taken by check_graph: the launch itself goes straight to the queue (the
  // legacy-stream ordering still applies).
  if (e.config.check) {
    s->push(std::move(op));
    return kCudaSuccess;
  }
  return e.enqueue(*s, std::move(op), {}, false);
}

// ---- errors ----

int get_error_name(int status, const char** name) {
  if (name == nullptr) return kCudaErrorInvalidValue;
  const ErrorText* e = find_error(status);
  *name = e ? e->name : nullptr;
  return e ? kCudaSuccess : kCudaErrorInvalidValue;
}

int get_error_string(int status, const char** text) {
  if (text == nullptr) return kCudaErrorInvalidValue;
  const ErrorText* e = find_error(status);
  if (e == nullptr) {
    *text = nullptr;
    return kCudaErrorInvalidValue;
  }
  if (status == t_status && !t_message.empty()) {
    t_text = cat(e->text, "; emulated device: ", t_message);
    *text = t_text.c_str();
  } else {
    *text = e->text;
  }
  return kCudaSuccess;
}

CudaDriver make_table() {
  Emulator& e = Emulator::get();
  CudaDriver d;
  d.device_get = &device_get;
  d.primary_ctx_retain = &primary_ctx_retain;
  d.primary_ctx_release = &primary_ctx_release;
  d.ctx_get_current = &ctx_get_current;
  d.ctx_set_current = &ctx_set_current;
  d.stream_create = &stream_create;
  d.stream_destroy = &stream_destroy;
  d.stream_query = &stream_query;
  d.stream_synchronize = &stream_synchronize;
  d.event_create = &event_create;
  d.event_record = &event_record;
  d.event_query = &event_query;
  d.event_destroy = &event_destroy;
  d.mem_alloc = &mem_alloc;
  d.mem_free = &mem_free;
  d.memcpy_htod = &memcpy_htod;
  d.memcpy_dtoh = &memcpy_dtoh;
  d.memset_d8 = &memset_d8;
  d.pointer_get_attribute = &pointer_get_attribute;
  d.device_get_attribute = &device_get_attribute;
  d.module_load_data = &module_load_data;
  d.module_unload = &module_unload;
  d.module_get_function = &module_get_function;
  d.launch_kernel = &launch_kernel;
  d.stream_wait_event = &stream_wait_event;
  d.event_synchronize = &event_synchronize;
  d.mem_host_alloc = &mem_host_alloc;
  d.mem_free_host = &mem_free_host;
  d.memcpy_htod_async = &memcpy_htod_async;
  d.memcpy_dtoh_async = &memcpy_dtoh_async;
  d.stream_begin_capture = &stream_begin_capture;
  d.stream_end_capture = &stream_end_capture;
  d.graph_instantiate = &graph_instantiate;
  d.graph_launch = &graph_launch;
  d.graph_exec_destroy = &graph_exec_destroy;
  d.graph_destroy = &graph_destroy;
  d.get_error_name = &get_error_name;
  d.get_error_string = &get_error_string;
  d.device_get_name = &device_get_name;
  d.device_total_mem = &device_total_mem;
  d.mem_get_info = &mem_get_info;
  d.ctx_synchronize = &ctx_synchronize;
  d.launch_host_func = &launch_host_func;
  d.stream_is_capturing = &stream_is_capturing;
  d.memcpy_dtod_async = &memcpy_dtod_async;
  d.memset_d8_async = &memset_d8_async;
  d.declare_accesses = e.config.check ? &declare_accesses : nullptr;  // costs nothing when off
  d.device_count = e.config.devices;
  d.emulated = true;
  return d;
}

}  // namespace

}  // namespace emu

const CudaDriver& emulated_driver() {
  static const CudaDriver table = emu::make_table();
  return table;
}

EmulatorWaits emulator_waits() {
  const auto& w = emu::Emulator::get().waits;
  EmulatorWaits out;
  out.stream_synchronize = w.stream.load();
  out.event_synchronize = w.event.load();
  out.context_synchronize = w.context.load();
  out.synchronous_copy = w.copy.load();
  out.pageable_copy = w.pageable.load();
  out.free = w.free.load();
  return out;
}

void emulator_reset_waits() {
  auto& w = emu::Emulator::get().waits;
  for (auto* c : {&w.stream, &w.event, &w.context, &w.copy, &w.pageable, &w.free}) c->store(0);
}

EmulatorCounts emulator_counts() {
  const auto& c = emu::Emulator::get().counts;
  return {c.launches.load(), c.host_functions.load(), c.graphs.load(), c.accesses.load()};
}

}  // namespace trainrt::detail
