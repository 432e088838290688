// CPU twin: CPUBackend.batchNormBackward and batchNormInferenceBackward
// (CPUBackend+BatchNorm.swift).
// Batch normalisation backward (training mode), NHWC. Per channel, with g = dy masked by
// the ReLU6 (0 < y < 6) and x̂ = (x − μ)/σ:
//   dβ = Σg, dγ = Σg·x̂, dx = γ/σ · (g − dβ/n − x̂·dγ/n).
// batchnorm_backward_sums reduces in a fixed order (one block per channel, no atomics);
// batchnorm_backward_input applies the formula element-wise, in place if dx = dy (the
// model's backward pass does that, so neither is __restrict__).
// Napkin maths per element: sums read x, y, dy (12 B); input reads x, y, dy and writes dx
// (16 B), ~12 FLOP: memory-bound, 28 B an element in all (the fused kernels of the CUDA
// backend keep x̂ from the forward to read less).
// Launch: sums, grid = channels and a power-of-two block ≤ 256; the rest, any grid-stride.
#include "block_reduce.cuh"
#include "launch_rules.cuh"

extern "C" __global__ void batchnorm_backward_sums(const float* __restrict__ x, const float* __restrict__ y,
                                                   const float* __restrict__ dy, int rows, int channels, int relu6,
                                                   const float* __restrict__ mean, const float* __restrict__ variance,
                                                   float epsilon, float* __restrict__ scale_gradient,
                                                   float* __restrict__ shift_gradient) {
  REQUIRE_REDUCTION_BLOCK("batchnorm_backward_sums");
  KERNEL_REQUIRE(gridDim.x == (unsigned)channels, "batchnorm_backward_sums", "needs one block per channel (gridDim.x = channels)");
  int c = blockIdx.x;
  float inv = rsqrtf(variance[c] + epsilon);
  float g_total = 0.f, gx_total = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) {
    long long i = (long long)row * channels + c;
    float g = dy[i];
    if (relu6 && (y[i] <= 0.f || y[i] >= 6.f)) g = 0.f;
    g_total += g;
    gx_total += g * (x[i] - mean[c]) * inv;
  }
  float shift_sum = block_sum(g_total), scale_sum = block_sum(gx_total);
  if (threadIdx.x == 0) {
    shift_gradient[c] = shift_sum;
    scale_gradient[c] = scale_sum;
  }
}

// shift_sum and scale_sum are batchnorm_backward_sums' Σg and Σg·x̂ (the parameter gradients).
extern "C" __global__ void batchnorm_backward_input(const float* __restrict__ x, const float* __restrict__ y,
                                                    const float* dy, long long count, int rows, int channels,
                                                    int relu6, const float* __restrict__ scale, const float* __restrict__ mean,
                                                    const float* __restrict__ variance, float epsilon,
                                                    const float* __restrict__ shift_sum, const float* __restrict__ scale_sum,
                                                    float* dx) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    float inv = rsqrtf(variance[c] + epsilon);
    float g = dy[i];
    if (relu6 && (y[i] <= 0.f || y[i] >= 6.f)) g = 0.f;
    float xhat = (x[i] - mean[c]) * inv;
    dx[i] = scale[c] * inv * (g - shift_sum[c] / rows - xhat * scale_sum[c] / rows);
  }
}

// The evaluation-mode gradient (running statistics are constants), for Grad-CAM:
// dx = mask·dy·γ/√(σ²+ε), mask from the forward's output y. In place if dx = dy.
extern "C" __global__ void batchnorm_inference_backward(const float* __restrict__ y, const float* dy, long long count,
                                                        int channels, int relu6, const float* __restrict__ scale,
                                                        const float* __restrict__ running_variance, float epsilon,
                                                        float* dx) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    float g = dy[i];
    if (relu6 && (y[i] <= 0.f || y[i] >= 6.f)) g = 0.f;
    dx[i] = g * scale[c] * rsqrtf(running_variance[c] + epsilon);
  }
}
