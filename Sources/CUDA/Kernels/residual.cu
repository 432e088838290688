// CPU twin: CPUBackend.residualForward, scaleSamples and accumulate
// (CPUBackend+Elementwise.swift). Napkin maths: 12 B moved and 2 FLOP a value:
// memory-bound; fused into batch norm's apply by the CUDA backend's fused kernels later.
// Launch: any grid-stride.
// The residual connection with stochastic depth: y = x + branch·scale[n] (scale null: 1);
// its branch gradient, dy·scale[n]; and a += b (the skip path's gradient).
extern "C" __global__ void residual_forward(const float* __restrict__ x, const float* __restrict__ branch,
                                            const float* __restrict__ sample_scale, long long sample_size, long long count,
                                            float* __restrict__ y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float s = sample_scale ? sample_scale[i / sample_size] : 1.f;
    y[i] = x[i] + branch[i] * s;
  }
}

extern "C" __global__ void scale_samples(const float* __restrict__ dy, const float* __restrict__ sample_scale, long long sample_size,
                                         long long count, float* __restrict__ out) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    out[i] = dy[i] * sample_scale[i / sample_size];
}

extern "C" __global__ void accumulate(float* __restrict__ a, const float* __restrict__ b, long long count) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) a[i] += b[i];
}
