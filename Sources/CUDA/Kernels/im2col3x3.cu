// CPU twin: the im2col and col2im loops of CPUBackend.convolution3x3Forward / Backward
// (CPUBackend+Convolution.swift). Napkin maths: the stem's input has 1–3 channels, so the
// patch matrix is 9× the input (N·H'·W'·9·Cin·4 B: 29 MB at batch 256, 28×28×1, stride 1):
// memory-bound, microseconds; the GEMM does the arithmetic. Launch: any grid-stride.
// The stem's full 3×3 convolution runs as im2col + a cuBLASLt GEMM, as on the CPU:
// columns[M, 9·Cin] with M = N·H'·W' and column (ky·3 + kx)·Cin + ci, zero outside the
// image. col2im3x3 is its adjoint for ∂/∂input (a gather, no atomics).
#include "nhwc.cuh"

extern "C" __global__ void im2col3x3(const float* __restrict__ x, int batch, int height, int width, int channels, int stride,
                                     int out_height, int out_width, float* __restrict__ columns) {
  long long count = (long long)batch * out_height * out_width * 9 * channels;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int ci = (int)(i % channels);
    int tap = (int)((i / channels) % 9);
    long long p = i / (9LL * channels);
    Pixel o = pixel_at(p, out_height, out_width);
    int n = o.n, oy = o.y, ox = o.x;
    int iy = oy * stride + tap / 3 - 1, ix = ox * stride + tap % 3 - 1;
    columns[i] = (iy < 0 || iy >= height || ix < 0 || ix >= width) ? 0.f : x[(((long long)n * height + iy) * width + ix) * channels + ci];
  }
}

extern "C" __global__ void col2im3x3(const float* __restrict__ column_gradient, int batch, int height, int width, int channels,
                                     int stride, int out_height, int out_width, float* __restrict__ dx) {
  long long count = (long long)batch * height * width * channels;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int ci = (int)(i % channels);
    long long p = i / channels;
    Pixel in = pixel_at(p, height, width);
    int n = in.n, iy = in.y, ix = in.x;
    float sum = 0.f;
    for (int tap = 0; tap < 9; ++tap) {
      int ty = iy + 1 - tap / 3, tx = ix + 1 - tap % 3;
      if (ty < 0 || tx < 0 || ty % stride != 0 || tx % stride != 0) continue;
      int oy = ty / stride, ox = tx / stride;
      if (oy >= out_height || ox >= out_width) continue;
      sum += column_gradient[((((long long)n * out_height + oy) * out_width + ox) * 9 + tap) * channels + ci];
    }
    dx[i] = sum;
  }
}
