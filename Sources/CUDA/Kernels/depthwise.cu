// CPU twin: CPUBackend.depthwiseForward and depthwiseBackward (CPUBackend+Depthwise.swift).
// Depthwise 3×3 convolution, padding 1, stride 1 or 2, NHWC; weight [3, 3, C]. One thread
// per output value (consecutive threads, consecutive channels: coalesced).
// Napkin maths per output: 9 multiply-adds (18 FLOP) against 4 B written and, with the
// window's rows in L1/L2, ~4·stride² B read: 2 FLOP a byte, memory-bound (an H100 needs
// ~20 FLOP/B to be compute-bound). The weight gradient is one reduction per (tap, channel)
// over N·H'·W', each reading x and dy once: 9·2 reads of the activations per step.
// Launch: forward and input gradient, any grid-stride; weight gradient, grid = 9·channels
// and a power-of-two block ≤ 256.
#include "block_reduce.cuh"
#include "launch_rules.cuh"
#include "nhwc.cuh"

extern "C" __global__ void depthwise_forward(const float* __restrict__ x, int batch, int height, int width, int channels,
                                             const float* __restrict__ weight, int stride, int out_height, int out_width,
                                             float* __restrict__ y) {
  long long count = (long long)batch * out_height * out_width * channels;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    long long p = i / channels;
    Pixel o = pixel_at(p, out_height, out_width);
    int n = o.n, oy = o.y, ox = o.x;
    float sum = 0.f;
#pragma unroll
    for (int ky = 0; ky < 3; ++ky) {
      int iy = oy * stride + ky - 1;
      if (iy < 0 || iy >= height) continue;
#pragma unroll
      for (int kx = 0; kx < 3; ++kx) {
        int ix = ox * stride + kx - 1;
        if (ix < 0 || ix >= width) continue;
        sum += x[(((long long)n * height + iy) * width + ix) * channels + c] * weight[(ky * 3 + kx) * channels + c];
      }
    }
    y[i] = sum;
  }
}

// ∂/∂input: each input value gathers from the outputs whose window covers it (no atomics).
extern "C" __global__ void depthwise_backward_input(const float* __restrict__ dy, int batch, int height, int width, int channels,
                                                    const float* __restrict__ weight, int stride, int out_height, int out_width,
                                                    float* __restrict__ dx) {
  long long count = (long long)batch * height * width * channels;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    long long p = i / channels;
    Pixel in = pixel_at(p, height, width);
    int n = in.n, iy = in.y, ix = in.x;
    float sum = 0.f;
#pragma unroll
    for (int ky = 0; ky < 3; ++ky) {
      int ty = iy + 1 - ky;
      if (ty < 0 || ty % stride != 0) continue;
      int oy = ty / stride;
      if (oy >= out_height) continue;
#pragma unroll
      for (int kx = 0; kx < 3; ++kx) {
        int tx = ix + 1 - kx;
        if (tx < 0 || tx % stride != 0) continue;
        int ox = tx / stride;
        if (ox >= out_width) continue;
        sum += dy[(((long long)n * out_height + oy) * out_width + ox) * channels + c] * weight[(ky * 3 + kx) * channels + c];
      }
    }
    dx[i] = sum;
  }
}

// ∂/∂weight: one block per (tap, channel), a fixed-order reduction over N·H'·W'.
extern "C" __global__ void depthwise_backward_weight(const float* __restrict__ x, const float* __restrict__ dy, int batch, int height,
                                                     int width, int channels, int stride, int out_height, int out_width,
                                                     float* __restrict__ weight_gradient) {
  REQUIRE_REDUCTION_BLOCK("depthwise_backward_weight");
  KERNEL_REQUIRE(gridDim.x == 9u * (unsigned)channels, "depthwise_backward_weight",
                 "needs one block per tap and channel (gridDim.x = 9·channels)");
  int c = blockIdx.x % channels, tap = blockIdx.x / channels;
  int ky = tap / 3, kx = tap % 3;
  long long positions = (long long)batch * out_height * out_width;
  float sum = 0.f;
  for (long long p = threadIdx.x; p < positions; p += blockDim.x) {
    Pixel o = pixel_at(p, out_height, out_width);
    int n = o.n, oy = o.y, ox = o.x;
    int iy = oy * stride + ky - 1, ix = ox * stride + kx - 1;
    if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
    sum += x[(((long long)n * height + iy) * width + ix) * channels + c] * dy[p * channels + c];
  }
  float total = block_sum(sum);
  if (threadIdx.x == 0) weight_gradient[tap * channels + c] = total;
}
