// CPU twin: CPUBackend.batchNormTrainingForward's statistics (CPUBackend+BatchNorm.swift).
// Each channel's mean and biased variance over the rows (N·H·W) of an NHWC tensor. One
// block per channel, a fixed-order tree reduction in shared memory (no atomics), so the
// result is bit-identical run to run. Two passes (the mean, then squared deviations from
// it): E[x²] − E[x]² loses every digit when |μ| ≫ σ (μ/σ = 1000 in float32).
// Napkin maths, imagenet preset at batch 256 (112×112×32 after the stem): 2 reads of
// 411 MB = 822 MB, ~2 FLOP a byte read ÷ 4: memory-bound, ~0.3 ms at 3 TB/s. Strided
// reads (one channel per block, stride C) waste most of each 32-byte sector: the fused
// kernels of the CUDA backend read rows instead; this one is the simple reference.
// Launch: grid = channels, block = a power of two ≤ 256.
#include "block_reduce.cuh"
#include "launch_rules.cuh"

extern "C" __global__ void batchnorm_statistics(const float* __restrict__ x, int rows, int channels,
                                                float* __restrict__ mean, float* __restrict__ variance) {
  REQUIRE_REDUCTION_BLOCK("batchnorm_statistics");
  KERNEL_REQUIRE(gridDim.x == (unsigned)channels, "batchnorm_statistics", "needs one block per channel (gridDim.x = channels)");
  int c = blockIdx.x;
  float sum = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) sum += x[(long long)row * channels + c];
  float m = block_sum(sum) / rows;
  float squares = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) {
    float d = x[(long long)row * channels + c] - m;
    squares += d * d;
  }
  float total = block_sum(squares);
  if (threadIdx.x == 0) {
    mean[c] = m;
    variance[c] = total / rows;
  }
}
