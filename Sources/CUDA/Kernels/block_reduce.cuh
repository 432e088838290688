// The one tree reduction every reducing kernel uses: a block's values added in a fixed
// order (pairs at distance blockDim/2, /4, … 1), the same bits on every run, no atomics.
// Needs a block of a power of two threads, at most 256 (REQUIRE_REDUCTION_BLOCK); every
// thread of the block must call it, and every thread gets the total.
#pragma once

__device__ __forceinline__ float block_sum(float value) {
  __shared__ float partial[256];
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  float total = partial[0];
  // partial is reused by the next call: no thread may write it before all have read.
  __syncthreads();
  return total;
}
