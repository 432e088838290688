// CPU twin: CPUBackend.softmaxCrossEntropy (CPUBackend+Loss.swift), in float32 where the
// CPU sums in float64. With targets q = (1 − ε)·t + ε/K (t the one-hot label or a row of
// soft targets: smoothing applies to both), p = softmax(z + adjustment), class weights w_c
// (1 without) and example weights wᵢ = Σ_c t_ic·w_c (w[label] for one-hot targets, 1
// without class weights):
//   loss = Σᵢ −Σ_c w_c·q_ic·(1 − p_ic)^γ·log p_ic / Σᵢ wᵢ,
// each class's term weighted by its class, smoothing terms included: PyTorch's
// cross_entropy(weight=w, label_smoothing=ε).
// Three launches, no atomics, nothing read back by the host: cross_entropy_weights (one
// block: each wᵢ and Σwᵢ in a fixed order), softmax_cross_entropy (a warp per example:
// ∂loss/∂logits and each example's share of the loss), then sum_in_order (reduce.cu)
// over the shares when the loss is logged.
// Napkin maths: batch·classes·4 B read and written (10 classes × 256: 20 kB), latency-
// bound: what matters is that it is one launch in a graph, not its bandwidth.
// Launch: weights, one block of a power of two ≤ 256 threads; loss, blockDim a multiple
// of 32 (a warp per example) and at least batch warps in the grid.
#include "block_reduce.cuh"
#include "launch_rules.cuh"

extern "C" __global__ void cross_entropy_weights(const int* __restrict__ labels, const float* __restrict__ soft_targets,
                                                 const float* __restrict__ class_weights, int batch, int classes,
                                                 float* __restrict__ weights, float* __restrict__ total) {
  REQUIRE_REDUCTION_BLOCK("cross_entropy_weights");
  KERNEL_REQUIRE(gridDim.x == 1, "cross_entropy_weights", "needs a single block (gridDim.x = 1)");
  float sum = 0.f;
  for (int n = threadIdx.x; n < batch; n += blockDim.x) {
    float w = 1.f;
    if (class_weights && soft_targets) {
      w = 0.f;
      for (int c = 0; c < classes; ++c) w += soft_targets[(long long)n * classes + c] * class_weights[c];
    } else if (class_weights) {
      w = class_weights[labels[n]];
    }
    weights[n] = w;
    sum += w;
  }
  float all = block_sum(sum);
  if (threadIdx.x == 0) total[0] = all;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

extern "C" __global__ void softmax_cross_entropy(const float* __restrict__ logits, const int* __restrict__ labels,
                                                 const float* __restrict__ soft_targets, const float* __restrict__ adjustment,
                                                 const float* __restrict__ class_weights, const float* __restrict__ total,
                                                 int batch, int classes, float smoothing, float focal_gamma,
                                                 float* __restrict__ gradient, float* __restrict__ losses) {
  KERNEL_REQUIRE(blockDim.x % 32 == 0 && blockDim.y == 1, "softmax_cross_entropy",
                 "needs whole warps: blockDim.x a multiple of 32 (a warp per example)");
  // The warp's number from the block's warps: every lane of a warp agrees on it, so a warp
  // past the batch returns as a whole and the shuffles below see all 32 lanes.
  int warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp >= batch) return;
  const float* row = logits + (long long)warp * classes;
  float* row_gradient = gradient + (long long)warp * classes;
  float largest = __int_as_float(0xff800000);  // −∞
  for (int c = lane; c < classes; c += 32) largest = fmaxf(largest, row[c] + (adjustment ? adjustment[c] : 0.f));
  for (int offset = 16; offset > 0; offset /= 2) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  float sum = 0.f;
  for (int c = lane; c < classes; c += 32) sum += expf(row[c] + (adjustment ? adjustment[c] : 0.f) - largest);
  float log_sum = largest + logf(warp_sum(sum));
  int label = soft_targets ? -1 : labels[warp];
  float share = 1.f / total[0];
  // Σ_c Q_c with Q_c = w_c·q_c, for the gradient p_j·Σ_c Q_c − Q_j: 1 without class weights.
  float sum_q = 1.f;
  if (class_weights) {  // the same for every lane of the warp, so the shuffles see all 32
    sum_q = 0.f;
    for (int c = lane; c < classes; c += 32) {
      float t = soft_targets ? soft_targets[(long long)warp * classes + c] : (c == label ? 1.f : 0.f);
      sum_q += class_weights[c] * ((1.f - smoothing) * t + smoothing / classes);
    }
    sum_q = warp_sum(sum_q);
  }
  float loss = 0.f, sum_a = 0.f;
  for (int c = lane; c < classes; c += 32) {
    float t = soft_targets ? soft_targets[(long long)warp * classes + c] : (c == label ? 1.f : 0.f);
    float q = (1.f - smoothing) * t + smoothing / classes;
    if (class_weights) q *= class_weights[c];
    float log_p = row[c] + (adjustment ? adjustment[c] : 0.f) - log_sum;
    float p = expf(log_p);
    if (focal_gamma == 0.f) {
      loss -= q * log_p;
      row_gradient[c] = share * (p * sum_q - q);
    } else {
      // Focal: A_c = Q_c·(γ(1 − p_c)^(γ−1)·p_c·log p_c − (1 − p_c)^γ), ∂/∂z_j = A_j − p_j·Σ_c A_c.
      float remainder = fmaxf(1.f - p, 0.f);
      float modulation = powf(remainder, focal_gamma);
      loss -= q * modulation * log_p;
      float slope = remainder > 1e-12f ? focal_gamma * modulation / remainder * p * log_p : 0.f;
      float a = q * (slope - modulation);
      row_gradient[c] = a;  // this lane's own entries: read back below by the same lane
      sum_a += a;
    }
  }
  if (focal_gamma != 0.f) {
    sum_a = warp_sum(sum_a);
    for (int c = lane; c < classes; c += 32) {
      float p = expf(row[c] + (adjustment ? adjustment[c] : 0.f) - log_sum);
      row_gradient[c] = share * (row_gradient[c] - p * sum_a);
    }
  }
  loss = warp_sum(loss);
  if (lane == 0) losses[warp] = share * loss;
}
