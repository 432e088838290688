// Softmax, cross-entropy and its gradient fused: one warp per example. Targets are the
// label smoothed by `smoothing` (or a row of soft targets), weighted per class; logits may
// be shifted by a per-class adjustment (logit-adjusted loss). Writes ∂loss/∂logits
// (already divided by the batch's total weight) and each example's weighted loss; the mean
// is reduced in a fixed order by the caller, so no atomics.
extern "C" __global__ void softmax_cross_entropy(const float* __restrict__ logits, const int* __restrict__ labels,
                                                 const float* __restrict__ soft_targets, const float* __restrict__ class_weights,
                                                 const float* __restrict__ adjustment, int batch, int classes, float smoothing,
                                                 float total_weight, float* __restrict__ gradient, float* __restrict__ losses) {
  int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
  if (warp >= batch) return;
  const float* row = logits + (long long)warp * classes;
  float largest = __int_as_float(0xff800000);  // −∞
  for (int c = lane; c < classes; c += 32) largest = fmaxf(largest, row[c] + (adjustment ? adjustment[c] : 0.f));
  for (int offset = 16; offset > 0; offset /= 2) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
  float sum = 0.f;
  for (int c = lane; c < classes; c += 32) sum += expf(row[c] + (adjustment ? adjustment[c] : 0.f) - largest);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  float log_sum = largest + logf(sum);
  int label = labels[warp];
  float weight = class_weights ? class_weights[label] : 1.f;
  float loss = 0.f;
  for (int c = lane; c < classes; c += 32) {
    float target = soft_targets ? soft_targets[(long long)warp * classes + c]
                                : (c == label ? 1.f - smoothing : 0.f) + smoothing / classes;
    float log_p = row[c] + (adjustment ? adjustment[c] : 0.f) - log_sum;
    loss -= target * log_p;
    gradient[(long long)warp * classes + c] = weight * (expf(log_p) - target) / total_weight;
  }
  for (int offset = 16; offset > 0; offset /= 2) loss += __shfl_xor_sync(0xffffffffu, loss, offset);
  if (lane == 0) losses[warp] = weight * loss;
}
