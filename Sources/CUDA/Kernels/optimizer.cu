// CPU twins: SGD.step and AdamW.step (Sources/NN/Optimizer.swift), written with the same
// operations in the same order, so that without FMA contraction they agree bit for bit.
// The optimizer steps on float32 master weights, one thread per value. SGD with momentum
// (PyTorch's form: v = μ·v + g, Nesterov g + μ·v) and coupled weight decay; AdamW with
// decoupled decay (w·(1 − lr·λ)) and bias correction (step size lr/(1 − β₁ᵗ), √(1 − β₂ᵗ)
// computed once on the host). For parameters that take no decay (batch norm, biases), SGD's
// `decay` is 0 and AdamW's `decay_factor` null (1). The values that change from step to
// step (the learning rate and SGD's momentum, which one-cycle training may cycle; Adam's
// corrections) are read from device memory, written before the step: a recorded step (a
// CUDA graph) then replays with each step's values.
// Napkin maths: SGD reads w, g, v and writes w, v (20 B a value, 4 FLOP); AdamW 28 B:
// memory-bound, 3.5 M parameters (width 1.0) ≈ 100 MB, ~35 µs a step at 3 TB/s.
extern "C" __global__ void sgd_step(float* __restrict__ weight, const float* __restrict__ gradient, float* __restrict__ velocity,
                                    long long count, const float* __restrict__ learning_rate_word,
                                    const float* __restrict__ momentum_word, float decay, int nesterov) {
  const float learning_rate = *learning_rate_word, momentum = *momentum_word;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float g = gradient[i] + decay * weight[i];
    float v = momentum * velocity[i] + g;
    velocity[i] = v;
    weight[i] -= learning_rate * (nesterov ? g + momentum * v : v);
  }
}

extern "C" __global__ void adamw_step(float* __restrict__ weight, const float* __restrict__ gradient, float* __restrict__ first,
                                      float* __restrict__ second, long long count, float beta1, float beta2, float epsilon,
                                      const float* __restrict__ decay_factor_word, const float* __restrict__ step_size_word,
                                      const float* __restrict__ root_correction2_word) {
  const float decay_factor = decay_factor_word ? *decay_factor_word : 1.f;
  const float step_size = *step_size_word, root_correction2 = *root_correction2_word;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float g = gradient[i];
    float m = beta1 * first[i] + (1.f - beta1) * g;
    float v = beta2 * second[i] + (1.f - beta2) * g * g;
    first[i] = m;
    second[i] = v;
    weight[i] = weight[i] * decay_factor - step_size * m / (sqrtf(v) / root_correction2 + epsilon);
  }
}
