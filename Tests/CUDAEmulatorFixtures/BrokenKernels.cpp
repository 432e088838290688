// Kernels with the bugs the emulated device exists to catch, one bug each. They are CUDA
// C as a kernel file would have it; the GPU would run each without a word.
#include "../../Sources/CUDAEmulator/prelude.h"
#include "../../Sources/CUDAEmulator/Registration.h"
#include "CUDAEmulatorFixtures.h"

// Each thread adds its right-hand neighbour in place with no barrier: the result depends
// on which thread ran first (a race the reversed schedule exposes).
extern "C" __global__ void racy_neighbour_sum(float* values, int count) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i + 1 < count) values[i] += values[i + 1];
}

// Half the block returns before the barrier the other half waits at.
extern "C" __global__ void partial_barrier(float* values) {
  if (threadIdx.x >= blockDim.x / 2) return;
  __syncthreads();
  values[threadIdx.x] = 1.f;
}

// A full-warp mask in a block of fewer than 32 threads.
extern "C" __global__ void short_warp_shuffle(float* values) {
  float v = values[threadIdx.x];
  values[threadIdx.x] = v + __shfl_xor_sync(0xffffffffu, v, 1);
}

// A barrier in a kernel registered to run as a plain loop.
extern "C" __global__ void barrier_in_loop_kernel(float* values) {
  __syncthreads();
  values[threadIdx.x] = 0.f;
}

// A correct shuffle reduction over a warp, for contrast: each lane ends with the sum.
extern "C" __global__ void warp_sum_fixture(const float* values, float* sums) {
  float v = values[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  sums[threadIdx.x] = v;
}

extern "C" void quorum_emulator_register_broken_kernels(void) {
  emulator::Module module{"broken_kernels.cu", {}};
  EMULATE(racy_neighbour_sum, loop);
  EMULATE(partial_barrier, fibers);
  EMULATE(short_warp_shuffle, fibers);
  EMULATE(barrier_in_loop_kernel, loop);
  EMULATE(warp_sum_fixture, fibers);
  emulator::add_module(std::move(module));
}
