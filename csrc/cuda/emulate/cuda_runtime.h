// A CPU stand-in for the CUDA runtime, for testing convcore's CUDA code where no GPU exists
// (CONVCORE_CUDA_EMULATE=ON builds convcore._cuda from the same .cu sources with the host
// compiler, with this directory first on the include path). Not a product: a test harness.
// Linux/glibc only (ucontext).
//
// Kernels run on the calling CPU thread: one block at a time, each CUDA thread of the block a
// fiber (ucontext), so __shared__ (static here) is shared by exactly one block's threads and
// __syncthreads() hands control to the next fiber until all have reached it. Grids are clamped to a few blocks per dimension, which the
// grid-stride loops of every kernel (launch.cuh) must absorb: the clamp tests those loops too.
// "Device" memory is host memory; streams are ignored (everything runs in call order).
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

using std::isnan;

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

namespace convcore::emu {
// One fiber per CUDA thread of the running block, all on the calling OS thread: __syncthreads()
// switches back to the scheduler, which resumes every fiber of the block in turn, so a barrier
// phase ends when each thread has reached it (or finished), as on the GPU.
struct Fiber {
  ucontext_t context;
  std::vector<char> stack;
  unsigned int thread = 0;
  bool done = false;
};
inline thread_local ucontext_t scheduler;
inline thread_local Fiber* running = nullptr;
inline thread_local void (*body)(void*) = nullptr;
inline thread_local void* body_arg = nullptr;
inline std::mutex atomic_mutex;
constexpr unsigned int kMaxBlocksPerDim = 3;
constexpr size_t kFiberStack = 64 * 1024;

inline void fiber_entry() {
  body(body_arg);
  running->done = true;  // returning resumes `scheduler` (uc_link)
}

inline void set_thread_index(unsigned int t) {
  threadIdx = {t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
}

// Runs kernel(args...) over `grid` x `block` (see the header comment).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  using Call = std::pair<void (*)(Params...), std::tuple<std::decay_t<Params>...>>;
  Call call{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  body = [](void* p) {
    Call& c = *static_cast<Call*>(p);
    std::apply(c.first, c.second);
  };
  body_arg = &call;
  grid = dim3(grid.x < kMaxBlocksPerDim ? grid.x : kMaxBlocksPerDim,
              grid.y < kMaxBlocksPerDim ? grid.y : kMaxBlocksPerDim,
              grid.z < kMaxBlocksPerDim ? grid.z : kMaxBlocksPerDim);
  blockDim = block;
  gridDim = grid;
  const unsigned int threads = block.x * block.y * block.z;
  std::vector<Fiber> fibers(threads);
  for (unsigned int t = 0; t < threads; ++t) {
    fibers[t].stack.resize(kFiberStack);
    fibers[t].thread = t;
  }
  for (unsigned int z = 0; z < grid.z; ++z)
    for (unsigned int y = 0; y < grid.y; ++y)
      for (unsigned int x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        for (Fiber& f : fibers) {
          getcontext(&f.context);
          f.context.uc_stack.ss_sp = f.stack.data();
          f.context.uc_stack.ss_size = f.stack.size();
          f.context.uc_link = &scheduler;
          makecontext(&f.context, fiber_entry, 0);
          f.done = false;
        }
        for (bool pending = true; pending;) {
          pending = false;
          for (Fiber& f : fibers) {
            if (f.done) continue;
            running = &f;
            set_thread_index(f.thread);
            swapcontext(&scheduler, &f.context);
            pending = pending || !f.done;
          }
        }
      }
}
}  // namespace convcore::emu

inline void __syncthreads() {
  convcore::emu::Fiber* self = convcore::emu::running;
  swapcontext(&self->context, &convcore::emu::scheduler);
  convcore::emu::running = self;
  convcore::emu::set_thread_index(self->thread);
}

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  std::lock_guard<std::mutex> lock(convcore::emu::atomic_mutex);
  const unsigned long long old = *address;
  if (value < old) *address = value;
  return old;
}

// ---- the runtime API subset convcore uses ----------------------------------------------------
typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1,
                      cudaMemoryTypeDevice = 2, cudaMemoryTypeManaged = 3 };
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
};
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
  int multiProcessorCount;
};

inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorInvalidValue;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) { std::memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaRuntimeGetVersion(int* v) { *v = 0; return cudaSuccess; }
inline cudaError_t cudaDriverGetVersion(int* v) { *v = 0; return cudaSuccess; }
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void*) {
  a->type = cudaMemoryTypeDevice;  // every pointer is "device" memory here
  a->device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  std::strcpy(prop->name, "convcore CUDA emulator (CPU threads)");
  prop->major = 0;
  prop->minor = 0;
  prop->totalGlobalMem = 0;
  prop->multiProcessorCount = 0;
  return cudaSuccess;
}
