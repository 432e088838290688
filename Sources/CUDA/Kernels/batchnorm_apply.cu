// CPU twin: the normalisation of CPUBackend.batchNormTrainingForward and
// batchNormInferenceForward (CPUBackend+BatchNorm.swift).
// Napkin maths: 4 B read and 4 B written an element (2 B each in bf16), ~5 FLOP:
// memory-bound; the imagenet preset's largest activation at batch 256 (411 MB) takes
// ~0.3 ms at 3 TB/s in float32. Launch: any grid-stride.
// Batch normalisation, second half (training and inference): y = act(x·a + b) with
// a = γ/√(σ²+ε), b = β − μ·a per channel; act is identity or ReLU6. Reads float32 or
// bfloat16 activations, writes either: the bf16 path halves the bytes of this
// bandwidth-bound op.
#include "bfloat16.cuh"

extern "C" __global__ void batchnorm_apply_f32(const float* x, long long count, int channels, const float* scale, const float* shift,
                                               const float* mean, const float* variance, float epsilon, int relu6, float* y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    float a = scale[c] * rsqrtf(variance[c] + epsilon);
    float v = (x[i] - mean[c]) * a + shift[c];
    if (relu6) v = fminf(fmaxf(v, 0.f), 6.f);
    y[i] = v;
  }
}

extern "C" __global__ void batchnorm_apply_bf16(const bf16* x, long long count, int channels, const float* scale,
                                                const float* shift, const float* mean, const float* variance, float epsilon,
                                                int relu6, bf16* y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int c = (int)(i % channels);
    float a = scale[c] * rsqrtf(variance[c] + epsilon);
    float v = (bf16_to_float(x[i]) - mean[c]) * a + shift[c];
    if (relu6) v = fminf(fmaxf(v, 0.f), 6.f);
    y[i] = float_to_bf16(v);
  }
}
