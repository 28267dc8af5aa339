/* codegen/emulation/trk_emu_abi.h — the binary interface between a host build of a CUDA source
 * (the kernel emulator, DESIGN decision 12) and the emulated device that runs it.
 *
 * This file is compiled twice: into libtrainrt (runtime/cuda/emulated) and, as text, at the top
 * of every host build (codegen/emulation/trk_emu_prelude.h includes it). Plain C, fixed-size
 * fields: the two sides may come from different compilers. Bump TRK_EMU_ABI_VERSION with any
 * change; a module of another version is refused when it is loaded.
 *
 * A host build exports:
 *   int trk_emu_abi_version;                        TRK_EMU_ABI_VERSION
 *   void trk_emu_bind(const trk_emu_runtime*);     called once, before any kernel runs
 *   const trk_emu_kernel trk_emu_kernel_<name>;    one per extern "C" __global__ kernel
 * The emulated driver calls kernel->run(thread, args) once per thread of the grid, each time
 * with that thread's trk_emu_thread, from a plain loop (uses_sync == 0) or from a fiber of
 * its own (uses_sync == 1: barriers and warp primitives switch fibers). */
#ifndef TRK_EMU_ABI_H
#define TRK_EMU_ABI_H
/* C on purpose (typedefs, macros): clang-tidy's C++ advice does not apply.
 * NOLINTBEGIN(modernize-use-using, modernize-macro-to-enum, cppcoreguidelines-macro-usage) */

#define TRK_EMU_ABI_VERSION 1
/* An emulated module image, as cuModuleLoadData receives it: these 8 bytes, then the host
 * build's shared object. */
#define TRK_EMU_IMAGE_MAGIC "TRKEMU01"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trk_emu_dim3 {
  unsigned x, y, z;
} trk_emu_dim3;

/* One emulated thread, as the kernel sees it (threadIdx and friends read these). */
typedef struct trk_emu_thread {
  trk_emu_dim3 thread_idx;
  trk_emu_dim3 block_idx;
  trk_emu_dim3 block_dim;
  trk_emu_dim3 grid_dim;
  unsigned linear; /* x + y * block_dim.x + z * block_dim.x * block_dim.y */
  unsigned pad;
  void* block; /* the runtime's block state; opaque to the module */
} trk_emu_thread;

/* Warp primitives: trk_emu_runtime::warp_op kinds. */
enum {
  TRK_EMU_SHFL = 0,
  TRK_EMU_SHFL_UP = 1,
  TRK_EMU_SHFL_DOWN = 2,
  TRK_EMU_SHFL_XOR = 3,
  TRK_EMU_BALLOT = 4,
  TRK_EMU_ANY = 5,
  TRK_EMU_ALL = 6,
  TRK_EMU_SYNCWARP = 7
};
/* Block barriers: trk_emu_runtime::syncthreads kinds. */
enum { TRK_EMU_BARRIER = 0, TRK_EMU_BARRIER_COUNT = 1, TRK_EMU_BARRIER_AND = 2, TRK_EMU_BARRIER_OR = 3 };

/* What the emulated device gives a module. Every hook takes the calling thread; `line` is the
 * source line of the call (the kernel source's own numbering). Hooks that find a bug do not
 * return: they end the thread's kernel with the error. */
typedef struct trk_emu_runtime {
  int abi_version;
  int check; /* checking mode: shared-memory accesses are reported through shared_access */
  /* __syncthreads() and its _count/_and/_or forms; returns the reduced predicate. */
  int (*syncthreads)(trk_emu_thread* self, int kind, int predicate, int line);
  /* A warp primitive over the lanes of `mask`; `value` holds `size` (1..8) bytes, `arg` the
   * source lane, delta or lane mask, `width` the segment width. Returns the result's bytes
   * (shuffles) or the reduced value (ballot, any, all). */
  unsigned long long (*warp_op)(trk_emu_thread* self, int kind, unsigned mask, unsigned long long value, int size,
                                int arg, int width, int line);
  /* The block's storage of the __shared__ variable of declaration `site` (`name`, `bytes`). */
  void* (*shared_static)(trk_emu_thread* self, int site, const char* name, unsigned long long bytes,
                         unsigned long long align);
  /* The block's dynamic shared memory (extern __shared__) and its size in bytes. */
  void* (*shared_dynamic)(trk_emu_thread* self, unsigned long long* bytes);
  /* Checking mode: the thread reads (write == 0) or writes `bytes` of shared memory at `at`. */
  void (*shared_access)(trk_emu_thread* self, const void* at, unsigned long long bytes, int write);
  /* A bug the module itself found (a shared-memory index out of bounds, a failed assert). */
  void (*fault)(trk_emu_thread* self, const char* message, int line);
} trk_emu_runtime;

/* Parameter kinds of trk_emu_kernel::param_kinds. */
enum { TRK_EMU_PARAM_VALUE = 0, TRK_EMU_PARAM_CONST_POINTER = 1, TRK_EMU_PARAM_POINTER = 2 };

/* One kernel of a module. */
typedef struct trk_emu_kernel {
  const char* name;
  int params;
  int uses_sync;                         /* its translation unit calls barriers or warp primitives */
  const unsigned long long* param_sizes; /* params entries */
  const unsigned char* param_kinds;      /* params entries, TRK_EMU_PARAM_* */
  void (*run)(trk_emu_thread* self, void* const* args);
} trk_emu_kernel;

#ifdef __cplusplus
}
#endif

/* NOLINTEND(modernize-use-using, modernize-macro-to-enum, cppcoreguidelines-macro-usage) */
#endif /* TRK_EMU_ABI_H */
