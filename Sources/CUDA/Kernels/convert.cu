// CPU twin: Wire.Precision.toBFloat16 / fromBFloat16 (Sources/Wire/Precision.swift), bit
// for bit, NaN included. Napkin maths: 6 B moved a value, no arithmetic to speak of:
// memory-bound. Launch: any grid-stride.
// float32 ↔ bfloat16 (round to nearest even): master weights to the bf16 copies the
// forward reads, and bf16 activations back to float32 for checks.
#include "bfloat16.cuh"

extern "C" __global__ void float_to_bfloat16(const float* __restrict__ x, long long count, bf16* __restrict__ y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    y[i] = float_to_bf16(x[i]);
}

extern "C" __global__ void bfloat16_to_float(const bf16* __restrict__ x, long long count, float* __restrict__ y) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    y[i] = bf16_to_float(x[i]);
}
