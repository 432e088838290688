// CPU twin: CPUBackend.globalAveragePoolForward / Backward (CPUBackend+Elementwise.swift).
// Napkin maths: the head's output is read once (N·H·W·1280·4 B: 1.3 MB at batch 256 and
// 1×1, the imagenet preset at 28×28; 64 MB at 7×7) and N·C values written: memory-bound;
// a thread per (n, c) walks H·W in order (no atomics). Launch: any grid-stride.
// [N, H, W, C] → [N, C], the mean over H·W (fixed summation order), and its gradient.
extern "C" __global__ void global_average_pool_forward(const float* __restrict__ x, int batch, int positions, int channels,
                                                       float* __restrict__ y) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < batch * channels; i += gridDim.x * blockDim.x) {
    int n = i / channels, c = i % channels;
    float sum = 0.f;
    for (int p = 0; p < positions; ++p) sum += x[((long long)n * positions + p) * channels + c];
    y[i] = sum / positions;
  }
}

extern "C" __global__ void global_average_pool_backward(const float* __restrict__ dy, int batch, int positions, int channels,
                                                        float* __restrict__ dx) {
  long long count = (long long)batch * positions * channels;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    long long n = i / ((long long)positions * channels);
    dx[i] = dy[n * channels + c] / positions;
  }
}
