// CPU twin: CPUBackend.dropoutForward / dropoutBackward (CPUBackend+Elementwise.swift),
// the same masks bit for bit. Napkin maths: a Philox block (10 rounds, ~40 integer ops)
// and 12 B moved a value: the classifier's input only (batch × 1280), microseconds.
// Launch: any grid-stride.
// Inverted dropout with the CPU backend's stream: mask = (u ≥ p)/(1 − p), u the Philox
// uniform at each index (purpose dropout = 3), so both backends drop the same units. The
// stream's coordinate (the step) is read from device memory, so that a recorded step (a
// CUDA graph) replays with each step's masks.
#include "philox.cuh"

extern "C" __global__ void dropout_forward(const float* __restrict__ x, long long count, float p, unsigned long long seed,
                                           const unsigned int* __restrict__ stream_word, float* __restrict__ mask,
                                           float* __restrict__ y) {
  const unsigned int stream = *stream_word;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float keep = philox_uniform((unsigned long long)i, stream, 3u, seed) >= p ? 1.f / (1.f - p) : 0.f;
    mask[i] = keep;
    y[i] = x[i] * keep;
  }
}

extern "C" __global__ void dropout_backward(float* __restrict__ gradient, const float* __restrict__ mask, long long count) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x)
    gradient[i] *= mask[i];
}
