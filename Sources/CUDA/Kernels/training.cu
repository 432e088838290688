// CPU twins: CPUBackend+Training.swift (updateRunningStatistics, stochasticDepthScales,
// clipGradientNorm, exponentialMovingAverage), the same arithmetic in the same order.
// What a training step does besides its layers, kept on the device so that a step never
// waits for the host: batch norm's running statistics, stochastic depth's per-example
// factors (Philox, keyed as RandomStream), gradient clipping by the global norm (each
// gradient's sum of squares in a fixed-order block reduction, then every thread adds the
// partial sums in order), and the weight average.
// Napkin maths: all of it is O(parameters) per step (3.5 M at width 1.0): clipping reads
// the gradients twice, the average reads and writes 2 values each: ~60 MB a step, ~20 µs
// at 3 TB/s; the statistics and depth factors are a few hundred values (latency only).
// Launch: sum_of_squares, one block of a power of two ≤ 256 threads per gradient; the
// rest, any grid-stride.
#include "block_reduce.cuh"
#include "launch_rules.cuh"
#include "philox.cuh"

extern "C" __global__ void running_statistics(float* __restrict__ running_mean, float* __restrict__ running_variance,
                                              const float* __restrict__ batch_mean, const float* __restrict__ batch_variance,
                                              int channels, float momentum, float unbiasing) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < channels; c += gridDim.x * blockDim.x) {
    running_mean[c] = (1.f - momentum) * running_mean[c] + momentum * batch_mean[c];
    running_variance[c] = (1.f - momentum) * running_variance[c] + momentum * batch_variance[c] * unbiasing;
  }
}

// Purpose 4 = RandomPurpose.stochasticDepth; index (block << 32) | n.
extern "C" __global__ void stochastic_depth_scales(unsigned long long seed, const unsigned int* __restrict__ stream_word,
                                                   int block, int batch, float drop_probability, float* __restrict__ scales) {
  const unsigned int stream = *stream_word;  // the step, from device memory (a recorded step replays with each step's)
  float keep = 1.f / (1.f - drop_probability);
  for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < batch; n += gridDim.x * blockDim.x) {
    unsigned long long index = ((unsigned long long)block << 32) | (unsigned int)n;
    scales[n] = philox_uniform(index, stream, 4u, seed) >= drop_probability ? keep : 0.f;
  }
}

// partial[slot] = Σ values², one block.
extern "C" __global__ void sum_of_squares(const float* __restrict__ values, long long count, float* __restrict__ partial,
                                          int slot) {
  REQUIRE_REDUCTION_BLOCK("sum_of_squares");
  KERNEL_REQUIRE(gridDim.x == 1, "sum_of_squares", "needs a single block (gridDim.x = 1)");
  float sum = 0.f;
  for (long long i = threadIdx.x; i < count; i += blockDim.x) sum += values[i] * values[i];
  float total = block_sum(sum);
  if (threadIdx.x == 0) partial[slot] = total;
}

// Scales `values` by min(1, max_norm/(‖g‖ + 1e-6)), ‖g‖ = √Σ partial (added in double, in
// order); writes ‖g‖ to norm[0] when `write_norm`.
extern "C" __global__ void scale_to_norm(float* __restrict__ values, long long count, const float* __restrict__ partial,
                                         int partials, float max_norm, float* __restrict__ norm, int write_norm) {
  double total = 0.0;
  for (int i = 0; i < partials; ++i) total += (double)partial[i];
  total = sqrt(total);
  if (write_norm && blockIdx.x == 0 && threadIdx.x == 0) norm[0] = (float)total;
  float factor = (float)((double)max_norm / (total + 1e-6));
  if (factor >= 1.f) return;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    values[i] *= factor;
}

extern "C" __global__ void exponential_moving_average(float* __restrict__ shadow, const float* __restrict__ value,
                                                      long long count, float decay) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    shadow[i] = decay * shadow[i] + (1.f - decay) * value[i];
}
