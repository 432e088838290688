// The optimizer steps on float32 master weights, one thread per value. SGD with momentum
// (PyTorch's form: v = μ·v + g, Nesterov g + μ·v) and coupled weight decay; AdamW with
// decoupled decay and bias correction. `decay` is 0 for parameters that take none.
extern "C" __global__ void sgd_step(float* __restrict__ weight, const float* __restrict__ gradient, float* __restrict__ velocity,
                                    long long count, float learning_rate, float momentum, float decay, int nesterov) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float g = gradient[i] + decay * weight[i];
    float v = momentum * velocity[i] + g;
    velocity[i] = v;
    weight[i] -= learning_rate * (nesterov ? g + momentum * v : v);
  }
}

extern "C" __global__ void adamw_step(float* __restrict__ weight, const float* __restrict__ gradient, float* __restrict__ first,
                                      float* __restrict__ second, long long count, float learning_rate, float beta1, float beta2,
                                      float epsilon, float decay, float correction1, float correction2) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    float g = gradient[i];
    float m = beta1 * first[i] + (1.f - beta1) * g;
    float v = beta2 * second[i] + (1.f - beta2) * g * g;
    first[i] = m;
    second[i] = v;
    weight[i] -= learning_rate * (decay * weight[i] + (m / correction1) / (sqrtf(v / correction2) + epsilon));
  }
}
